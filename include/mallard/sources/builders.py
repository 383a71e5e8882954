"""Turn a source config into dlt resources. Imported only inside tasks (dlt is heavy)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import dlt
from dlt.extract import DltResource
from dlt.sources.filesystem import filesystem, read_csv_duckdb

from include.mallard.config import FilesSource, SourceConfig, SyntheticSource
from include.mallard.interval import Interval
from include.mallard.paths import resolve_project_path
from include.mallard.sources import synthetic


def _synthetic_resources(config: SyntheticSource, interval: Interval) -> list[DltResource]:
    def orders() -> Iterator[list[dict[str, Any]]]:
        for day in synthetic.days_between(interval.start, interval.end):
            day_orders, _ = synthetic.day_rows(config, day)
            yield [o for o in day_orders if interval.start <= o["ordered_at"] < interval.end]

    def payments() -> Iterator[list[dict[str, Any]]]:
        for day in synthetic.days_between(interval.start, interval.end):
            _, day_payments = synthetic.day_rows(config, day)
            yield [p for p in day_payments if interval.start <= p["paid_at"] < interval.end]

    return [
        dlt.resource(synthetic.customer_rows(config), name="customers", write_disposition="replace", primary_key="id"),
        dlt.resource(orders, name="orders", write_disposition="merge", primary_key="id"),
        dlt.resource(payments, name="payments", write_disposition="merge", primary_key="id"),
    ]


def _bucket_url(path: str) -> str:
    # fsspec URLs pass through; local folders are resolved against the project root.
    return path if "://" in path else str(resolve_project_path(path))


def _files_resources(config: FilesSource, interval: Interval) -> list[DltResource]:
    resources = []
    for table in config.tables:
        files = filesystem(bucket_url=_bucket_url(config.path), file_glob=table.glob)
        reader = (files | read_csv_duckdb(use_pyarrow=True)).with_name(table.name)
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
