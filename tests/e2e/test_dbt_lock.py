"""dbt waits for the warehouse's single writer lock instead of failing on it.

The one `dbt build` of a run holds the writer pool, but a model or test task that is retried or
cleared re-runs its own node outside it (Cosmos's watcher fallback), and a person may have the
warehouse open in a SQL client. The profile's `retries.connect_attempts` makes dbt wait for the
lock; a profile without it fails at once. Both run the real dbt CLI on a real DuckDB file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import yaml

from include.mallard.warehouse import LOCK_ERROR_TEXT
from tests.e2e.helpers import small_dbt_project, warehouse_held_open

pytestmark = pytest.mark.e2e

DBT = str(Path(sys.executable).with_name("dbt"))
HELD_SECONDS = 4


def _dbt_run(project: Path, warehouse: Path) -> tuple[subprocess.CompletedProcess, float]:
    command = [DBT, "run", "--project-dir", str(project), "--profiles-dir", str(project), "--no-partial-parse"]
    env = {**os.environ, "MALLARD_WAREHOUSE_PATH": str(warehouse)}
    started = time.monotonic()
    result = subprocess.run(command, env=env, cwd=project, capture_output=True, text=True, timeout=300)
    return result, time.monotonic() - started


@pytest.fixture
def project_and_warehouse(tmp_path: Path) -> tuple[Path, Path]:
    project = small_dbt_project(tmp_path / "dbt")
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("create schema raw_shop")
        connection.execute("create table raw_shop.orders as select 1 as id, timestamp '2024-01-01' as ordered_at")
    return project, warehouse


def test_dbt_waits_for_a_warehouse_held_by_another_process(project_and_warehouse):
    project, warehouse = project_and_warehouse
    with warehouse_held_open(warehouse, HELD_SECONDS):
        result, took = _dbt_run(project, warehouse)
    assert result.returncode == 0, result.stdout[-3000:]
    assert took >= HELD_SECONDS - 1, f"dbt finished in {took:.1f} s: it cannot have waited for the lock"
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        assert connection.execute("select count(*) from main.stg_load__orders").fetchone() == (1,)


def test_without_connect_retries_dbt_fails_on_the_lock(project_and_warehouse):
    project, warehouse = project_and_warehouse
    profiles_file = project / "profiles.yml"
    profiles = yaml.safe_load(profiles_file.read_text())
    assert profiles["mallard"]["outputs"]["duckdb"].pop("retries")["connect_attempts"] > 1
    profiles_file.write_text(yaml.safe_dump(profiles))
    with warehouse_held_open(warehouse, 60):
        result, _ = _dbt_run(project, warehouse)
    assert result.returncode != 0
    assert LOCK_ERROR_TEXT in result.stdout, result.stdout[-3000:]
