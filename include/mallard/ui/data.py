"""What the UI pages read: the published read-only snapshot of the warehouse, never the warehouse.

DuckDB lets no writer in while any process holds a file open, even read-only, so the pages read
only the snapshot that each run publishes (`warehouse.snapshot_path()`), one short read-only
connection per request. The run history is in its schema `mallard_meta` (written by the load task
and the dbt build, include/mallard/history.py): `loads`, `dbt_nodes`, `schema_changes`. Any of
them may be missing (before the first run, or a warehouse older than the history): the pages then
say "no load yet" instead of failing.

duckdb is imported inside the functions: the plugin module is imported by every Airflow process.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.mallard.ui.text import shown_text
from include.mallard.warehouse import FULL_REFRESH_SWAP_SUFFIX, quote_identifier, snapshot_path

if TYPE_CHECKING:
    import duckdb

META_SCHEMA = "mallard_meta"
PAGE_SIZE = 50
# dlt's bookkeeping tables in every raw schema: not data a user loaded.
_DLT_TABLE_PREFIX = "_dlt_"


class SnapshotError(RuntimeError):
    """The snapshot exists but cannot be read; the message says so without a host path."""


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str


@dataclass(frozen=True)
class TableLoad:
    """One table of one load (a row of mallard_meta.loads)."""

    table_name: str | None
    rows: int | None
    status: str
    error: str | None


@dataclass(frozen=True)
class Load:
    """A source's load in one DAG run: the rows per table and when, how long, which dlt load."""

    source: str
    dag_id: str
    run_id: str
    interval_start: dt.datetime | None
    interval_end: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration_seconds: float | None
    load_ids: tuple[str, ...]
    tables: tuple[TableLoad, ...]

    @property
    def failed(self) -> bool:
        return any(table.status != "success" for table in self.tables)


@dataclass(frozen=True)
class SchemaChange:
    table_name: str
    column_name: str
    change: str
    old_type: str | None
    new_type: str | None
    seen_at: dt.datetime | None
    run_id: str


@dataclass(frozen=True)
class DbtNode:
    unique_id: str
    resource_type: str
    name: str
    status: str
    failures: int | None
    message: str | None
    execution_seconds: float | None


@dataclass(frozen=True)
class SourceRows:
    """Rows one run loaded into one table of one source."""

    source: str
    table_name: str | None
    rows: int | None
    status: str
    error: str | None


@dataclass
class Run:
    """What one DAG run did, from the history tables."""

    dag_id: str
    run_id: str
    last_seen: dt.datetime | None = None
    interval_start: dt.datetime | None = None
    interval_end: dt.datetime | None = None
    loads: list[SourceRows] = field(default_factory=list)
    nodes: list[DbtNode] = field(default_factory=list)


@dataclass(frozen=True)
class TablePage:
    """One page of a table's rows."""

    schema: str
    table: str
    row_count: int
    columns: list[Column]
    rows: list[tuple[Any, ...]]
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.row_count // self.page_size))


