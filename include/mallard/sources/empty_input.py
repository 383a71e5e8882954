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
        said += f" (the default for {setting.default_for})"
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


def full_refresh_resources(items: list[Any]) -> list[Any]:
    """The selected `replace` resources among `items` (resources, or dlt sources holding them)."""
    from include.mallard.sources.registry import resources_of

    return [resource for resource in resources_of(items) if _disposition(resource) == "replace"]


def resources_with_items(extract_info: Any) -> set[str]:
    """The resources that yielded at least one item in the extract (wherever their rows went)."""
    return {
        name
        for steps in extract_info.metrics.values()
        for step in steps
        for name, metrics in step["resource_metrics"].items()
        if metrics.items_count
    }


def check_full_refreshes(source: SourceBase, items: list[Any], extract_info: Any, pipeline: Any) -> list[str]:
    """Apply `on_empty` to each full-refresh resource that gave no rows; return the root tables kept.

    Call after the normalize. A resource is empty when it yielded no item and every load job of its
    tables is empty (an imported file counts no items but holds rows). A kept table's empty jobs
    (dlt writes one when the restored schema knows the table) are removed from the package, so the
    load leaves the table as it is.
    """
    if source.READER_APPLIES_ON_EMPTY:
        return []
    yielded = resources_with_items(extract_info)
    jobs = _normalized_jobs(pipeline)
    kept: list[str] = []
    for resource in full_refresh_resources(items):
        if resource.name in yielded:
            continue
        tables = _root_tables_of(pipeline.default_schema, resource.name)
        own_jobs = [path for table, path in jobs if table in tables]
        if any(not _is_empty_job(path) for path in own_jobs):
            continue
        setting, field = source.empty_policy_of(resource.name), source.on_empty_field_of(resource.name)
        fix = "check that the source still has its rows (a wrong filter, endpoint or query, an emptied source)"
        apply_policy(source, resource.name, "the source gave no rows for this full refresh", setting, field, fix)
        for path in own_jobs:
            path.unlink()
        kept += sorted(tables)
    return kept


def _root_tables_of(schema: Any, resource_name: str) -> set[str]:
    return {
        table["name"]
        for table in schema.data_tables()
        if table.get("resource") == resource_name and not table.get("parent")
    }


def _normalized_jobs(pipeline: Any) -> list[tuple[str, Path]]:
    """(table, file) of every load job the normalize left for the load."""
    from dlt.common.storages.load_storage import ParsedLoadJobFileName

    storage = pipeline._get_load_storage()
    packages = storage.normalized_packages
    return [
        (ParsedLoadJobFileName.parse(job).table_name, Path(packages.storage.make_full_path(job)))
        for load_id in storage.list_normalized_packages()
        for job in packages.list_new_jobs(load_id)
    ]


def _is_empty_job(path: Path) -> bool:
    """Whether a load job file holds no row (anything not known to be empty counts as rows)."""
    from dlt.common.storages import FileStorage

    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_metadata(path).num_rows == 0
    if ".jsonl" in path.name or ".typed-jsonl" in path.name:
        with FileStorage.open_zipsafe_ro(str(path), "rb") as file:
            return not any(line.strip() for line in file)
    if ".insert_values" in path.name:  # PostgreSQL's format: the header, then one line per row
        with FileStorage.open_zipsafe_ro(str(path), "rb") as file:
            return all(line.startswith(b"INSERT INTO ") or line.strip() in (b"", b"VALUES") for line in file)
    return False
