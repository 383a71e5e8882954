"""Where the project's folders are.

Paths are built from this file's location, never from the working directory: Airflow 3's
versioned DAG bundles may run the project from another folder than the one it was parsed in.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
INCLUDE_DIR = PROJECT_ROOT / "include"
# The source configs and the dbt project may live elsewhere (a dbt repo checked out beside the
# project, say): these env vars name their folders, absolute or relative to the project root.
SOURCES_DIR_ENV = "MALLARD_SOURCES_DIR"
DBT_PROJECT_DIR_ENV = "MALLARD_DBT_PROJECT_DIR"
# Where a dbt project keeps its manifest (`mallard manifest` builds it; Cosmos renders from it).
MANIFEST_RELATIVE_PATH = Path("target") / "manifest.json"
DEFAULT_WAREHOUSE_PATH = PROJECT_ROOT / "warehouse" / "mallard.duckdb"
DEFAULT_WORK_DIR = PROJECT_ROOT / ".mallard"
WORK_DIR_ENV = "MALLARD_WORK_DIR"


def resolve_project_path(value: str | Path) -> Path:
    """Resolve a path from a config file: relative paths are relative to the project root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def configured_path(env: str, default: Path) -> Path:
    """The path env `env` names (absolute, or relative to the project root), else `default`."""
    configured = os.environ.get(env)
    return resolve_project_path(configured) if configured else default


def env_note(folder: Path, env: str) -> str:
    """For an error about `folder`: " (named by env X)" when env `env` names it, else ""."""
    configured = os.environ.get(env)
    return f" (named by env {env})" if configured and resolve_project_path(configured) == folder else ""


SOURCES_DIR = configured_path(SOURCES_DIR_ENV, INCLUDE_DIR / "sources")
DBT_PROJECT_DIR = configured_path(DBT_PROJECT_DIR_ENV, INCLUDE_DIR / "dbt")


def work_root() -> Path:
    """Mallard's working folder (dlt working dirs, remembered schemas): env MALLARD_WORK_DIR, else .mallard/."""
    return configured_path(WORK_DIR_ENV, DEFAULT_WORK_DIR)
