"""A dry extract for `mallard add source`: the first rows and the inferred columns of each table.

dlt extracts and normalizes a few pages into a temporary working folder, and the normalized files
are read back with an in-memory DuckDB. Nothing is loaded: the warehouse is never opened.
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include.mallard.config import SourceConfig
from include.mallard.interval import UTC, Interval

PREVIEW_PAGES = 3
PREVIEW_ROWS = 5
_DLT_COLUMN_PREFIX = "_dlt_"


@dataclass
class TablePreview:
    """One table of the dry extract: its columns (name -> dlt type) and first rows."""

    name: str
    columns: dict[str, str]
    rows: list[dict[str, Any]] = field(default_factory=list)


def _wide_interval() -> Interval:
    # Incremental tables are bound to a run's interval; a preview wants whatever data there is.
    return Interval(dt.datetime(1970, 1, 1, tzinfo=UTC), dt.datetime.now(UTC) + dt.timedelta(days=1))


def _read_rows(path: Path, limit: int) -> list[dict[str, Any]]:
    import duckdb

    with path.open("rb") as probe:
        compressed = probe.read(2) == b"\x1f\x8b"
    connection = duckdb.connect(":memory:")
    try:
        if path.suffix == ".parquet" or ".parquet" in path.name:
            relation = connection.read_parquet(str(path))
        elif ".jsonl" in path.name:
            if compressed:  # DuckDB guesses the compression from the extension only
                plain = path.with_name(path.name + ".plain.jsonl")
                plain.write_bytes(gzip.decompress(path.read_bytes()))
                path = plain
            relation = connection.read_json(str(path), format="newline_delimited")
        else:
            return []
        columns = relation.columns
        return [dict(zip(columns, row, strict=True)) for row in relation.limit(limit).fetchall()]
    finally:
        connection.close()


def dry_extract(config: SourceConfig, pages: int = PREVIEW_PAGES, rows: int = PREVIEW_ROWS) -> list[TablePreview]:
    """Extract and normalize up to `pages` pages of each table of `config`; the warehouse is untouched."""
    import dlt

    from include.mallard.dlt_steps import normalize_in_process
    from include.mallard.sources.registry import build_resources

    items = [item.add_limit(pages) for item in build_resources(config, _wide_interval())]
    with tempfile.TemporaryDirectory(prefix="mallard-preview-") as work:
        pipeline = dlt.pipeline(
            pipeline_name=f"mallard_preview_{config.name}",
            pipelines_dir=str(Path(work) / "pipelines"),
            # Named for dlt's naming and types only: normalize never connects, and nothing loads.
            destination=dlt.destinations.duckdb(str(Path(work) / "never_opened.duckdb")),
            dataset_name=config.dataset_name,
        )
        logging.getLogger("dlt").setLevel(logging.ERROR)  # its hint warnings are noise in a preview
        pipeline.extract(items, loader_file_format="jsonl")
        normalize_in_process(pipeline)
        schema = pipeline.default_schema
        previews = {
            table["name"]: TablePreview(
                table["name"],
                {
                    name: column.get("data_type", "?")
                    for name, column in table.get("columns", {}).items()
                    if not name.startswith(_DLT_COLUMN_PREFIX)
                },
            )
            for table in schema.data_tables()
        }
        for load_id in pipeline.list_normalized_load_packages():
            for job in pipeline.get_load_package_info(load_id).jobs["new_jobs"]:
                preview = previews.get(job.job_file_info.table_name)
                if preview is not None and len(preview.rows) < rows:
                    found = _read_rows(Path(job.file_path), rows - len(preview.rows))
                    preview.rows += [
                        {k: v for k, v in r.items() if not k.startswith(_DLT_COLUMN_PREFIX)} for r in found
                    ]
    return list(previews.values())


def print_preview(previews: list[TablePreview]) -> None:
    """Per table: the inferred columns with their types, then the first rows (rich tables)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if not previews:
        console.print("preview: the dry extract found no rows (check the path, glob or endpoint)")
    for preview in previews:
        table = Table(title=f"{preview.name}: {len(preview.columns)} columns (first {len(preview.rows)} rows)")
        for name, data_type in preview.columns.items():
            table.add_column(f"{name}\n{data_type}", overflow="fold")
        for row in preview.rows:
            table.add_row(*("" if row.get(name) is None else str(row.get(name)) for name in preview.columns))
        console.print(table)
        # Plain lines too: a wide table is folded in a narrow terminal, and scripts grep these.
        console.print(
            f"columns of {preview.name}: " + ", ".join(f"{n} {t}" for n, t in preview.columns.items()), soft_wrap=True
        )
