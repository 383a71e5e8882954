"""The dbt docs site that Cosmos's dbt docs view shows in the Airflow UI (Browse > Mallard dbt docs).

Three writers, one folder (`dbt_docs_dir()`, which the API server reads: under `include/`, which the
Astro CLI mounts into every container):

- `write_docs_without_catalog`, called by `mallard manifest` (so by `make manifest`, `make demo`,
  the Dockerfile): dbt's docs page and the manifest that `dbt parse` just built, plus an empty
  catalog when there is none. The view then shows every model, its docs and the lineage before
  the first run, instead of Cosmos's "index not found". It never opens the warehouse.
- the `dbt build` task, when its build succeeded and compiled every node
  (`publish_docs_of_build`): it keeps the manifest the build wrote (`keep_build_manifest`) and
  runs `dbt docs generate --no-compile`, dbt's own way to add the catalog (columns, types, row
  counts) to a build's artifacts, in its own process, where dbt's adapter and saved parse are
  still warm: ~0.1 s, where the docs task of its own took 1.2-1.4 s (docs/benchmarks.md). The
  docs then show the SQL that ran. The run's `dbt_docs` task finds them published and stops.
- `generate_dbt_docs`, the DAG's `dbt_docs` task, for every other case (a cleared run, whose
  nodes ran in their own tasks; a build whose catalog failed): `dbt docs generate` against the
  warehouse (in the warehouse pool). With a kept manifest that compiled every node it runs
  `--no-compile` and publishes that manifest; without one it compiles the project.

All leave no absolute host path in the served manifest (dbt writes `compiled_path` absolute when
the target path is).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from include.mallard.assets import export_warehouse_path_for_cosmos
from include.mallard.dbt_project import manifest_path, read_dbt_project
from include.mallard.paths import DBT_PROJECT_DIR, PROJECT_ROOT, configured_path
from include.mallard.warehouse import active_warehouse, retry_on_lock

DOCS_DIR_ENV = "MALLARD_DBT_DOCS_DIR"
DEFAULT_DOCS_DIR = DBT_PROJECT_DIR / "target" / "docs"
# Where the `dbt build` task leaves its manifest for the run's docs task: one folder per DAG run.
BUILDS_DIR_NAME = ".builds"
# In a run's build folder: the build task published the docs itself (`publish_docs_of_build`).
PUBLISHED_MARKER = "published"
# A build whose docs task never ran (a failed run) is removed by a later build after this long.
BUILD_KEPT_SECONDS = 24 * 3600
log = logging.getLogger(__name__)


def dbt_docs_dir() -> Path:
    """Where the generated docs site lives: env MALLARD_DBT_DOCS_DIR, else include/dbt/target/docs."""
    return configured_path(DOCS_DIR_ENV, DEFAULT_DOCS_DIR)


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


def _copy_file(source: Path, path: Path) -> None:
    """Copy then rename, as `_write_json`: a reader never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    shutil.copyfile(source, partial)
    partial.replace(path)


def publish_manifest(source: Path | dict[str, Any], docs_dir: Path) -> Path:
    """Copy a dbt manifest (a file, or one already read) into the docs folder with its absolute paths made relative."""
    manifest = json.loads(source.read_text(encoding="utf-8")) if isinstance(source, Path) else source
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
    _copy_file(Path(DOCS_INDEX_FILE_PATH), target / "index.html")
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
        _copy_file(builds[-1], own)
        log.info("dbt docs start from the build's saved parse %s", builds[-1])


def _build_folder(docs_dir: Path, dag_id: str, run_id: str) -> Path:
    digest = hashlib.sha256(f"{dag_id}\0{run_id}".encode()).hexdigest()[:24]
    return docs_dir / BUILDS_DIR_NAME / digest


def keep_build_manifest(project_dir: Path, dag_id: str, run_id: str) -> Path | None:
    """Keep the manifest a `dbt build` in `project_dir` wrote, for this DAG run's docs; return its folder.

    Called by the build task with Cosmos's temporary copy of the project, before Cosmos deletes it.
    Builds kept longer than `BUILD_KEPT_SECONDS` (their docs task never ran) are removed. A build
    that cannot be kept is logged, never raised: the docs task then compiles the project itself.
    """
    manifest = project_dir / "target" / "manifest.json"
    if not manifest.is_file():
        return None
    folder = _build_folder(dbt_docs_dir(), dag_id, run_id)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _copy_file(manifest, folder / "manifest.json")
        for other in folder.parent.iterdir():
            if other != folder and time.time() - other.stat().st_mtime > BUILD_KEPT_SECONDS:
                shutil.rmtree(other, ignore_errors=True)
    except OSError as error:
        log.warning("The build's manifest was not kept for the docs task, which will compile the project: %s", error)
        return None
    return folder


def uncompiled_nodes(manifest: dict[str, Any]) -> list[str]:
    """The nodes `dbt docs generate` would compile that the manifest has not compiled (not run, or skipped)."""
    return [unique_id for unique_id, node in manifest.get("nodes", {}).items() if node.get("compiled") is False]


