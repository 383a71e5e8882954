"""What every source kind applies to its dlt resources: the run's interval and the table's settings.

Every incremental kind (synthetic, files, rest_api, sql_database) binds to the interval through
`bound_to_interval()`, so every kind behaves the same way: incremental tables load exactly
[start, end) and merge, full-refresh tables replace.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import dlt
from dlt.extract import DltResource

from include.mallard.config import SourceConfig, TableSettings
from include.mallard.config.tables import NullCursor, TablesSource
from include.mallard.interval import Interval


def _ceil_to_date(moment: dt.datetime) -> dt.date:
    day = moment.astimezone(dt.UTC).date()
    return day if moment == dt.datetime.combine(day, dt.time(), dt.UTC) else day + dt.timedelta(days=1)


def interval_bounds(interval: Interval, *, as_dates: bool = False) -> tuple[Any, Any]:
    """The interval as cursor bounds; for a DATE cursor, the days whose midnight falls in [start, end)."""
    if as_dates:
        return _ceil_to_date(interval.start), _ceil_to_date(interval.end)
    return interval.start, interval.end


def interval_incremental(
    cursor: str, interval: Interval, *, as_dates: bool = False, on_missing: str = "raise"
) -> dlt.sources.incremental:
    """A dlt incremental that keeps exactly start <= cursor < end, with no state between runs.

    `on_missing` is dlt's `on_cursor_value_missing` for a row whose cursor is null or missing.
    """
    start, end = interval_bounds(interval, as_dates=as_dates)
    return dlt.sources.incremental(
        cursor,
        initial_value=start,
        end_value=end,
        range_start="closed",
        range_end="open",
        on_cursor_value_missing=on_missing,  # type: ignore[arg-type]
    )


class NullCursorRows(ValueError):
    """Rows without a cursor value reached a table with `on_null_cursor: fail`."""

    def __init__(self, table: str, cursor: str, count: int) -> None:
        super().__init__(f"table {table!r}: {count} row(s) without a value in the cursor {cursor!r}")
        self.table, self.cursor, self.count = table, cursor, count


def _holder(record: Any, parents: list[str]) -> Any:
    """The object that holds a dotted path's last key (None if a step is missing or not an object)."""
    for key in parents:
        record = record.get(key) if isinstance(record, dict) else None
    return record


def null_cursor_check(table: str, cursor: str) -> Callable[[Any, Any], Any]:
    """A pipe step that fails on the first item holding a row whose cursor (a dotted path) is null or missing.

    dlt's own check cannot serve: a SQL table's query leaves such rows out before dlt sees them,
    so they were never loaded and nothing said so.
    """
    *parents, leaf = cursor.split(".")

    def value(row: Any) -> Any:
        node = _holder(row, parents)
        return node.get(leaf) if isinstance(node, dict) else None

    def check(item: Any, meta: Any = None) -> Any:
        if hasattr(item, "schema") and hasattr(item, "column"):  # an Arrow table or batch
            nulls = item.column(cursor).null_count if cursor in item.schema.names else 0
        else:
            nulls = sum(1 for row in (item if isinstance(item, list) else [item]) if value(row) is None)
        if nulls:
            raise NullCursorRows(table, cursor, nulls)
        return item

    return check


def bound_to_interval(
    resource: DltResource,
    cursor: str,
    primary_key: list[str],
    interval: Interval,
    *,
    write_disposition: str = "merge",
    as_dates: bool = False,
    on_null_cursor: NullCursor = "fail",
) -> DltResource:
    """Make `resource` load exactly start <= cursor < end and merge on `primary_key`.

    The bounds are explicit, so dlt keeps no cursor state between runs: a rerun or a backfill of
    any interval loads the same slice, and the merge replaces rows instead of appending them. A
    row without a cursor value belongs to no interval: `on_null_cursor` says what it does.
    """
    # Under `fail`, dlt lets such rows through (a SQL query then selects them too) for the check.
    on_missing = "exclude" if on_null_cursor == "exclude" else "include"
    resource.apply_hints(
        write_disposition=write_disposition,
        primary_key=primary_key or None,
        incremental=interval_incremental(cursor, interval, as_dates=as_dates, on_missing=on_missing),
    )
    if write_disposition == "merge" and primary_key and "." not in cursor:
        # Two versions of a row in one interval: the newest wins. Without a sort dlt keeps either.
        resource.apply_hints(columns={cursor: {"name": cursor, "dedup_sort": "desc"}})
    if on_null_cursor == "fail":
        resource.add_step(null_cursor_check(resource.name, cursor))
    return resource


