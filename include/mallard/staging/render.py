"""Rendering, pure: `Table`s in, file bodies out (the staging model SQL, its YAML, the sources YAML).

The house style is the hand-written models': a `source` CTE, a `renamed` CTE with typed columns
grouped by kind, one YAML file per model with its tests. Bodies come without the marker line
(`ownership.with_marker` adds it).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from include.mallard.config.freshness import DEFAULT_FRESHNESS as CONFIG_DEFAULT_FRESHNESS
from include.mallard.staging.schema import KIND_ORDER, Column, Table

# The `freshness` block of a table with an incremental cursor when its source config sets none.
DEFAULT_FRESHNESS: dict[str, Any] = CONFIG_DEFAULT_FRESHNESS.to_dbt()


def model_name(source_name: str, table_name: str) -> str:
    """The staging model of one raw table, e.g. stg_shop__orders or stg_shop__orders__items."""
    return f"stg_{source_name}__{table_name}"


@functools.cache
def _reserved_words() -> frozenset[str]:
    import duckdb

    with duckdb.connect() as connection:
        rows = connection.execute("select keyword_name from duckdb_keywords() where keyword_category = 'reserved'")
        return frozenset(name for (name,) in rows.fetchall())


def needs_quotes(name: str) -> bool:
    """Whether `name` must be quoted as a DuckDB identifier (and flagged `quote: true` in YAML)."""
    return not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or name in _reserved_words()


def quote(name: str) -> str:
    """`name` as a DuckDB identifier: quoted only when it has to be."""
    return '"' + name.replace('"', '""') + '"' if needs_quotes(name) else name


class _Dumper(yaml.SafeDumper):
    # Lists indented under their key, as in the hand-written YAML files.
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)

    # A value used twice (the freshness of several tables) is written out twice, not as &id001.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump_yaml(document: dict[str, Any]) -> str:
    text = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)
    return text.replace("version: 2\n", "version: 2\n\n", 1)


def _column_notes(table: Table, column: Column, parent_model: str | None) -> list[str]:
    """What a reader of the model needs to know about a column: keys, cursor, dlt's columns."""
    notes = []
    if column.primary_key:
        notes.append("primary key")
    if column.incremental:
        notes.append("incremental cursor")
    if column.name == table.parent_key:
        notes.append(f"joins {parent_model or table.parent}._dlt_id")
    elif column.name == table.row_key:
        notes.append("row key set by dlt" + ("; nested tables join on it" if table.children else ""))
    elif column.root_key or column.name == "_dlt_root_id":
        notes.append("_dlt_id of the top-level row")
    elif column.name == "_dlt_list_idx":
        notes.append("position in the parent's list")
    elif column.name == "_dlt_load_id":
        notes.append("the dlt load that wrote the row")
    # Variant columns are kept as they are, never coalesced into their base column: a text value
    # of a number column cannot be cast back without losing it (docs/staging.md, "Variant columns").
    if column.variant_of:
        base = next((c for c in table.columns if c.name == column.variant_of), None)
        base_type = base.sql_type if base else "its type"
        notes.append(f"variant of {column.variant_of}: its values that are not {base_type}; not coalesced into it")
    variants = [c.name for c in table.columns if c.variant_of == column.name]
    if variants:
        notes.append(f"values of other types are in {', '.join(variants)}, not here")
    return notes


def _parent_model(source_name: str, table: Table) -> str | None:
    return model_name(source_name, table.parent) if table.parent else None


def render_model_sql(source_name: str, table: Table) -> str:
    """The staging model of `table` (without the marker line)."""
    parent_model = _parent_model(source_name, table)
    selected = [c for c in table.columns if table.keeps(c)]
    groups = [(kind, [c for c in selected if table.kind_of(c) == kind]) for kind in KIND_ORDER]
    groups = [(kind, columns) for kind, columns in groups if columns]
    blocks = []
    for index, (kind, columns) in enumerate(groups):
        lines = [f"        ---------- {kind}"]
        for position, column in enumerate(columns):
            last = index == len(groups) - 1 and position == len(columns) - 1
            name = quote(column.name)
            # dlt's columns pass through untouched; the others are cast to the type dlt declared.
            expression = name if kind == "dlt" else f"cast({name} as {column.sql_type}) as {name}"
            notes = _column_notes(table, column, parent_model)
            comment = f"  -- {', '.join(notes)}" if notes else ""
            lines.append(f"        {expression}{'' if last else ','}{comment}")
        blocks.append("\n".join(lines))
    columns_sql = "\n\n".join(blocks)
    return (
        "with\n\n"
        "source as (\n\n"
        f"    select * from {{{{ source('{source_name}', '{table.name}') }}}}\n\n"
        "),\n\n"
        "renamed as (\n\n"
        "    select\n\n"
        f"{columns_sql}\n\n"
        "    from source\n\n"
        ")\n\n"
        "select * from renamed\n"
    )


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _item(table: Table) -> str:
    """What a nested table holds: `items` for orders__items (dlt names it <parent>__<field>)."""
    return table.name.removeprefix(f"{table.parent}__")


