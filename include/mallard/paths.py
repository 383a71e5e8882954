"""Where the project's folders are.

Paths are built from this file's location, never from the working directory: Airflow 3's
versioned DAG bundles may run the project from another folder than the one it was parsed in.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
INCLUDE_DIR = PROJECT_ROOT / "include"
SOURCES_DIR = INCLUDE_DIR / "sources"
DBT_PROJECT_DIR = INCLUDE_DIR / "dbt"
# Where a dbt project keeps its manifest (`mallard manifest` builds it; Cosmos renders from it).
MANIFEST_RELATIVE_PATH = Path("target") / "manifest.json"
DEFAULT_WAREHOUSE_PATH = PROJECT_ROOT / "warehouse" / "mallard.duckdb"
DEFAULT_WORK_DIR = PROJECT_ROOT / ".mallard"
WORK_DIR_ENV = "MALLARD_WORK_DIR"


def resolve_project_path(value: str | Path) -> Path:
    """Resolve a path from a config file: relative paths are relative to the project root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def work_root() -> Path:
    """Mallard's working folder (dlt working dirs, remembered schemas): env MALLARD_WORK_DIR, else .mallard/."""
    configured = os.environ.get(WORK_DIR_ENV)
    return resolve_project_path(configured) if configured else DEFAULT_WORK_DIR
