"""A full-refresh table that gets no rows: fail the run, or keep the table's rows (`on_empty`).

Left to dlt, a `replace` resource that yields nothing kept the table's previous rows, as if they
were current, when the run's schema was new (the default `evolve` contract), and emptied the table
when the schema knew it (`freeze` and `discard_rows` restore the last run's schema): the same empty
input gave two different results, both silent. Mallard decides by the table's `on_empty` instead,
for every kind: fail (the default), or keep the rows with a warning (warn) or an info line (ok).
`kind: files` applies the policy while it reads (it knows which files it found);
`check_full_refreshes` applies it to every other kind after the extract.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from include.mallard.config.base import EmptyPolicy, SourceBase

log = logging.getLogger(__name__)


class EmptyInputError(ValueError):
    """A full-refresh table with `on_empty: fail` got no rows."""


def apply_policy(
    source: SourceBase, table_name: str, found: str, setting: EmptyPolicy, field: str | None, fix: str
) -> None:
    """Raise `EmptyInputError` under `fail`; otherwise log that the table keeps its rows.

    `found` says what was empty, `field` is where `on_empty` would go (None: the kind has none),
    `fix` what to check first.
    """
    said = f"`{setting.field or field or 'on_empty'}: {setting.policy}`"
    if setting.field is None:
        said += f" (the default for {'full-refresh' if setting.policy == 'fail' else 'incremental'} tables)"
    if setting.policy == "fail":
        keep = f", or set `{field}: warn` (or ok) to keep the table's previous rows when its input is empty"
        or_set = keep if field else ""
        raise EmptyInputError(
            f"source {source.name!r}, table {table_name!r}: {found}, and {said} fails the run so that the "
            f"table neither keeps its previous rows as if they were current nor loses them; nothing of this run is "
            f"loaded. Fix: {fix}{or_set}."
        )
    message = f"source {source.name!r}, table {table_name!r}: {found}; nothing loaded, the table keeps its rows"
    message += f" ({said})"
    log.log(logging.WARNING if setting.policy == "warn" else logging.INFO, message)


def _disposition(resource: Any) -> str | None:
    disposition = resource.write_disposition
    return disposition.get("disposition") if isinstance(disposition, dict) else disposition


def full_refresh_tables(items: Iterable[Any], normalize_name: Any) -> list[str]:
    """The root tables that the `replace` resources among `items` load into (static names only)."""
    from dlt.extract import DltSource

    resources = [r for i in items for r in (i.selected_resources.values() if isinstance(i, DltSource) else [i])]
    return sorted(
        {
            normalize_name(resource.table_name if isinstance(resource.table_name, str) else resource.name)
            for resource in resources
            if _disposition(resource) == "replace" and not callable(resource.table_name)
        }
    )


def check_full_refreshes(
    source: SourceBase, items: Iterable[Any], row_counts: Mapping[str, int], pipeline: Any
) -> list[str]:
    """Apply `on_empty` to each full-refresh table of `items` without rows; return the tables kept.

    Call after the normalize: a kept table's empty load job (dlt writes one when the restored schema
    knows the table) is removed from the package, so the load leaves the table as it is.
    """
    if source.READER_APPLIES_ON_EMPTY:
        return []
    naming = pipeline.default_schema.naming
    kept = []
    for table in full_refresh_tables(items, naming.normalize_table_identifier):
        if row_counts.get(table, 0):
            continue
        setting = source.empty_policy_of(table)
        configured = getattr(source, "table_named", lambda _name: None)(table)
        if configured is not None:
            field: str | None = f"{source.table_field_of(configured)}.on_empty"
        else:
            field = "on_empty" if "on_empty" in type(source).model_fields else None
        fix = "check that the source still has its rows (a wrong filter, endpoint or query, an emptied source)"
        apply_policy(source, table, "the source gave no rows for this full refresh", setting, field, fix)
        kept.append(table)
    if kept:
        _drop_jobs_of(pipeline, kept)
    return kept


def _drop_jobs_of(pipeline: Any, tables: list[str]) -> None:
    """Remove the normalized load jobs of `tables` (empty ones) so that the load does not replace them."""
    from dlt.common.storages.load_storage import ParsedLoadJobFileName

    storage = pipeline._get_load_storage()
    packages = storage.normalized_packages
    for load_id in storage.list_normalized_packages():
        for job in packages.list_new_jobs(load_id):
            if ParsedLoadJobFileName.parse(job).table_name in tables:
                Path(packages.storage.make_full_path(job)).unlink()
