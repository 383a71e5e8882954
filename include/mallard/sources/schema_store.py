"""The schema each source loaded last, kept between runs so that schema contracts mean something.

Every run extracts into a fresh working folder and never reads state from the warehouse (that
would open DuckDB outside the writer pool), so dlt would see every table as new each time and a
`freeze` contract would never bite. After a run, `remember()` copies the pipeline's schema to
`<MALLARD_WORK_DIR>/schemas/<source>.schema.json`; the next extract `restore()`s it.

The same baseline tells a run what changed: `type_drift()` lists the columns whose type is not the
one the previous load had, and the variant columns (`<column>__v_<type>`) dlt added for values
that did not fit a column's type.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import dlt

from include.mallard.paths import work_root

PREVIOUS_LOAD = "the previous load"
FIRST_LOAD = "the first load"


def schema_file(source_name: str) -> Path:
    """Where the last schema of `source_name` is kept."""
    return work_root() / "schemas" / f"{source_name}.schema.json"


def remembered(source_name: str) -> dict[str, Any] | None:
    """The schema remembered for `source_name` as dlt's dict, or None before its first run."""
    path = schema_file(source_name)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def restore(source_name: str) -> dlt.Schema | None:
    """The schema remembered for `source_name`, or None before its first run."""
    document = remembered(source_name)
    if document is None:
        return None
    schema = dlt.Schema.from_dict(document)
    # The run's fresh working folder does not hold this schema: mark it unsaved, otherwise dlt
    # sees an unmodified schema, never writes it to the folder, and the run cannot be remembered.
    schema._stored_version_hash = None
    return schema


def has_data(table: Mapping[str, Any]) -> bool:
    """Whether dlt saw rows for `table` (it creates a table in the warehouse only then)."""
    return bool(table.get("x-normalizer", {}).get("seen-data")) and any(
        column.get("data_type") for column in table.get("columns", {}).values()
    )


def _merged(current: dict[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """`current` as the warehouse now holds it: what `previous` knew, plus what this run added.

    A run with nothing for a table (an empty interval) must not forget the table's columns (the
    next run's drift report and the load's empty-table fallback need them), and a column keeps the
    type it was created with: dlt never changes the type of an existing column.
    """
    if not previous:
        return current
    tables = current.setdefault("tables", {})
    for name, table in previous.get("tables", {}).items():
        if name.startswith("_dlt") or not has_data(table):
            continue
        if not has_data(tables.get(name, {})):
            tables[name] = table
            continue
        columns = tables[name]["columns"]
        for column_name, column in table["columns"].items():
            if column.get("data_type") and column_name in columns:
                columns[column_name] = column
    return current


def remember(source_name: str, work_dir: Path) -> Path | None:
    """Keep the default schema of the pipeline in `work_dir` (call after extract or load succeeds)."""
    pipelines = [path for path in work_dir.iterdir() if path.is_dir()] if work_dir.is_dir() else []
    if not pipelines:
        return None
    pipeline = dlt.attach(pipeline_name=pipelines[0].name, pipelines_dir=str(work_dir))
    if not pipeline.default_schema_name:
        return None
    document = _merged(pipeline.default_schema.to_dict(), remembered(source_name))
    target = schema_file(source_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: concurrent runs of one source (a backfill) never leave half a file.
    with tempfile.NamedTemporaryFile("w", dir=target.parent, suffix=".tmp", delete=False, encoding="utf-8") as tmp:
        json.dump(document, tmp)
    Path(tmp.name).replace(target)
    return target


# --- type drift ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    """One column whose type is not what it was (or what dbt declares), or a new variant column."""

    table: str
    column: str
    old: str  # the type it had in `against`
    new: str  # the type this run loads
    against: str  # PREVIOUS_LOAD, or the dbt sources file that declares the old type
    variant: str | None = None  # the new variant column that holds the values that did not fit

    def describe(self) -> str:
        """One line of the drift report in the task log."""
        if self.variant:
            return (
                f"{self.table}.{self.column}: new variant column {self.variant} ({self.new}) next to "
                f"{self.column} ({self.old}): this load has values of {self.column} that are not {self.old}"
            )
        return f"{self.table}.{self.column}: {self.old} in {self.against} -> {self.new} in this load"

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


class SchemaDriftError(ValueError):
    """A `freeze` source whose columns changed type: the run stops before anything is loaded."""


def _sql_type(column: Mapping[str, Any], table_name: str) -> str:
    from include.mallard.staging.schema import sql_type  # dlt's own DuckDB type mapper

    return sql_type(column, table_name)


def loaded_column_types(schema: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Table -> column -> DuckDB type of every table of a dlt schema dict that got rows (dlt's own left out)."""
    return {
        name: {c: _sql_type(column, name) for c, column in table["columns"].items() if column.get("data_type")}
        for name, table in schema.get("tables", {}).items()
        if not name.startswith("_dlt") and has_data(table)
    }


def type_drift(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[Drift]:
    """What this run's schema `current` changed against the previous load's `previous` (both dlt dicts).

    A column whose DuckDB type differs, and every variant column the previous load did not have
    (on a first load: every variant column, since it already means mixed types in the data).
    """
    from include.mallard.staging.schema import variant_base

    before = loaded_column_types(previous or {})
    against = PREVIOUS_LOAD if previous else FIRST_LOAD
    drift = []
    for table_name, columns in loaded_column_types(current).items():
        table = current["tables"][table_name]
        known = before.get(table_name, {})
        for name, new_type in columns.items():
            base = variant_base(table, name)
            if base is not None and name not in known:
                base_type = columns.get(base) or known.get(base) or "?"
                drift.append(Drift(table_name, base, base_type, new_type, against, variant=name))
            elif base is None and name in known and known[name] != new_type:
                drift.append(Drift(table_name, name, known[name], new_type, PREVIOUS_LOAD))
    return drift
