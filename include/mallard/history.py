"""Run history in the warehouse: schema `mallard_meta`, written by the tasks that write the warehouse.

Three tables, kept across restarts and queryable like any other (the UI reads them from the
snapshot):

- `loads`: one row per (DAG run, source, table) with the rows the run's load package had for the
  table, the run's interval, the dlt load id, timing and status. Written by the `load` task in
  its own warehouse connection, right after dlt's load. `started_at` is when the extract began,
  `finished_at` when the load ended, `duration_seconds` the time spent extracting and loading
  (not the time queued for the warehouse pool). A failed load has `status` 'failed', `rows`
  null and the error's first lines (secrets masked); a source whose extract failed, or whose
  tables are unknown, has one row with `table_name` null. Each attempt replaces the run's rows
  for the source, so a retried load is counted once.
- `schema_changes`: what the run changed in `raw_<source>`: columns added to a table the source
  had loaded before (`added`; not on a source's first load, which is the baseline), widened
  types (`type_changed`) and new variant columns (`variant`: `column_name` is the variant column,
  e.g. `qty__v_text`, `old_type` the type of `qty`), from `ingest.extract`'s drift report.
- `dbt_nodes`: one row per node of the run's `dbt build`, from dbt's `run_results.json` (kept by
  the build, recorded by the run's last task).

What a task cannot write itself (an extract never opens the warehouse, a load that could not get
the warehouse lock, the build's results) waits for the run's last task: `history_queue.py`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

SCHEMA = "mallard_meta"
ERROR_LINES = 20
ERROR_CHARS = 4000
RESOURCE_TYPES = {"model": "model", "test": "test", "unit_test": "test", "seed": "seed", "snapshot": "snapshot"}

DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.loads (
    dag_id varchar, run_id varchar, source varchar, table_name varchar, rows bigint,
    interval_start timestamptz, interval_end timestamptz, load_id varchar,
    started_at timestamptz, finished_at timestamptz, duration_seconds double precision,
    status varchar, error varchar
);
create table if not exists {SCHEMA}.schema_changes (
    dag_id varchar, run_id varchar, source varchar, table_name varchar, column_name varchar,
    change varchar, old_type varchar, new_type varchar, seen_at timestamptz
);
create table if not exists {SCHEMA}.dbt_nodes (
    dag_id varchar, run_id varchar, unique_id varchar, resource_type varchar, name varchar,
    status varchar, failures bigint, message varchar, execution_seconds double precision, finished_at timestamptz
);
"""


@dataclass(frozen=True)
class RunRef:
    """The DAG run that history rows belong to."""

    dag_id: str
    run_id: str


@dataclass(frozen=True)
class LoadRow:
    dag_id: str
    run_id: str
    source: str
    table_name: str | None
    rows: int | None
    interval_start: dt.datetime | None
    interval_end: dt.datetime | None
    load_id: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime
    duration_seconds: float | None
    status: str  # 'success' | 'failed'
    error: str | None = None


@dataclass(frozen=True)
class SchemaChangeRow:
    dag_id: str
    run_id: str
    source: str
    table_name: str
    column_name: str
    change: str  # 'added' | 'type_changed' | 'variant'
    old_type: str | None
    new_type: str | None
    seen_at: dt.datetime


@dataclass(frozen=True)
class DbtNodeRow:
    dag_id: str
    run_id: str
    unique_id: str
    resource_type: str
    name: str
    status: str
    failures: int | None
    message: str | None
    execution_seconds: float | None
    finished_at: dt.datetime | None


