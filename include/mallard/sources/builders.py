"""Turn a source config into dlt resources. Imported only inside tasks (dlt is heavy).

Each kind has its own module (synthetic here, files, rest_api, sql_database, python); they all
bind to the run's interval through `bound_to_interval()` and get their table hints from
`apply_table_hints()`, so every kind behaves the same way: incremental tables load exactly
[start, end) and merge, full-refresh tables replace.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import dlt
from dlt.extract import DltResource, DltSource

from include.mallard.config import SourceConfig, SyntheticSource
from include.mallard.config.models import SchemaContract, effective_disposition
from include.mallard.interval import Interval
from include.mallard.sources import synthetic

ExtractItem = DltResource | DltSource

# Mallard's three contract settings in dlt's terms. New tables may always appear (a resource
# added to the config, a nested list); what is frozen or filtered is the shape of known tables.
SCHEMA_CONTRACTS: dict[str, Any] = {
    "evolve": "evolve",
    "freeze": {"tables": "evolve", "columns": "freeze", "data_type": "freeze"},
    "discard_rows": {"tables": "evolve", "columns": "discard_row", "data_type": "discard_row"},
}


def _ceil_to_date(moment: dt.datetime) -> dt.date:
    day = moment.astimezone(dt.UTC).date()
    return day if moment == dt.datetime.combine(day, dt.time(), dt.UTC) else day + dt.timedelta(days=1)


def interval_bounds(interval: Interval, *, as_dates: bool = False) -> tuple[Any, Any]:
    """The interval as cursor bounds; for a DATE cursor, the days whose midnight falls in [start, end)."""
    if as_dates:
        return _ceil_to_date(interval.start), _ceil_to_date(interval.end)
    return interval.start, interval.end


def interval_incremental(cursor: str, interval: Interval, *, as_dates: bool = False) -> dlt.sources.incremental:
    """A dlt incremental that keeps exactly start <= cursor < end, with no state between runs."""
    start, end = interval_bounds(interval, as_dates=as_dates)
    return dlt.sources.incremental(cursor, initial_value=start, end_value=end, range_start="closed", range_end="open")


def bound_to_interval(
    resource: DltResource,
    cursor: str,
    primary_key: list[str],
    interval: Interval,
    *,
    write_disposition: str = "merge",
    as_dates: bool = False,
) -> DltResource:
    """Make `resource` load exactly start <= cursor < end and merge on `primary_key`.

    The bounds are explicit, so dlt keeps no cursor state between runs: a rerun or a backfill of
    any interval loads the same slice, and the merge replaces rows instead of appending them.
    Every incremental kind (synthetic, files, rest_api, sql_database) goes through here.
    """
    resource.apply_hints(
        write_disposition=write_disposition,
        primary_key=primary_key or None,
        incremental=interval_incremental(cursor, interval, as_dates=as_dates),
    )
    return resource


def apply_table_hints(
    resource: DltResource,
    *,
    interval: Interval,
    cursor: str | None,
    primary_key: list[str],
    write_disposition: str | None,
    as_dates: bool = False,
) -> DltResource:
    """Incremental tables (with a cursor) are bound to the interval; others load in full.

    `write_disposition` is the table's or the source's choice; unset means merge for
    incremental tables and replace (an atomic full refresh) otherwise.
    """
    disposition = effective_disposition(write_disposition, None, cursor is not None)
    if cursor:
        return bound_to_interval(
            resource, cursor, primary_key, interval, write_disposition=disposition, as_dates=as_dates
        )
    resource.apply_hints(write_disposition=disposition, primary_key=primary_key or None)
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
        node: Any = record
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            node[leaf] = parse_cursor_value(node[leaf])
        return record

    return parse


def _synthetic_resources(config: SyntheticSource, interval: Interval) -> list[DltResource]:
    # Full refresh reloads every day from first_day up to the end of the interval.
    start = interval.start if config.incremental else dt.datetime.combine(config.first_day, dt.time(), dt.UTC)
    days = list(synthetic.days_between(start, interval.end))

    def orders() -> Iterator[list[dict[str, Any]]]:
        for day in days:
            yield synthetic.day_rows(config, day)[0]

    def payments() -> Iterator[list[dict[str, Any]]]:
        for day in days:
            yield synthetic.day_rows(config, day)[1]

    customers = dlt.resource(
        synthetic.customer_rows(config), name="customers", write_disposition="replace", primary_key="id"
    )
    bounds = Interval(start, interval.end)
    facts = [
        bound_to_interval(dlt.resource(orders, name="orders"), "ordered_at", ["id"], bounds),
        bound_to_interval(dlt.resource(payments, name="payments"), "paid_at", ["id"], bounds),
    ]
    if not config.incremental:
        for resource in facts:
            resource.apply_hints(write_disposition="replace")
    return [customers, *facts]


def _builders() -> dict[type, Callable[[Any, Interval], list[Any]]]:
    # Imported here: each kind's module imports this one for the shared helpers.
    from include.mallard.config import FilesSource, PythonSource, RestApiSource, SqlDatabaseSource
    from include.mallard.sources import files, python, rest_api, sql_database

    return {
        SyntheticSource: _synthetic_resources,
        FilesSource: files.files_resources,
        RestApiSource: rest_api.rest_api_resources,
        SqlDatabaseSource: sql_database.sql_database_resources,
        PythonSource: python.python_resources,
    }


def apply_schema_contract(items: list[ExtractItem], contract: SchemaContract, source_name: str) -> list[ExtractItem]:
    """Apply the source's schema contract, measured against the schema of its last load.

    Each run starts from an empty working folder, so dlt alone would see every table as new and
    freeze nothing; the schema remembered after the previous run (schema_store) is what the
    contract compares against.
    """
    if contract == "evolve":
        return items
    from include.mallard.sources import schema_store

    setting = SCHEMA_CONTRACTS[contract]
    resources = [item for item in items if isinstance(item, DltResource)]
    sources = [item for item in items if isinstance(item, DltSource)]
    previous = schema_store.restore(source_name)
    for source in sources:
        if previous is not None and previous.name == source.schema.name:
            source.schema = previous
        source.schema_contract = setting
    for resource in resources:
        resource.apply_hints(schema_contract=setting)
    if resources and previous is not None:
        sources.append(DltSource(previous, previous.name, resources))
        return list(sources)
    return [*sources, *resources]


def build_resources(config: SourceConfig, interval: Interval) -> list[Any]:
    """The dlt resources (or sources) that load `config` for `interval`."""
    items = _builders()[type(config)](config, interval)
    return apply_schema_contract(items, config.schema_contract, config.name)
