"""The dbt docs site that Cosmos's dbt docs view shows in the Airflow UI (Browse > Mallard dbt docs).

Two writers, one folder (`dbt_docs_dir()`, which the API server reads: under `include/`, which the
Astro CLI mounts into every container):

- `write_docs_without_catalog`, called by `mallard manifest` (so by `make manifest`, `make demo`,
  the Dockerfile): dbt's docs page and the manifest that `dbt parse` just built, plus an empty
  catalog when there is none. The view then shows every model, its docs and the lineage before
  the first run, instead of Cosmos's "index not found". It never opens the warehouse.
- `generate_dbt_docs`, the DAG's last task: `dbt docs generate` against the warehouse (in the
  warehouse pool), which adds the compiled SQL and the catalog (columns, types, row counts).

Both leave no absolute host path in the served manifest (dbt writes `compiled_path` absolute when
the target path is).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from include.mallard.assets import export_warehouse_path_for_cosmos
from include.mallard.dbt_project import manifest_path, read_dbt_project
from include.mallard.paths import DBT_PROJECT_DIR, PROJECT_ROOT, resolve_project_path
from include.mallard.warehouse import active_warehouse, retry_on_lock

DOCS_DIR_ENV = "MALLARD_DBT_DOCS_DIR"
DEFAULT_DOCS_DIR = DBT_PROJECT_DIR / "target" / "docs"
log = logging.getLogger(__name__)


def dbt_docs_dir() -> Path:
    """Where the generated docs site lives: env MALLARD_DBT_DOCS_DIR, else include/dbt/target/docs."""
    configured = os.environ.get(DOCS_DIR_ENV)
    return resolve_project_path(configured) if configured else DEFAULT_DOCS_DIR


def _relative(value: Any, prefixes: list[str]) -> Any:
    if isinstance(value, str):
        for prefix in prefixes:
            if value.startswith(prefix):
                return value[len(prefix) :]
        return value
    if isinstance(value, dict):
        return {key: _relative(item, prefixes) for key, item in value.items()}
    if isinstance(value, list):
        return [_relative(item, prefixes) for item in value]
    return value


def _write_json(path: Path, document: Any) -> None:
    # Write then rename: the api-server may be serving the file at this moment.
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(document), encoding="utf-8")
    partial.replace(path)


def publish_manifest(source: Path, docs_dir: Path) -> Path:
    """Copy a dbt manifest into the docs folder with its absolute paths made relative."""
    manifest = json.loads(source.read_text(encoding="utf-8"))
    # Longest first: the docs folder may sit inside the project.
    prefixes = sorted({f"{docs_dir.resolve()}/", f"{PROJECT_ROOT}/"}, key=len, reverse=True)
    target = docs_dir / "manifest.json"
    _write_json(target, _relative(manifest, prefixes))
    return target


def _empty_catalog() -> dict[str, Any]:
    """What `dbt docs generate --empty-catalog` writes: dbt's catalog artifact with no node."""
    from dbt.artifacts.schemas.catalog import CatalogArtifact

    generated = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    artifact = CatalogArtifact.from_results(
        generated_at=generated, nodes={}, sources={}, compile_results=None, errors=None
    )
    return artifact.to_dict(omit_none=False)


def docs_dir_of(dbt_project_dir: Path) -> Path:
    """The docs folder of a dbt project: `dbt_docs_dir()` for the project's own, else its target/docs.

    `mallard manifest --dbt-project-dir <other>` (tests build small projects) must not overwrite
    the docs that the UI shows for the project's dbt project.
    """
    if dbt_project_dir.resolve() == DBT_PROJECT_DIR.resolve():
        return dbt_docs_dir()
    return dbt_project_dir / "target" / "docs"


def write_docs_without_catalog(dbt_project_dir: Path = DBT_PROJECT_DIR, docs_dir: Path | None = None) -> Path:
    """Write the docs site from the parsed manifest (no warehouse needed); return the docs folder.

    Called right after `dbt parse` (`mallard manifest`). A catalog from an earlier run is kept: it
    still describes the warehouse's tables; without one, an empty catalog is written.
    """
    from dbt.task.docs import DOCS_INDEX_FILE_PATH

    target = docs_dir or docs_dir_of(dbt_project_dir)
    target.mkdir(parents=True, exist_ok=True)
    manifest = manifest_path(dbt_project_dir)
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} does not exist: run `mallard manifest` first")
    publish_manifest(manifest, target)
    if not (target / "catalog.json").is_file():
        _write_json(target / "catalog.json", _empty_catalog())
    partial = target / ".index.html.partial"
    shutil.copyfile(DOCS_INDEX_FILE_PATH, partial)
    partial.replace(target / "index.html")
    return target


def _seed_partial_parse(target: Path, dag_id: str | None) -> None:
    """Give `dbt docs generate` the parse the run's `dbt build` saved, when it is newer than its own.

    Cosmos keeps the build's partial parse in `<AIRFLOW__COSMOS__CACHE_DIR>/<dag>__<group>/target`.
    Without it, the docs task's first run parsed the whole project again (8.4 s vs 2 s at 102
    nodes). dbt checks the file itself (project, profile, vars, file hashes) and re-parses what
    differs, so a copy can cost time but never give a wrong result.
    """
    cache_dir = os.environ.get("AIRFLOW__COSMOS__CACHE_DIR")
    if not dag_id or not cache_dir:
        return
    builds = sorted(Path(cache_dir).glob(f"{dag_id}__*/target/partial_parse.msgpack"), key=lambda p: p.stat().st_mtime)
    own = target / "partial_parse.msgpack"
    if builds and (not own.is_file() or builds[-1].stat().st_mtime > own.stat().st_mtime):
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(builds[-1], target / ".partial_parse.msgpack.partial")
        (target / ".partial_parse.msgpack.partial").replace(own)
        log.info("dbt docs start from the build's saved parse %s", builds[-1])


def generate_dbt_docs(dbt_project_dir: str = str(DBT_PROJECT_DIR), dag_run: Any = None) -> str:
    """Task callable: run `dbt docs generate` against the warehouse into `dbt_docs_dir()`.

    Airflow passes `dag_run` (the callable asks for it by name): its DAG id finds the build's parse.
    """
    from dbt.cli.main import dbtRunner

    target = dbt_docs_dir()
    export_warehouse_path_for_cosmos({})  # where dbt writes, as for the build (a server: its credentials)
    _seed_partial_parse(target, getattr(dag_run, "dag_id", None))
    args = ["docs", "generate", "--project-dir", dbt_project_dir, "--profiles-dir", dbt_project_dir]
    # The same --profile and --target as Cosmos's build: dbt hashes them with --vars, and any
    # difference throws the saved parse away.
    profile = read_dbt_project(Path(dbt_project_dir))["profile"]
    args += ["--profile", profile, "--target", active_warehouse().dbt_target, "--target-path", str(target)]

    def generate() -> None:
        result = dbtRunner().invoke(args)
        if not result.success:
            raise RuntimeError(f"dbt docs generate failed: {result.exception}")

    retry_on_lock(generate)
    publish_manifest(target / "manifest.json", target)
    log.info("dbt docs written to %s", target)
    return str(target)
