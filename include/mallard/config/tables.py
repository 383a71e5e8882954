"""Tables and their defaults: what every kind's table has, and the rules every table follows.

A kind with a list of tables (`config/kinds/<kind>.py`) subclasses `TablesSource` and its table
model `TableBase`; `TableDefaults.settings_of` is the one place a table's setting is resolved
against its source's default. Nothing here imports dlt or Airflow: this module is read at DAG
parse time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from include.mallard.config.base import (
    ON_EMPTY_HELP,
    TABLE_NAME_PATTERN,
    EmptyPolicy,
    Issue,
    OnEmpty,
    SourceBase,
    WriteDisposition,
    one_key_is_a_list,
    repeated,
)
from include.mallard.config.strict import StrictModel

NullCursor = Literal["fail", "include", "exclude"]
ON_NULL_CURSOR_HELP = (
    "What a row whose cursor is null (or missing) does; it belongs to no interval: fail (the extract fails and "
    "names the table), include (loaded by every run, merged on the primary key) or exclude (never loaded). "
    "Unset: fail."
)


class TableBase(StrictModel):
    """What every kind's table (a file glob, a SQL table, a REST resource) has."""

    name: Annotated[str, Field(pattern=TABLE_NAME_PATTERN, description="Table name in raw_<source>.")]
    primary_key: list[str] = Field(default_factory=list, description="Column(s) that identify a row.")
    write_disposition: WriteDisposition | None = Field(None, description="Overrides the source's default.")
    on_empty: OnEmpty | None = Field(None, description=ON_EMPTY_HELP + " Unset: the source's `on_empty`.")
    on_null_cursor: NullCursor | None = Field(None, description=ON_NULL_CURSOR_HELP)

    _normalize_key = field_validator("primary_key", mode="before")(one_key_is_a_list)

    @property
    def cursor_column(self) -> str | None:
        """The column that binds the table to the run's interval, if any."""
        return None

    @property
    def is_incremental(self) -> bool:
        """Whether each run loads only its interval's slice of the table."""
        return self.cursor_column is not None


@dataclass(frozen=True)
class TableSettings:
    """A table's settings after its source's defaults are applied."""

    primary_key: list[str]
    write_disposition: WriteDisposition
    incremental: bool
    # The table that binds this one to the run's interval when it has no cursor of its own (a REST
    # child of an incremental resource gets only the children of its interval's records).
    incremental_through: str | None = None
    on_null_cursor: NullCursor = "fail"


def effective_disposition(
    table_disposition: str | None, source_disposition: str | None, incremental: bool
) -> WriteDisposition:
    """The write disposition a table gets: its own, else the source's, else merge/replace."""
    return table_disposition or source_disposition or ("merge" if incremental else "replace")  # type: ignore[return-value]


class TableDefaults(StrictModel):
    """Source-level defaults for the tables of a source; a table's own setting wins."""

    write_disposition: WriteDisposition | None = Field(
        None,
        description=(
            "Default for every table: append, replace (full refresh, swapped in one transaction) or merge "
            "(upsert on primary_key). Unset: merge for incremental tables, replace otherwise."
        ),
    )
    primary_key: list[str] = Field(default_factory=list, description="Default primary key column(s) of every table.")
    on_empty: OnEmpty | None = Field(None, description=ON_EMPTY_HELP + " Unset: fail.")

    _normalize_key = field_validator("primary_key", mode="before")(one_key_is_a_list)

    def empty_policy_of(self, table_name: str) -> EmptyPolicy:
        table = self.table_named(table_name)
        if table is not None and table.on_empty:
            return EmptyPolicy(table.on_empty, f"{self.table_field_of(table)}.on_empty")
        if table is not None and self.settings_of(table).incremental:
            return EmptyPolicy("ok", None, "incremental tables")  # an interval without rows is normal
        if self.on_empty:
            return EmptyPolicy(self.on_empty, "on_empty")
        return EmptyPolicy("fail", None)

    def table_named(self, table_name: str) -> TableBase | None:
        """The configured table that loads into `table_name`, if the kind lists its tables."""
        return None

    def on_empty_field_of(self, table_name: str) -> str | None:
        table = self.table_named(table_name)
        return f"{self.table_field_of(table)}.on_empty" if table is not None else "on_empty"

    def table_field_of(self, table: TableBase) -> str:
        """Where `table` is in its source file, e.g. 'tables[2]'."""
        raise NotImplementedError

    def incremental_through(self, table: TableBase) -> str | None:
        """The other table whose interval binds `table`, which has no cursor of its own (None: none)."""
        return None

    def settings_of(self, table: TableBase) -> TableSettings:
        """The one place where a table's setting is resolved against its source's default."""
        through = None if table.is_incremental else self.incremental_through(table)
        incremental = table.is_incremental or through is not None
        return TableSettings(
            primary_key=table.primary_key or self.primary_key,
            write_disposition=effective_disposition(table.write_disposition, self.write_disposition, incremental),
            incremental=incremental,
            incremental_through=through,
            on_null_cursor=table.on_null_cursor or "fail",
        )


