"""Shared by the end-to-end tests: run Airflow CLI commands on this project, read the warehouse."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from tests.conftest import PROJECT_ROOT

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def airflow_env(airflow_home: Path, warehouse: Path, work_dir: Path) -> dict[str, str]:
    """The environment of a throwaway Airflow + warehouse for one test."""
    return {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "MALLARD_WAREHOUSE_PATH": str(warehouse),
        "MALLARD_WORK_DIR": str(work_dir),
    }


def run_airflow(args: list[str], env: dict[str, str], log_file: Path, timeout: int = 900) -> None:
    """Run `airflow <args>`, keep its output in `log_file`, fail with the tail of it."""
    with log_file.open("a") as log:
        result = subprocess.run(
            [AIRFLOW, *args], env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=timeout
        )
    if result.returncode != 0:
        tail = "\n".join(log_file.read_text().splitlines()[-60:])
        raise AssertionError(f"airflow {' '.join(args)} failed ({result.returncode}):\n{tail}")


def query(warehouse: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(sql, params or []).fetchall()