def _source_table_description(table: Table) -> str:
    if table.description:
        return table.description
    if table.parent:
        return f"The nested `{_item(table)}` of {table.parent}, one row per item (dlt's child table of {table.parent})."
    return f"Loaded by dlt with write disposition {table.write_disposition}."


def _model_description(source_name: str, table: Table) -> str:
    if table.description:
        return f"Staging view of raw_{source_name}.{table.name}. {table.description}"
    if table.parent:
        return f"Staging view of raw_{source_name}.{table.name}, the nested `{_item(table)}` of {table.parent}."
    return f"Staging view of raw_{source_name}.{table.name}, typed as dlt loaded it."


def _typed_column(column: Column) -> dict[str, Any]:
    """A column's YAML entry up to its data type (model and sources YAML alike)."""
    entry: dict[str, Any] = {"name": column.name}
    if needs_quotes(column.name):
        entry["quote"] = True
    entry["data_type"] = column.sql_type
    return entry


def _column_tests(table: Table, column: Column, parent_ref: str | None) -> list[Any]:
    """The data tests of a model column: its keys, and a nested table's link to its parent."""
    # A merge or replace table holds one row per key; an append table may repeat it by design.
    keyed = table.write_disposition in ("merge", "replace")
    if column.primary_key:
        return ["not_null", "unique"] if table.primary_key == [column.name] and keyed else ["not_null"]
    if column.name == table.row_key:
        return ["not_null", "unique"]
    if column.name == table.parent_key:
        relationship = {"relationships": {"arguments": {"to": parent_ref, "field": "_dlt_id"}}}
        return ["not_null", relationship] if parent_ref else ["not_null"]
    return []


def _model_column(source_name: str, table: Table, column: Column, parent_ref: str | None) -> dict[str, Any]:
    entry = _typed_column(column)
    notes = _column_notes(table, column, _parent_model(source_name, table))
    # dlt describes a variant column with its own name only ("Variant of column x__v_text"): say what it holds.
    own = column.description if not column.variant_of else ""
    description = own or (_sentence(", ".join(notes)) if notes else "")
    if description:
        entry["description"] = description
    tests = _column_tests(table, column, parent_ref)
    if tests:
        entry["data_tests"] = tests
    return entry


def render_model_yml(source_name: str, table: Table, parent_ref: str | None) -> str:
    """The YAML of `table`'s staging model (without the marker line).

    `parent_ref` is what a nested table's `_dlt_parent_id` is tested against: `ref(...)` of the
    parent model, or `source(...)` when the parent model is the user's; None: no relationship test.
    """
    key = table.primary_key
    model: dict[str, Any] = {
        "name": model_name(source_name, table.name),
        "description": _model_description(source_name, table),
    }
    if len(key) > 1 and table.write_disposition in ("merge", "replace"):
        # dbt has no built-in multi-column unique test: test the key as one row value.
        model["data_tests"] = [{"unique": {"arguments": {"column_name": f"row({', '.join(map(quote, key))})"}}}]
    model["columns"] = [_model_column(source_name, table, c, parent_ref) for c in table.columns if table.keeps(c)]
    return _dump_yaml({"version": 2, "models": [model]})


def _source_table(table: Table, freshness: Mapping[str, Any] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": table.name, "description": _source_table_description(table)}
    if table.cursor and freshness:
        cursor = next(c for c in table.columns if c.name == table.cursor)
        # dbt computes the age in Python: a date cursor must come back as a timestamp.
        loaded_at = quote(cursor.name)
        if cursor.dlt_type != "timestamp":
            loaded_at = f"cast({loaded_at} as timestamp)"
        entry["config"] = {"loaded_at_field": loaded_at, "freshness": dict(freshness)}
    columns = []
    for column in table.columns:
        item = _typed_column(column)
        if column.description:
            item["description"] = column.description
        columns.append(item)
    entry["columns"] = columns
    return entry


def render_sources_yml(
    source_name: str,
    tables: Iterable[Table],
    *,
    description: str = "",
    freshness: Mapping[str, Any] | None = DEFAULT_FRESHNESS,
) -> str:
    """`_<source>__sources.yml` for `tables` (without the marker line)."""
    source = {
        "name": source_name,
        "description": description or f"Loaded by dlt into raw_{source_name}.",
        "schema": f"raw_{source_name}",
        "tables": [_source_table(table, freshness) for table in tables],
    }
    return _dump_yaml({"version": 2, "sources": [source]})
