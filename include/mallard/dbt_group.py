"""Cosmos wiring: render the dbt project in `include/dbt` as one task per model, tests after each.

The graph comes from `target/manifest.json`, built ahead of time (`make manifest`, `.ci/run`
and the Dockerfile), so parsing the DAG never runs dbt. Nothing here names a model: any dbt
project whose sources point at the `raw_<source>` schemas works.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from cosmos import (
    DbtTaskGroup,
    ExecutionConfig,
    ExecutionMode,
    InvocationMode,
    LoadMode,
    ProfileConfig,
    ProjectConfig,
    RenderConfig,
    TestBehavior,
)

from include.mallard.warehouse import WAREHOUSE_PATH_ENV, WAREHOUSE_POOL

MANIFEST_RELATIVE_PATH = Path("target") / "manifest.json"
FINGERPRINT_RELATIVE_PATH = Path("target") / "mallard_fingerprint.txt"
# What `dbt parse` reads: a change to any of these makes the manifest stale.
_PROJECT_FILE_SUFFIXES = {".sql", ".yml", ".yaml", ".csv", ".md", ".py"}
_SKIPPED_FOLDERS = {"target", "logs", "dbt_packages"}
PROFILE_TARGET = "duckdb"


class DbtProjectError(RuntimeError):
    """The dbt project cannot be rendered (no manifest, no profile...)."""


def read_dbt_project(dbt_project_dir: Path) -> dict[str, Any]:
    """The parsed dbt_project.yml of `dbt_project_dir`."""
    project_file = dbt_project_dir / "dbt_project.yml"
    if not project_file.is_file():
        raise DbtProjectError(f"{project_file} does not exist: put a dbt project in {dbt_project_dir}")
    return yaml.safe_load(project_file.read_text(encoding="utf-8"))


def manifest_path(dbt_project_dir: Path) -> Path:
    """Where the pre-built manifest of `dbt_project_dir` must be."""
    return dbt_project_dir / MANIFEST_RELATIVE_PATH


def _interval_template(which: str) -> str:
    return f"{{{{ mallard_interval_bound(dag_run, data_interval_start, data_interval_end, '{which}') }}}}"


def project_fingerprint(dbt_project_dir: Path) -> str:
    """A hash of every file `dbt parse` reads (paths and contents); cheap enough for parse time."""
    digest = hashlib.sha256()
    for path in sorted(dbt_project_dir.rglob("*")):
        relative = path.relative_to(dbt_project_dir)
        if path.is_file() and path.suffix in _PROJECT_FILE_SUFFIXES and not _SKIPPED_FOLDERS & set(relative.parts):
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def record_fingerprint(dbt_project_dir: Path) -> None:
    """Remember which project files the current manifest was built from (after `dbt parse`)."""
    (dbt_project_dir / FINGERPRINT_RELATIVE_PATH).write_text(project_fingerprint(dbt_project_dir))


def check_manifest_is_fresh(dbt_project_dir: Path) -> Path:
    """The manifest path; raise DbtProjectError if it is missing or older than the project files."""
    manifest = manifest_path(dbt_project_dir)
    if not manifest.is_file():
        raise DbtProjectError(
            f"{manifest} is missing. Build it with `make manifest` (runs `dbt parse` in {dbt_project_dir})."
        )
    fingerprint_file = dbt_project_dir / FINGERPRINT_RELATIVE_PATH
    recorded = fingerprint_file.read_text().strip() if fingerprint_file.is_file() else None
    if recorded != project_fingerprint(dbt_project_dir):
        raise DbtProjectError(
            f"{manifest} is stale: files in {dbt_project_dir} changed since it was built. "
            "Rebuild it with `make manifest` (or `python -m include.mallard.cli manifest`)."
        )
    return manifest


def build_dbt_group(dbt_project_dir: Path, *, group_id: str = "dbt", **task_group_kwargs: Any) -> DbtTaskGroup:
    """A Cosmos DbtTaskGroup over `dbt_project_dir`; every dbt task runs in the warehouse pool."""
    project = read_dbt_project(dbt_project_dir)
    manifest = check_manifest_is_fresh(dbt_project_dir)
    profiles_file = dbt_project_dir / "profiles.yml"
    if not profiles_file.is_file():
        raise DbtProjectError(
            f"{profiles_file} is missing. Add a profile {project.get('profile')!r} with a `{PROFILE_TARGET}` target "
            f"whose path is {{{{ env_var('{WAREHOUSE_PATH_ENV}') }}}} (see include/dbt/profiles.yml)."
        )
    return DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=dbt_project_dir,
            manifest_path=manifest,
            install_dbt_deps=False,
        ),
        profile_config=ProfileConfig(
            profile_name=project["profile"],
            target_name=PROFILE_TARGET,
            profiles_yml_filepath=profiles_file,
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.LOCAL,
            # dbt runs inside the task process: no extra interpreter start per task.
            invocation_mode=InvocationMode.DBT_RUNNER,
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.AFTER_EACH,
            # A test on two models (relationships) runs once both exist, as its own task.
            should_detach_multiple_parents_tests=True,
        ),
        operator_args={
            "install_deps": False,
            "pool": WAREHOUSE_POOL,
            # Resolved when the task runs, so parsing never looks up the Airflow connection.
            "env": {WAREHOUSE_PATH_ENV: "{{ mallard_warehouse_path() }}"},
            # Incremental models rebuild only the run's interval (see macros/interval_filter.sql).
            "vars": {f"mallard_interval_{which}": _interval_template(which) for which in ("start", "end")},
            # Run conf {"full_refresh": true} rebuilds incremental models from scratch.
            "full_refresh": "{{ (dag_run.conf or {}).get('full_refresh', False) }}",
        },
        **task_group_kwargs,
    )
