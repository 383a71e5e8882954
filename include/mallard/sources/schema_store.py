"""The schema each source loaded last, kept between runs so that schema contracts mean something.

Every run extracts into a fresh working folder and never reads state from the warehouse (that
would open DuckDB outside the writer pool), so dlt would see every table as new each time and a
`freeze` contract would never bite. After a run, `remember()` copies the pipeline's schema to
`<MALLARD_WORK_DIR>/schemas/<source>.schema.json`; the next extract `restore()`s it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import dlt

from include.mallard.paths import work_root


def schema_file(source_name: str) -> Path:
    """Where the last schema of `source_name` is kept."""
    return work_root() / "schemas" / f"{source_name}.schema.json"


def restore(source_name: str) -> dlt.Schema | None:
    """The schema remembered for `source_name`, or None before its first run."""
    path = schema_file(source_name)
    if not path.exists():
        return None
    schema = dlt.Schema.from_dict(json.loads(path.read_text(encoding="utf-8")))
    # The run's fresh working folder does not hold this schema: mark it unsaved, otherwise dlt
    # sees an unmodified schema, never writes it to the folder, and the run cannot be remembered.
    schema._stored_version_hash = None
    return schema


def remember(source_name: str, work_dir: Path) -> Path | None:
    """Keep the default schema of the pipeline in `work_dir` (call after extract or load succeeds)."""
    pipelines = [path for path in work_dir.iterdir() if path.is_dir()] if work_dir.is_dir() else []
    if not pipelines:
        return None
    pipeline = dlt.attach(pipeline_name=pipelines[0].name, pipelines_dir=str(work_dir))
    if not pipeline.default_schema_name:
        return None
    target = schema_file(source_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: concurrent runs of one source (a backfill) never leave half a file.
    with tempfile.NamedTemporaryFile("w", dir=target.parent, suffix=".tmp", delete=False, encoding="utf-8") as tmp:
        json.dump(pipeline.default_schema.to_dict(), tmp)
    Path(tmp.name).replace(target)
    return target
