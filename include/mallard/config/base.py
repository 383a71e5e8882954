"""What every source kind shares: the strict model base, secret references, the questions every kind answers.

A kind's own module (`config/kinds/<kind>.py`) subclasses `SourceBase` (and `TablesSource` of
config/tables.py when it has a list of tables), and declares in one place what the rest of Mallard needs to know about
it: its `tables_in_config()`, its incremental `table_cursors()`, and the `external_issues()` that
`mallard validate` checks outside the file. Secret references are found by walking the fields.

Nothing here imports dlt or Airflow: this module is read at DAG parse time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, Discriminator, Field, Tag, field_validator, model_validator

from include.mallard.config.cron import CRON_FIX, cron_problem
from include.mallard.config.freshness import DEFAULT_FRESHNESS, Freshness
from include.mallard.config.strict import ConfigValueError, StrictModel

SOURCE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,40}$"
TABLE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
CONNECTION_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
SECRET_REFERENCE_FIX = (
    "move the value to an environment variable or an Airflow connection and reference it, "
    "e.g. `{env: MY_API_TOKEN}` or `{connection: my_api}`"
)

WriteDisposition = Literal["append", "replace", "merge"]
SchemaContract = Literal["evolve", "freeze", "discard_rows"]
OnEmpty = Literal["fail", "warn", "ok"]
ON_EMPTY_HELP = (
    "What a run does when a full-refresh table gets no rows: fail (the extract fails and nothing of the run "
    "loads), warn (a warning in the task log; the table keeps its previous rows) or ok (the same, silently). "
    "An empty input never empties a table."
)


@dataclass(frozen=True)
class EmptyPolicy:
    """`on_empty` as it applies to one table, and the field that set it (None: the default, `default_for`)."""

    policy: OnEmpty
    field: str | None
    default_for: str = "full-refresh tables"


def literal_secret_error(what: str) -> ConfigValueError:
    """The error for a secret written into a config file; the value itself is never echoed."""
    return ConfigValueError(
        f"{what} must not be written in the file (value hidden)", fix=SECRET_REFERENCE_FIX, hide_input=True
    )


@dataclass(frozen=True)
class Issue:
    """A problem found by a cross-field or outside check: the field path, what is wrong, how to fix it."""

    field: str
    message: str
    fix: str


def one_key_is_a_list(value: object) -> object:
    """`primary_key: id` means `primary_key: [id]`."""
    return [value] if isinstance(value, str) else value


def repeated(names: Iterable[str]) -> list[str]:
    """The names that occur more than once, sorted (linear in the number of names)."""
    return sorted(name for name, count in Counter(names).items() if count > 1)


class ExternalReference(StrictModel):
    """A value that lives outside the file: an env var or an Airflow connection, read at task run time."""

    env: str | None = Field(None, pattern=ENV_NAME_PATTERN, description="Name of an environment variable.")
    connection: str | None = Field(None, pattern=CONNECTION_ID_PATTERN, description="An Airflow connection id.")


class SecretRef(ExternalReference):
    """Where a secret comes from at task run time: an env var or an Airflow connection."""

    field: str = Field(
        "password",
        pattern=r"^(password|login|host|schema|extra\.[A-Za-z0-9_.-]+)$",
        description="With `connection`: which part holds the secret (password, login, host, schema, extra.<key>).",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_literals(cls, value: object) -> object:
        if isinstance(value, str | int | float):
            raise literal_secret_error("a secret")
        return value

    @model_validator(mode="after")
    def _exactly_one_place(self) -> SecretRef:
        if (self.env is None) == (self.connection is None):
            raise ValueError(
                "give exactly one of `env` (an environment variable) or `connection` (an Airflow connection)"
            )
        return self

    @property
    def where(self) -> str:
        """A human description, never the value."""
        return f"env var {self.env}" if self.env else f"Airflow connection {self.connection!r} ({self.field})"


def is_reference_mapping(value: object) -> bool:
    """True for a free-form value written as `{env: ...}` or `{connection: ...}`."""
    return isinstance(value, dict) and bool({"env", "connection"} & value.keys())


# The tags of `value_or_reference`; the loader drops them from error locations.
VALUE_TAG, REFERENCE_TAG = "value", "reference"


def _value_or_reference_tag(value: object) -> str:
    return REFERENCE_TAG if isinstance(value, dict | SecretRef) else VALUE_TAG


def value_or_reference(value_type: Any) -> Any:
    """A header or parameter value: written out, or `{env: NAME}` / `{connection: ID, field: ...}`.

    A mapping is always read as a reference, so a mistake in one (`{evn: X}`) is reported as such
    rather than as "not a string".
    """
    return Annotated[
        Union[Annotated[value_type, Tag(VALUE_TAG)], Annotated[SecretRef, Tag(REFERENCE_TAG)]],  # noqa: UP007
        Discriminator(_value_or_reference_tag),
    ]


class SourceBase(StrictModel):
    """Fields every source kind accepts, and the questions every kind answers."""

    # True when the kind's reader applies `on_empty` itself, as it reads (sources/empty_input.py).
    READER_APPLIES_ON_EMPTY: ClassVar[bool] = False
    # True when its reader checks each record's keys itself (naming the line): no map step then (registry.py).
    READER_CHECKS_RECORD_KEYS: ClassVar[bool] = False

    name: Annotated[
        str,
        Field(
            pattern=SOURCE_NAME_PATTERN,
            description="Source name; data lands in schema raw_<name>. Defaults to the file name.",
        ),
    ]
    description: str = Field("", description="Shown in the DAG docs.")
    enabled: bool = Field(True, description="Disabled sources get no task group.")
    tags: list[str] = Field(default_factory=list, description="Extra Airflow tags for the source's tasks.")
    retries: int = Field(2, ge=0, le=20, description="Airflow retries for the source's tasks.")
    schedule: str | None = Field(
        None,
        description=(
            "Cron expression (UTC) for this source's own schedule, e.g. '0 */6 * * *'; each run loads its own "
            "data interval. Default: the ELT DAG's schedule."
        ),
    )
    freshness: Freshness | None = Field(
        default_factory=lambda: DEFAULT_FRESHNESS,
        description=(
            "dbt source freshness of the tables with an incremental cursor, in the generated staging: "
            "{warn_after: {count, period}, error_after: {count, period}}, measured at the run's interval end; "
            "false checks nothing. Default: warn after 2 days, fail after 3."
        ),
    )

    @field_validator("freshness", mode="before")
    @classmethod
    def _false_is_no_freshness(cls, value: object) -> object:
        return None if value is False else value

    schema_contract: SchemaContract = Field(
        "evolve",
        description=(
            "What a change in the data's shape does: evolve (new columns and types are added), freeze (a new column "
            "or a changed type fails the run before anything loads), discard_rows (rows that do not fit are dropped)."
        ),
    )

    @field_validator("schedule")
    @classmethod
    def _schedule_is_cron(cls, value: str | None) -> str | None:
        if value is not None and (problem := cron_problem(value)):
            raise ConfigValueError(problem, fix=CRON_FIX)
        return value

    @field_validator("tags")
    @classmethod
    def _tags_not_empty(cls, tags: list[str]) -> list[str]:
        if any(not tag.strip() for tag in tags):
            raise ValueError("tags must not be empty strings")
        return tags

    @property
    def dataset_name(self) -> str:
        """The warehouse schema the source loads into."""
        return f"raw_{self.name}"

    def empty_policy_of(self, table_name: str) -> EmptyPolicy:
        """What a run does when the full-refresh table `table_name` gets no rows, and the field that says so."""
        return EmptyPolicy("fail", None)

    def on_empty_field_of(self, table_name: str) -> str | None:
        """Where `on_empty` would be set for `table_name` in the source file (None: the kind has no such field)."""
        return None

    def cross_checks(self) -> list[Issue]:
        """Problems that involve several fields; empty when the config is consistent."""
        return []

    def table_cursors(self) -> dict[str, str]:
        """Table -> incremental cursor column, for the tables the config binds to the run's interval."""
        return {}

    def secret_references(self) -> Iterator[tuple[str, ExternalReference]]:
        """(field path, reference) for every env var or connection the config points at."""
        yield from _references_in(self, "")

    def external_issues(self) -> list[Issue]:
        """Checks outside the file that need no Airflow (imports, folders); run by `mallard validate`."""
        return []


def _references_in(model: BaseModel, path: str) -> Iterator[tuple[str, ExternalReference]]:
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        here = f"{path}.{field.alias or name}" if path else (field.alias or name)
        if isinstance(value, list):
            items = [(f"{here}[{index}]", item) for index, item in enumerate(value)]
        elif isinstance(value, dict):  # headers and params: {name: value or reference}
            items = [(f"{here}.{key}", item) for key, item in value.items()]
        else:
            items = [(here, value)]
        for where, item in items:
            if isinstance(item, ExternalReference):
                yield where, item
            elif isinstance(item, BaseModel):
                yield from _references_in(item, where)