class Snapshot:
    """A read-only connection to the snapshot, and the queries the pages need."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, path: Path) -> None:
        self.connection = connection
        self.path = path
        self._columns: dict[tuple[str, str], list[Column]] | None = None

    def _all(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.connection.execute(sql, params or []).fetchall()

    @property
    def columns(self) -> dict[tuple[str, str], list[Column]]:
        """(schema, table) -> its columns in order, for every table and view of the snapshot."""
        if self._columns is None:
            found: dict[tuple[str, str], list[Column]] = {}
            rows = self._all(
                "select table_schema, table_name, column_name, data_type from information_schema.columns "
                "where table_catalog = current_database() order by table_schema, table_name, ordinal_position"
            )
            for schema, table, column, data_type in rows:
                found.setdefault((schema, table), []).append(Column(column, data_type))
            self._columns = found
        return self._columns

    def has(self, schema: str, table: str) -> bool:
        return (schema, table) in self.columns

    def raw_tables(self, schema: str) -> dict[str, list[Column]]:
        """The data tables of a raw_<source> schema (dlt's `_dlt_*` tables and a failed refresh's `~swap` left out)."""
        return {
            table: columns
            for (found, table), columns in self.columns.items()
            if found == schema
            and not table.startswith(_DLT_TABLE_PREFIX)
            and not table.endswith(FULL_REFRESH_SWAP_SUFFIX)
        }

    def _has_meta(self, table: str) -> bool:
        return self.has(META_SCHEMA, table)

    def last_loads(self, source: str) -> tuple[Load | None, Load | None]:
        """(the source's last load, its last successful load if the last one failed)."""
        if not self._has_meta("loads"):
            return None, None
        runs = self._all(
            f"select dag_id, run_id, bool_and(status = 'success') from {META_SCHEMA}.loads where source = ? "
            "group by dag_id, run_id order by max(finished_at) desc nulls last limit 20",
            [source],
        )
        if not runs:
            return None, None
        last = self._load(source, runs[0][0], runs[0][1])
        if runs[0][2]:
            return last, None
        good = next((run for run in runs[1:] if run[2]), None)
        return last, self._load(source, good[0], good[1]) if good else None

    def _load(self, source: str, dag_id: str, run_id: str) -> Load:
        # A retried load writes its rows again: keep each table's latest row of the run.
        rows = self._all(
            "select table_name, rows, status, error, interval_start, interval_end, load_id, started_at, "
            f"finished_at, duration_seconds from {META_SCHEMA}.loads where source = ? and dag_id = ? and run_id = ? "
            "qualify row_number() over (partition by table_name order by finished_at desc nulls last) = 1 "
            "order by table_name nulls first",
            [source, dag_id, run_id],
        )
        tables = tuple(TableLoad(r[0], r[1], r[2], shown_text(r[3]) if r[3] else None) for r in rows)
        durations = [r[9] for r in rows if r[9] is not None]
        return Load(
            source=source,
            dag_id=dag_id,
            run_id=run_id,
            interval_start=_first(r[4] for r in rows),
            interval_end=_first(r[5] for r in rows),
            started_at=min((r[7] for r in rows if r[7] is not None), default=None),
            finished_at=max((r[8] for r in rows if r[8] is not None), default=None),
            duration_seconds=max(durations) if durations else None,
            load_ids=tuple(sorted({r[6] for r in rows if r[6]})),
            tables=tables,
        )

    def schema_changes(self, source: str, limit: int = 50) -> list[SchemaChange]:
        if not self._has_meta("schema_changes"):
            return []
        rows = self._all(
            "select table_name, column_name, change, old_type, new_type, seen_at, run_id "
            f"from {META_SCHEMA}.schema_changes where source = ? order by seen_at desc nulls last, table_name, "
            "column_name limit ?",
            [source, limit],
        )
        return [SchemaChange(*row) for row in rows]

    def newest_value(self, schema: str, table: str, column: str) -> Any:
        """max(column) of the table: the newest cursor value loaded."""
        [(value,)] = self._all(
            f"select max({quote_identifier(column)}) from {quote_identifier(schema)}.{quote_identifier(table)}"
        )
        return value

    def runs(self, limit: int = 20) -> list[Run]:
        """The latest runs that left history, newest first, each with its loads and dbt nodes."""
        runs = sorted(self._runs("true", []).values(), key=lambda run: _sort_time(run.last_seen), reverse=True)
        for run in runs[:limit]:
            self._fill(run)
        return runs[:limit]

    def run(self, dag_id: str, run_id: str) -> Run | None:
        """One run's history, or None when it left none."""
        run = self._runs("dag_id = ? and run_id = ?", [dag_id, run_id]).get((dag_id, run_id))
        if run is not None:
            self._fill(run)
        return run

    def _runs(self, where: str, params: list[Any]) -> dict[tuple[str, str], Run]:
        keys: dict[tuple[str, str], Run] = {}
        if self._has_meta("loads"):
            for dag_id, run_id, seen, start, end in self._all(
                "select dag_id, run_id, max(finished_at), min(interval_start), max(interval_end) "
                f"from {META_SCHEMA}.loads where {where} group by dag_id, run_id",
                params,
            ):
                keys[(dag_id, run_id)] = Run(dag_id, run_id, seen, start, end)
        if self._has_meta("dbt_nodes"):
            for dag_id, run_id, seen in self._all(
                f"select dag_id, run_id, max(finished_at) from {META_SCHEMA}.dbt_nodes where {where} "
                "group by dag_id, run_id",
                params,
            ):
                run = keys.setdefault((dag_id, run_id), Run(dag_id, run_id))
                run.last_seen = max((t for t in (run.last_seen, seen) if t is not None), default=None, key=_sort_time)
        return keys

    def _fill(self, run: Run) -> None:
        if self._has_meta("loads"):
            rows = self._all(
                f"select source, table_name, rows, status, error from {META_SCHEMA}.loads "
                "where dag_id = ? and run_id = ? "
                "qualify row_number() over (partition by source, table_name order by finished_at desc nulls last) = 1 "
                "order by source, table_name nulls first",
                [run.dag_id, run.run_id],
            )
            run.loads = [SourceRows(r[0], r[1], r[2], r[3], shown_text(r[4]) if r[4] else None) for r in rows]
        if self._has_meta("dbt_nodes"):
            rows = self._all(
                "select unique_id, resource_type, name, status, failures, message, execution_seconds "
                f"from {META_SCHEMA}.dbt_nodes where dag_id = ? and run_id = ? "
                "qualify row_number() over (partition by unique_id order by finished_at desc nulls last) = 1 "
                "order by resource_type, name",
                [run.dag_id, run.run_id],
            )
            run.nodes = [DbtNode(*r[:5], shown_text(r[5]) if r[5] else None, r[6]) for r in rows]

    def row_count(self, schema: str, table: str) -> int:
        [(count,)] = self._all(f"select count(*) from {quote_identifier(schema)}.{quote_identifier(table)}")
        return int(count)

    def table_page(self, schema: str, table: str, page: int, page_size: int = PAGE_SIZE) -> TablePage:
        """Row count, columns and one page of rows; the caller has checked the name against the list."""
        target = f"{quote_identifier(schema)}.{quote_identifier(table)}"
        count = self.row_count(schema, table)
        page = max(1, page)
        # No ORDER BY: DuckDB keeps insertion order for a plain scan (preserve_insertion_order), and
        # the snapshot never changes under a reader, so pages neither overlap nor skip rows.
        rows = self._all(f"select * from {target} limit ? offset ?", [page_size, (page - 1) * page_size])
        return TablePage(schema, table, count, self.columns[(schema, table)], rows, page, page_size)


def _first(values: Iterator[Any]) -> Any:
    return next((value for value in values if value is not None), None)


def _sort_time(value: dt.datetime | None) -> dt.datetime:
    if value is None:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@contextmanager
def open_snapshot(path: Path | None = None) -> Iterator[Snapshot | None]:
    """A read-only Snapshot of the published file, or None when no run has published one yet."""
    import duckdb

    target = path or snapshot_path()
    if not target.is_file():
        yield None
        return
    try:
        connection = duckdb.connect(str(target), read_only=True)
    except duckdb.Error as error:
        raise SnapshotError(
            f"the warehouse snapshot {shown_text(str(target))} cannot be opened ({shown_text(str(error))}); "
            "the next successful run publishes a new one"
        ) from None
    try:
        yield Snapshot(connection, target)
    finally:
        connection.close()