class TablesSource(TableDefaults, SourceBase):
    """A kind whose config lists its tables: one cross-check loop serves them all."""

    # The field that holds the tables, and how its items are called in messages.
    TABLES_FIELD: ClassVar[str] = "tables"

    def tables_in_config(self) -> list[TableBase]:
        """The configured tables, in file order."""
        return list(getattr(self, self.TABLES_FIELD))

    def table_named(self, table_name: str) -> TableBase | None:
        return next((t for t in self.tables_in_config() if t.name.lower() == table_name.lower()), None)

    def table_field_of(self, table: TableBase) -> str:
        return f"{self.TABLES_FIELD}[{self.tables_in_config().index(table)}]"

    def table_cursors(self) -> dict[str, str]:
        return {t.name: t.cursor_column for t in self.tables_in_config() if t.cursor_column is not None}

    def cross_checks(self) -> list[Issue]:
        issues = []
        for index, table in enumerate(self.tables_in_config()):
            where = f"{self.TABLES_FIELD}[{index}]"
            issues += key_issues(where, self.settings_of(table), has_other_key=self.has_row_key_of_its_own(table))
            issues += null_cursor_issues(where, table, self.settings_of(table))
            issues += self.table_issues(where, table)
        return issues

    def has_row_key_of_its_own(self, table: TableBase) -> bool:
        """True when a merge needs no primary key for `table` (the kind merges on something else)."""
        return False

    def table_issues(self, where: str, table: TableBase) -> list[Issue]:
        """A kind's own checks of one table (beyond the key rules every kind shares)."""
        return []


def unique_names(items: list[TableBase], what: str, *, fold_case: bool = False) -> list[TableBase]:
    """`items`, or a ValueError naming the repeated names (a field validator's body)."""
    names = [item.name.lower() if fold_case else item.name for item in items]
    if duplicates := repeated(names):
        raise ValueError(f"{what} names must be unique; repeated: {', '.join(duplicates)}")
    return items


def null_cursor_issues(where: str, table: TableBase, settings: TableSettings) -> list[Issue]:
    """`on_null_cursor` needs a cursor, and `include` a merge (the rows load again every run)."""
    if table.on_null_cursor is None:
        return []
    if table.cursor_column is None:
        return [
            Issue(
                f"{where}.on_null_cursor",
                "only a table with a cursor has rows whose cursor is null",
                "remove `on_null_cursor`, or give the table a cursor",
            )
        ]
    if table.on_null_cursor == "include" and settings.write_disposition == "append":
        return [
            Issue(
                f"{where}.on_null_cursor",
                "include loads the rows without a cursor in every run: appended, they would be added again each time",
                "set `write_disposition: merge` with a primary_key, or `on_null_cursor: exclude`",
            )
        ]
    return []


def key_issues(where: str, settings: TableSettings, *, has_other_key: bool = False) -> list[Issue]:
    """The key rules every table follows: a merge needs a key, an incremental table cannot replace."""
    issues = []
    through = settings.incremental_through
    why = f"each run gets only the children of the records of {through!r}, an incremental resource, in its interval"
    if settings.write_disposition == "merge" and not settings.primary_key and not has_other_key:
        default_for = f"children of incremental resources: {why}" if through else "incremental tables"
        issues.append(
            Issue(
                f"{where}.primary_key",
                f"a merge (the default for {default_for}) needs a primary key to replace rows on",
                "add `primary_key: [<column>]` to the table or the source, or set `write_disposition: append`",
            )
        )
    if settings.write_disposition == "replace" and settings.incremental:
        if through:
            problem = f"a child of {through!r} cannot use replace: {why}, so the table would keep only the last one's"
            fix = "use merge with a primary_key (e.g. a parent field from include_from_parent and the line's own key)"
            issues.append(Issue(f"{where}.write_disposition", problem, fix + " or append"))
        else:
            issues.append(
                Issue(
                    f"{where}.write_disposition",
                    "an incremental table cannot use replace: each run would keep only its own interval",
                    "use merge (with a primary_key) or append, or drop the incremental setting",
                )
            )
    return issues
