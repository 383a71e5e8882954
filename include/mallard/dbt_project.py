"""The dbt project as files: dbt_project.yml, the pre-built manifest and its freshness.

Cosmos-free and dbt-free at import time, so the CLI, the staging generator, the docs task and the
Cosmos wiring (`dbt_group`) share it without pulling in each other. `build_manifest` imports dbt
only when it runs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import yaml

from include.mallard.warehouse import WAREHOUSE_PATH_ENV, resolve_warehouse_path

MANIFEST_RELATIVE_PATH = Path("target") / "manifest.json"
FINGERPRINT_RELATIVE_PATH = Path("target") / "mallard_fingerprint.txt"
# What `dbt parse` reads: a change to any of these makes the manifest stale.
_PROJECT_FILE_SUFFIXES = {".sql", ".yml", ".yaml", ".csv", ".md", ".py"}
_SKIPPED_FOLDERS = {"target", "logs", "dbt_packages"}
PROFILE_TARGET = "duckdb"


class DbtProjectError(RuntimeError):
    """The dbt project cannot be used (no dbt_project.yml, no manifest, a stale one, no profile...)."""


def read_dbt_project(dbt_project_dir: Path) -> dict[str, Any]:
    """The parsed dbt_project.yml of `dbt_project_dir`."""
    project_file = dbt_project_dir / "dbt_project.yml"
    if not project_file.is_file():
        raise DbtProjectError(f"{project_file} does not exist: put a dbt project in {dbt_project_dir}")
    document = yaml.safe_load(project_file.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise DbtProjectError(f"{project_file} is not a YAML mapping; see dbt's dbt_project.yml reference")
    return document


def model_paths(dbt_project_dir: Path) -> list[Path]:
    """The project's model folders (dbt_project.yml `model-paths`, default `models`)."""
    return [dbt_project_dir / path for path in read_dbt_project(dbt_project_dir).get("model-paths", ["models"])]


def manifest_path(dbt_project_dir: Path) -> Path:
    """Where the pre-built manifest of `dbt_project_dir` must be."""
    return dbt_project_dir / MANIFEST_RELATIVE_PATH


def profiles_file(dbt_project_dir: Path) -> Path:
    """The project's profiles.yml; raise DbtProjectError naming what to add when it is missing."""
    path = dbt_project_dir / "profiles.yml"
    if not path.is_file():
        profile = read_dbt_project(dbt_project_dir).get("profile")
        raise DbtProjectError(
            f"{path} is missing. Add a profile {profile!r} with a `{PROFILE_TARGET}` target "
            f"whose path is {{{{ env_var('{WAREHOUSE_PATH_ENV}') }}}} (see include/dbt/profiles.yml)."
        )
    return path


def _project_files(dbt_project_dir: Path) -> list[Path]:
    files = []
    for path in sorted(dbt_project_dir.rglob("*")):
        relative = path.relative_to(dbt_project_dir)
        if path.is_file() and path.suffix in _PROJECT_FILE_SUFFIXES and not _SKIPPED_FOLDERS & set(relative.parts):
            files.append(path)
    return files


def project_fingerprint(dbt_project_dir: Path) -> str:
    """A hash of every file `dbt parse` reads (paths and contents); cheap enough for parse time."""
    digest = hashlib.sha256()
    for path in _project_files(dbt_project_dir):
        digest.update(str(path.relative_to(dbt_project_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
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
            "Rebuild it with `make manifest` (or `mallard manifest`)."
        )
    return manifest


def build_manifest(dbt_project_dir: Path) -> Path:
    """Run `dbt parse` so that Cosmos can render the DAG from target/manifest.json; return its path.

    The warehouse path is set if the caller has not, so that a profile reading it with `env_var()`
    and no default parses too.
    """
    from dbt.cli.main import dbtRunner

    os.environ.setdefault(WAREHOUSE_PATH_ENV, str(resolve_warehouse_path()))
    args = ["parse", "--project-dir", str(dbt_project_dir), "--profiles-dir", str(dbt_project_dir), "--quiet"]
    result = dbtRunner().invoke(args)
    if not result.success:
        raise DbtProjectError(f"dbt parse failed in {dbt_project_dir}: {result.exception}")
    record_fingerprint(dbt_project_dir)
    return manifest_path(dbt_project_dir)