_ROW_TYPES: dict[str, type] = {"loads": LoadRow, "schema_changes": SchemaChangeRow, "dbt_nodes": DbtNodeRow}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def clean_error(error: BaseException | str) -> str:
    """The first lines of an error, with every secret Airflow knows of masked (`***`)."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    lines = text.strip().splitlines()
    short = "\n".join(lines[:ERROR_LINES])
    if len(lines) > ERROR_LINES:
        short += f"\n... ({len(lines) - ERROR_LINES} more lines in the task log)"
    short = short[:ERROR_CHARS]
    try:
        from airflow.sdk.log import redact

        short = str(redact(short))
    except Exception:  # outside Airflow there is no masker; the secrets module masks what it resolves
        pass
    return short


# --- writing -------------------------------------------------------------------------------------


class _ServerStatements:
    """`execute`/`executemany` with `?` parameters over a DB-API connection in autocommit (psycopg2's)."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> None:
        with self._connection.cursor() as cursor:
            cursor.execute(sql.replace("?", "%s"), tuple(parameters) or None)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._connection.cursor() as cursor:
            cursor.executemany(sql.replace("?", "%s"), [tuple(row) for row in rows])


def statements(connection: Any) -> Any:
    """The warehouse connection as the writers here use it: DuckDB's as is, a PostgreSQL one adapted."""
    return connection if type(connection).__module__.lstrip("_").startswith("duckdb") else _ServerStatements(connection)


def ensure_tables(connection: Any) -> None:
    """Create schema `mallard_meta` and its tables when missing (a DuckDB or PostgreSQL connection)."""
    connection = statements(connection)
    for statement in filter(str.strip, DDL.split(";")):
        connection.execute(statement)


def _insert(connection: Any, table: str, rows: Sequence[Any]) -> None:
    if not rows:
        return
    names = [f.name for f in fields(_ROW_TYPES[table])]
    sql = f"insert into {SCHEMA}.{table} ({', '.join(names)}) values ({', '.join('?' * len(names))})"
    connection.executemany(sql, [[getattr(row, name) for name in names] for row in rows])


def write(
    connection: Any,
    table: str,
    rows: Sequence[Any],
    *,
    replace: Mapping[str, Any],
) -> None:
    """Replace the rows of `table` matching `replace` (column -> value) with `rows`, in one transaction."""
    ensure_tables(connection)
    connection = statements(connection)
    where = " and ".join(f"{column} = ?" for column in replace)
    connection.execute("begin transaction")
    try:
        connection.execute(f"delete from {SCHEMA}.{table} where {where}", list(replace.values()))
        _insert(connection, table, rows)
        connection.execute("commit")
    except BaseException:
        connection.execute("rollback")
        raise


def write_loads(connection: Any, dag_id: str, run_id: str, source: str, rows: Sequence[LoadRow]) -> None:
    """This attempt's rows for (run, source) in `loads`, replacing an earlier attempt's."""
    write(connection, "loads", rows, replace={"dag_id": dag_id, "run_id": run_id, "source": source})


def write_schema_changes(
    connection: Any, dag_id: str, run_id: str, source: str, rows: Sequence[SchemaChangeRow]
) -> None:
    write(connection, "schema_changes", rows, replace={"dag_id": dag_id, "run_id": run_id, "source": source})


def write_dbt_nodes(connection: Any, dag_id: str, run_id: str, rows: Sequence[DbtNodeRow]) -> None:
    write(connection, "dbt_nodes", rows, replace={"dag_id": dag_id, "run_id": run_id})


# --- rows of one load -------------------------------------------------------------------------------


def load_rows(
    run: RunRef,
    source: str,
    facts: Mapping[str, Any],
    *,
    load_ids: Sequence[str] = (),
    seconds: float = 0.0,
    error: BaseException | str | None = None,
) -> list[LoadRow]:
    """The `loads` rows of one attempt of (run, source), from what the extract saw (`facts`).

    `facts`: the extract's `rows` per table, the root tables its resources load (`built`, with
    0 rows when the interval had none), `interval`, `started_at` and `seconds`. With `error`,
    the attempt failed: every table gets `rows` null and the error (one row, table null, when no
    table is known, e.g. the extract failed).
    """
    rows_per_table = {table: int(count) for table, count in facts.get("rows", {}).items()}
    for table in facts.get("built", []):
        rows_per_table.setdefault(table, 0)
    interval = facts.get("interval") or [None, None]
    finished = now()
    started = parse_timestamp(facts.get("started_at"))
    common = {
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "source": source,
        "interval_start": parse_timestamp(interval[0]),
        "interval_end": parse_timestamp(interval[1]),
        # Several packages only when a retry finished an earlier attempt's package too.
        "load_id": ",".join(load_ids) or None,
        "started_at": started or finished,
        "finished_at": finished,
        "duration_seconds": float(facts.get("seconds") or 0.0) + seconds,
        "status": "failed" if error is not None else "success",
        "error": clean_error(error) if error is not None else None,
    }
    if error is not None:
        return [LoadRow(table_name=table, rows=None, **common) for table in sorted(rows_per_table) or [None]]
    return [LoadRow(table_name=table, rows=count, **common) for table, count in sorted(rows_per_table.items())]


def schema_change_rows(run: RunRef, source: str, facts: Mapping[str, Any]) -> list[SchemaChangeRow]:
    """The `schema_changes` rows of a load, from the changes its extract saw."""
    seen = parse_timestamp(facts.get("started_at")) or now()
    return [
        SchemaChangeRow(
            run.dag_id, run.run_id, source, c["table"], c["column"], c["change"], c.get("old"), c.get("new"), seen
        )
        for c in facts.get("schema_changes", [])
    ]


# --- what the extract saw -------------------------------------------------------------------------


def schema_changes(
    previous: Mapping[str, Mapping[str, str]] | None,
    current: Mapping[str, Mapping[str, str]],
    variants: set[tuple[str, str]],
    drift: Iterable[Mapping[str, Any]],
    *,
    against_loads: set[str],
) -> list[dict[str, Any]]:
    """The changes of one extract, as {table, column, change, old, new} dicts.

    `previous`/`current`: table -> column -> type of the last load and of this one (None on a
    source's first load: nothing is "added" then). `variants`: the (table, column) pairs that are
    variant columns. `drift`: `ingest.extract`'s report; only items against a load (in
    `against_loads`) are changes of the warehouse (a mismatch with a dbt declaration is not).
    """
    changes = []
    for item in drift:
        if item.get("against") not in against_loads:
            continue
        if item.get("variant"):
            changes.append(_change(item["table"], item["variant"], "variant", item.get("old"), item.get("new")))
        else:
            changes.append(_change(item["table"], item["column"], "type_changed", item.get("old"), item.get("new")))
    if previous is not None:
        for table, columns in current.items():
            before = previous.get(table, {})
            for column, new_type in columns.items():
                if column not in before and not column.startswith("_dlt") and (table, column) not in variants:
                    changes.append(_change(table, column, "added", None, new_type))
    return changes


def _change(table: str, column: str, change: str, old: str | None, new: str | None) -> dict[str, Any]:
    return {"table": table, "column": column, "change": change, "old": old, "new": new}


# --- dbt's run results ----------------------------------------------------------------------------


def parse_timestamp(value: Any) -> dt.datetime | None:
    """An ISO timestamp (dbt's `Z` too) as an aware datetime; None when empty or not one."""
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def dbt_nodes(run_results: Mapping[str, Any], dag_id: str, run_id: str) -> list[DbtNodeRow]:
    """The rows of `dbt_nodes` for one `run_results.json` document (models, tests, seeds, snapshots)."""
    generated = parse_timestamp(run_results.get("metadata", {}).get("generated_at"))
    rows = []
    for result in run_results.get("results", []):
        unique_id = str(result.get("unique_id", ""))
        parts = unique_id.split(".")
        resource_type = RESOURCE_TYPES.get(parts[0])
        if resource_type is None or len(parts) < 3:
            continue  # operations (hooks) and sources are no nodes of the build's graph here
        finished = [parse_timestamp(t.get("completed_at")) for t in result.get("timing") or []]
        message = result.get("message")
        rows.append(
            DbtNodeRow(
                dag_id=dag_id,
                run_id=run_id,
                unique_id=unique_id,
                resource_type=resource_type,
                name=parts[2],
                status=str(result.get("status")),
                failures=result.get("failures"),
                message=clean_error(str(message)) if message is not None else None,
                execution_seconds=result.get("execution_time"),
                finished_at=max((f for f in finished if f), default=generated),
            )
        )
    return rows
