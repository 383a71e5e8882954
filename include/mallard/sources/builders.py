"""Turn a source config into dlt resources. Imported only inside tasks (dlt is heavy)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import dlt
from dlt.extract import DltResource
from dlt.sources.filesystem import filesystem, read_csv_duckdb

from include.mallard.config import FilesSource, SourceConfig, SyntheticSource
from include.mallard.interval import Interval
from include.mallard.paths import resolve_project_path
from include.mallard.sources import synthetic


def bound_to_interval(resource: DltResource, cursor: str, primary_key: list[str], interval: Interval) -> DltResource:
    """Make `resource` load exactly start <= cursor < end and merge on `primary_key`.

    The bounds are explicit, so dlt keeps no cursor state between runs: a rerun or a backfill of
    any interval loads the same slice, and the merge replaces rows instead of appending them.
    Every incremental kind (synthetic, files, and REST/SQL later) goes through here.
    """
    resource.apply_hints(
        write_disposition="merge",
        primary_key=primary_key,
        incremental=dlt.sources.incremental(
            cursor,
            initial_value=interval.start,
            end_value=interval.end,
            range_start="closed",
            range_end="open",
        ),
    )
    return resource


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


def _bucket_url(path: str) -> str:
    # fsspec URLs pass through; local folders are resolved against the project root.
    return path if "://" in path else str(resolve_project_path(path))


def _files_resources(config: FilesSource, interval: Interval) -> list[DltResource]:
    resources = []
    for table in config.tables:
        files = filesystem(bucket_url=_bucket_url(config.path), file_glob=table.glob)
        reader = (files | read_csv_duckdb(use_pyarrow=True)).with_name(table.name)
        if table.cursor:
            bound_to_interval(reader, table.cursor, table.primary_key, interval)
        else:
            reader.apply_hints(write_disposition="replace", primary_key=table.primary_key or None)
        resources.append(reader)
    return resources


_BUILDERS: dict[type, Callable[[Any, Interval], list[DltResource]]] = {
    SyntheticSource: _synthetic_resources,
    FilesSource: _files_resources,
}


def build_resources(config: SourceConfig, interval: Interval) -> list[DltResource]:
    """The dlt resources that load `config` for `interval`."""
    return _BUILDERS[type(config)](config, interval)
