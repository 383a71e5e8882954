"""Generate the dbt docs site that Cosmos's dbt docs view shows in the Airflow UI.

`dbt docs generate` reads the warehouse's catalog, so it runs as the DAG's last task (in the
warehouse pool), not at build time. It writes to a folder the API server can read: under
`include/`, which the Astro CLI mounts into every container.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from include.mallard.paths import DBT_PROJECT_DIR, resolve_project_path
from include.mallard.warehouse import WAREHOUSE_PATH_ENV, resolve_warehouse_path, retry_on_lock

DOCS_DIR_ENV = "MALLARD_DBT_DOCS_DIR"
DEFAULT_DOCS_DIR = DBT_PROJECT_DIR / "target" / "docs"
log = logging.getLogger(__name__)


def dbt_docs_dir() -> Path:
    """Where the generated docs site lives: env MALLARD_DBT_DOCS_DIR, else include/dbt/target/docs."""
    configured = os.environ.get(DOCS_DIR_ENV)
    return resolve_project_path(configured) if configured else DEFAULT_DOCS_DIR


def generate_dbt_docs(dbt_project_dir: str = str(DBT_PROJECT_DIR)) -> str:
    """Task callable: run `dbt docs generate` against the warehouse into `dbt_docs_dir()`."""
    from dbt.cli.main import dbtRunner

    target = dbt_docs_dir()
    os.environ[WAREHOUSE_PATH_ENV] = str(resolve_warehouse_path())
    args = ["docs", "generate", "--project-dir", dbt_project_dir, "--profiles-dir", dbt_project_dir]
    args += ["--target-path", str(target)]

    def generate() -> None:
        result = dbtRunner().invoke(args)
        if not result.success:
            raise RuntimeError(f"dbt docs generate failed: {result.exception}")

    retry_on_lock(generate)
    log.info("dbt docs written to %s", target)
    return str(target)
