"""dlt's schema dict -> the `Table`s and `Column`s that get staging models.

The input is what dlt stores with every load in `raw_<source>._dlt_version`. Column types come
from dlt's own DuckDB type mapper, so a model casts to exactly the type dlt created. dlt is
imported only when a type is first mapped: this module is imported at DAG parse time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["ids", "text", "numerics", "booleans", "dates", "timestamps", "other", "dlt"]
# The order of the column groups in a staging model.
KIND_ORDER: tuple[Kind, ...] = ("ids", "text", "numerics", "booleans", "dates", "timestamps", "other", "dlt")
_KIND_BY_DLT_TYPE: dict[str, Kind] = {
    "text": "text",
    "bigint": "numerics",
    "double": "numerics",
    "decimal": "numerics",
    "wei": "numerics",
    "bool": "booleans",
    "date": "dates",
    "timestamp": "timestamps",
    "time": "timestamps",
}
# dlt names a variant column <column>__v_<type>: where it puts the values that do not fit <column>'s type.
_VARIANT_NAME = re.compile(r"^(?P<base>.+)__v_[a-z0-9_]+$")


@dataclass(frozen=True)
class Column:
    """One column of a raw table, as dlt describes it."""

    name: str
    dlt_type: str
    sql_type: str
    description: str = ""
    primary_key: bool = False
    incremental: bool = False
    row_key: bool = False
    parent_key: bool = False
    root_key: bool = False
    variant_of: str | None = None  # the column whose values of another type dlt put here

    @property
    def is_dlt(self) -> bool:
        return self.name.startswith("_dlt_") or self.row_key or self.parent_key or self.root_key


@dataclass(frozen=True)
class Table:
    """One raw table that gets a staging model."""

    name: str
    columns: tuple[Column, ...]
    description: str = ""
    parent: str | None = None
    children: tuple[str, ...] = ()
    write_disposition: str = "append"

    @property
    def primary_key(self) -> list[str]:
        return [c.name for c in self.columns if c.primary_key]

    @property
    def row_key(self) -> str | None:
        return next((c.name for c in self.columns if c.row_key or c.name == "_dlt_id"), None)

    @property
    def parent_key(self) -> str | None:
        return next((c.name for c in self.columns if c.parent_key or c.name == "_dlt_parent_id"), None)

    @property
    def cursor(self) -> str | None:
        return next((c.name for c in self.columns if c.incremental), None)

    def kind_of(self, column: Column) -> Kind:
        """The group of `column` in the model: ids are `id`, `*_id` and integer or text key columns."""
        if column.is_dlt:
            return "dlt"
        text_or_integer_key = column.primary_key and column.dlt_type in ("bigint", "text")
        if text_or_integer_key or column.name == "id" or column.name.endswith("_id"):
            return "ids"
        return _KIND_BY_DLT_TYPE.get(column.dlt_type, "other")

    def keeps(self, column: Column) -> bool:
        """Whether the staging model selects `column`.

        `_dlt_id` is kept where something needs it: a table with child tables (they join to it) or
        a table without a primary key (it is the only row key). Every other column is kept.
        """
        if column.name == self.row_key:
            return bool(self.children) or not self.primary_key
        return True


@functools.cache
def _duckdb_type_mapper() -> Any:
    # dlt's own mapper, so that the types cannot drift from the tables dlt creates.
    import dlt

    return dlt.destinations.duckdb().capabilities().get_type_mapper()


def sql_type(column: Mapping[str, Any], table_name: str = "") -> str:
    """The DuckDB type dlt creates for a dlt column, lowercase as in the hand-written models."""
    # dlt's schema leaves unset hints out; a None value would read as set (precision None breaks).
    hints = {"name": "", **{key: value for key, value in column.items() if value is not None}}
    destination_type = _duckdb_type_mapper().to_destination_type(hints, {"name": table_name})
    # dlt writes DECIMAL(18,2); the models and YAML files say decimal(18, 2).
    return str(destination_type).lower().replace(",", ", ")


def tables_from_dlt_schema(schema: Mapping[str, Any], cursors: Mapping[str, str] | None = None) -> list[Table]:
    """The loaded tables of a dlt schema dict, parents before children.

    dlt's own tables (`_dlt_*`) are skipped, and so are tables without data yet (dlt creates a table
    only when data was seen) and columns without a data type (dlt never created them). `cursors`
    (table -> column) fills in incremental cursors the schema does not mark.
    """
    raw_tables = {
        name: table
        for name, table in schema.get("tables", {}).items()
        if not name.startswith("_dlt")
        and table.get("x-normalizer", {}).get("seen-data")
        and any(c.get("data_type") for c in table.get("columns", {}).values())
    }
    children: dict[str, list[str]] = {}
    for name, table in raw_tables.items():
        if table.get("parent"):
            children.setdefault(table["parent"], []).append(name)
    tables = [
        Table(
            name=name,
            columns=_columns(name, table, (cursors or {}).get(name)),
            description=(table.get("description") or "").strip(),
            parent=table.get("parent"),
            children=tuple(sorted(children.get(name, []))),
            write_disposition=_write_disposition(name, schema["tables"]),
        )
        for name, table in raw_tables.items()
    ]
    # Parents first, so a child's relationship test always names a model planned before it.
    return sorted(tables, key=lambda t: (len(_ancestors(t.name, schema["tables"])), t.name))


def _columns(table_name: str, table: Mapping[str, Any], config_cursor: str | None) -> tuple[Column, ...]:
    """The created columns of one dlt table; `config_cursor` counts only if dlt marks no cursor."""
    marked = any(c.get("incremental") for c in table["columns"].values())
    return tuple(
        Column(
            name=column_name,
            dlt_type=column["data_type"],
            sql_type=sql_type(column, table_name),
            description=(column.get("description") or "").strip(),
            primary_key=bool(column.get("primary_key")),
            incremental=bool(column.get("incremental")) or (not marked and config_cursor == column_name),
            row_key=bool(column.get("row_key")),
            parent_key=bool(column.get("parent_key")),
            root_key=bool(column.get("root_key")),
            variant_of=variant_base(table, column_name),
        )
        for column_name, column in table["columns"].items()
        if column.get("data_type")
    )


def variant_base(table: Mapping[str, Any], column_name: str) -> str | None:
    """The column that `column_name` of a dlt table is a variant of (`qty` for `qty__v_text`), or None."""
    match = _VARIANT_NAME.match(column_name)
    if match and table.get("columns", {}).get(column_name, {}).get("variant"):
        return match["base"]
    return None


def _write_disposition(name: str, tables: Mapping[str, Any]) -> str:
    """A nested table is written the way its top-level table is (dlt sets it on the top only)."""
    return tables[_ancestors(name, tables)[-1]].get("write_disposition", "append")


def _ancestors(name: str, tables: Mapping[str, Any]) -> list[str]:
    """`name`, its parent, ... up to the top-level table."""
    chain = [name]
    while tables.get(chain[-1], {}).get("parent"):
        chain.append(tables[chain[-1]]["parent"])
    return chain