def apply_table_hints(
    resource: DltResource,
    settings: TableSettings,
    *,
    cursor: str | None,
    interval: Interval,
    as_dates: bool = False,
) -> DltResource:
    """A table with a cursor is bound to the interval; others load in full, with the table's settings."""
    if cursor:
        return bound_to_interval(
            resource,
            cursor,
            settings.primary_key,
            interval,
            write_disposition=settings.write_disposition,
            as_dates=as_dates,
            on_null_cursor=settings.on_null_cursor,
        )
    resource.apply_hints(write_disposition=settings.write_disposition, primary_key=settings.primary_key or None)
    return resource


def parse_cursor_value(value: Any) -> Any:
    """An API's timestamp (ISO text, date text or epoch seconds) as an aware datetime, to compare with the bounds."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return value  # left as is: dlt then reports the cursor it cannot compare
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return value


def typed_cursor(cursor: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A map step that makes a record's cursor (dotted path) an aware datetime; add it before the interval filter.

    JSON has no time type: an API or a JSONL file gives text or epoch numbers, which dlt cannot
    compare with the interval's datetime bounds.
    """
    *parents, leaf = cursor.split(".")

    def parse(record: dict[str, Any]) -> dict[str, Any]:
        node = _holder(record, parents)
        if isinstance(node, dict) and leaf in node:
            node[leaf] = parse_cursor_value(node[leaf])
        return record

    return parse


class CursorValueError(ValueError):
    """A table's cursor column holds values that are not dates or timestamps."""


def _table_field(config: SourceConfig, table_name: str) -> str | None:
    """Where the table is set in the source file, e.g. `tables[0]` (for messages); None if not listed."""
    if isinstance(config, TablesSource):
        for index, table in enumerate(config.tables_in_config()):
            if table.name == table_name:
                return f"{config.TABLES_FIELD}[{index}]"
    return None


def _cursor_setting(config: SourceConfig, table_name: str) -> str:
    """The cursor's field in the source file, e.g. `tables[0].cursor` or `resources[1].incremental.cursor`."""
    field = _table_field(config, table_name)
    if field is None:
        return "its table's cursor"
    return f"`{field}.incremental.cursor`" if config.kind == "rest_api" else f"`{field}.cursor`"


def _appends(config: SourceConfig, table_name: str) -> bool:
    if not isinstance(config, TablesSource):
        return False
    table = config.table_named(table_name)
    return table is not None and config.settings_of(table).write_disposition == "append"


def _in_chain(error: BaseException, kind: type[BaseException]) -> Any:
    """The first exception of type `kind` that `error` wraps (dlt wraps a step's error twice), or None."""
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, kind):
        seen = getattr(seen, "exception", None) or seen.__cause__ or seen.__context__
    return seen


def cursor_error(config: SourceConfig, interval: Interval, error: BaseException) -> CursorValueError | None:
    """dlt's IncrementalCursorInvalidCoercion inside `error` as an error that says what to fix; else None.

    dlt's own message talks about `end_value` and `.add_map()`: nothing a source config can act on.
    """
    from dlt.extract.incremental.exceptions import IncrementalCursorInvalidCoercion

    if (rows := _in_chain(error, NullCursorRows)) is not None:
        field = _table_field(config, rows.table)
        setting = f"`{field}.on_null_cursor`" if field else "the table's `on_null_cursor`"
        include = "include (every run loads them, merged on the primary key)"
        if _appends(config, rows.table):
            include = "include with `write_disposition: merge` and a primary_key (every run loads them)"
        return CursorValueError(
            f"source {config.name!r}, table {rows.table!r}: {rows.count} row(s) have no value in the cursor "
            f"{rows.cursor!r} (null or missing; counted in the first batch that has any). Such a row belongs to no "
            f"interval, so no run would load it; nothing of this run is loaded. Fix: set {setting} to {include} or "
            f"exclude (never loaded), or point {_cursor_setting(config, rows.table)} at a column that is always set."
        )
    seen = _in_chain(error, IncrementalCursorInvalidCoercion)
    if seen is None:
        return None
    table = seen.pipe_name
    found = re.search(r"with type `([^`]+)`", str(seen))
    if seen.item == "<arrow column>" or not isinstance(seen.item, str | int | float | bool):
        # Arrow data (CSV, Parquet) reports the column's type, not a value.
        sample = f"values of type {found[1] if found else 'unknown'}"
    else:
        sample = f"a value {seen.item!r}"
    return CursorValueError(
        f"source {config.name!r}, table {table!r}: the cursor column {seen.cursor_path!r} holds {sample}, not "
        f"dates or timestamps, so its rows cannot be compared with the run's interval {interval}. Fix: point "
        f"{_cursor_setting(config, table)} at a date or timestamp column, or fix the values in the data."
    )