def _run_build_folder(docs_dir: Path, dag_run: Any) -> Path | None:
    """The folder where this DAG run's build keeps its manifest (named after the run: no other run's)."""
    dag_id, run_id = getattr(dag_run, "dag_id", None), getattr(dag_run, "run_id", None)
    return _build_folder(docs_dir, dag_id, run_id) if dag_id and run_id else None


def _compiled_build_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest kept in `folder` when its build compiled every node; else None (a node left out is logged)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # no build kept here (another machine's disk, or a build that failed to write)
    if missing := uncompiled_nodes(manifest):
        log.info("dbt docs compile the project: the build did not compile %d nodes, e.g. %s", len(missing), missing[0])
        return None
    return manifest


def kept_build(docs_dir: Path, dag_run: Any) -> tuple[Path, dict[str, Any]] | None:
    """(folder, manifest) of the build this DAG run kept, when it compiled every node."""
    folder = _run_build_folder(docs_dir, dag_run)
    if folder is None:
        return None
    manifest = _compiled_build_manifest(folder)
    return None if manifest is None else (folder, manifest)


def raise_for_failed_docs(result: Any) -> None:
    """Raise when a `dbt docs generate` (a dbtRunnerResult) failed."""
    if not result.success:
        raise RuntimeError(f"dbt docs generate failed: {result.exception}")


def publish_docs_of_build(folder: Path, project_dir: Path, generate_catalog: Callable[[], None]) -> bool:
    """In the build task, after a `dbt build` that succeeded: publish the docs site of that build; True when done.

    `folder` holds the build's manifest (`keep_build_manifest`). `generate_catalog` runs `dbt docs
    generate --no-compile` in `project_dir`, the build's own project copy, with the build's flags and
    env, and raises when dbt fails. A build that left a node uncompiled, or any error, is logged and
    left to the docs task, which then does the same work in a process of its own: the build never
    fails for its docs.
    """
    manifest = _compiled_build_manifest(folder)
    if manifest is None:
        return False
    # The folder is <docs dir>/.builds/<run> (`keep_build_manifest`).
    built, docs_dir = project_dir / "target", folder.parent.parent
    try:
        generate_catalog()
        _copy_file(built / "catalog.json", docs_dir / "catalog.json")
        _copy_file(built / "index.html", docs_dir / "index.html")
        publish_manifest(manifest, docs_dir)
        (folder / PUBLISHED_MARKER).touch()
    except Exception as error:  # the docs task regenerates them; the build's outcome is the build's
        log.warning("dbt docs left to the docs task: publishing them from the build failed: %s", error)
        return False
    log.info("dbt docs published from this build (%d nodes) to %s", len(manifest["nodes"]), docs_dir)
    return True


def take_published_build(docs_dir: Path, dag_run: Any) -> bool:
    """Whether this DAG run's build published the docs itself; its kept folder is then removed."""
    folder = _run_build_folder(docs_dir, dag_run)
    if folder is None or not (folder / PUBLISHED_MARKER).is_file():
        return False
    shutil.rmtree(folder, ignore_errors=True)  # a cleared docs task then compiles (module docstring)
    return True


def generate_dbt_docs(dbt_project_dir: str = str(DBT_PROJECT_DIR), dag_run: Any = None) -> str:
    """Task callable: run `dbt docs generate` against the warehouse into `dbt_docs_dir()`.

    Airflow passes `dag_run` (the callable asks for it by name): its run id finds the docs its
    build published, or the manifest its build kept; its DAG id the build's parse (module docstring).
    """
    target = dbt_docs_dir()
    if take_published_build(target, dag_run):
        log.info("dbt docs were published by this run's dbt build: nothing to generate (%s)", target)
        return str(target)
    from dbt.cli.main import dbtRunner

    export_warehouse_path_for_cosmos({})  # where dbt writes, as for the build (a server: its credentials)
    _seed_partial_parse(target, getattr(dag_run, "dag_id", None))
    build = kept_build(target, dag_run)
    args = ["docs", "generate", "--project-dir", dbt_project_dir, "--profiles-dir", dbt_project_dir]
    if build is not None:
        args.append("--no-compile")  # writes the catalog only; the manifest is the build's
    # The same --profile and --target as Cosmos's build: dbt hashes them with --vars, and any
    # difference throws the saved parse away.
    profile = read_dbt_project(Path(dbt_project_dir))["profile"]
    args += ["--profile", profile, "--target", active_warehouse().dbt_target, "--target-path", str(target)]

    retry_on_lock(lambda: raise_for_failed_docs(dbtRunner().invoke(args)))
    if build is None:
        publish_manifest(target / "manifest.json", target)
    else:
        folder, manifest = build
        # Cosmos runs dbt with a relative target path: the build's manifest names no path of its copy.
        publish_manifest(manifest, target)
        shutil.rmtree(folder, ignore_errors=True)
        log.info("dbt docs publish the manifest of this run's build (%d nodes compiled by it)", len(manifest["nodes"]))
    log.info("dbt docs written to %s", target)
    return str(target)
