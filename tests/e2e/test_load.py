"""Load under the real scheduler: ten sources, a 14-interval backfill, parallelism 8.

Every task attempt must succeed the first time (no retry, no lock error), and every interval must
hold exactly its own rows. The dbt project is a small one of the test's own (one model and its
test over `raw_shop`) so that the run time goes to ingestion, where ten sources write one
warehouse from 14 concurrent DAG runs.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from include.mallard.config import get_source
from include.mallard.paths import INCLUDE_DIR, SOURCES_DIR
from include.mallard.sources import synthetic
from include.mallard.warehouse import LOCK_ERROR_TEXT
from tests.e2e.airflow_api import Api, isolated_stack, start_backfill, wait_for_backfill, wait_for_dag
from tests.e2e.helpers import small_dbt_project, write_elt_dag

pytestmark = pytest.mark.e2e

DAG_ID = "mallard_load"
SYNTHETIC_COPIES = 7  # + shop, marketing, stores = 10 sources
FROM_DATE, TO_DATE = "2024-01-01T00:00:00Z", "2024-01-14T00:00:00Z"
INTERVALS = 14
DEADLINE_SECONDS = 50 * 60


def _ten_sources(sources: Path) -> list[str]:
    sources.mkdir()
    shutil.copy(SOURCES_DIR / "shop.yml", sources / "shop.yml")
    for name in ("marketing", "stores"):
        text = (SOURCES_DIR / f"{name}.yml").read_text()
        (sources / f"{name}.yml").write_text(text.replace("path: include/", f"path: {INCLUDE_DIR}/"))
    shop = (SOURCES_DIR / "shop.yml").read_text()
    for number in range(2, 2 + SYNTHETIC_COPIES):
        (sources / f"shop_{number}.yml").write_text(shop.replace("seed: 42", f"seed: {42 + number}"))
    return sorted(path.stem for path in sources.glob("*.yml"))


def test_ten_sources_and_a_14_interval_backfill_without_a_failed_attempt(tmp_path: Path):
    sources, project, dags = tmp_path / "sources", tmp_path / "dbt", tmp_path / "dags"
    names = _ten_sources(sources)
    assert len(names) == 10
    write_elt_dag(dags, DAG_ID, sources, small_dbt_project(project))

    with isolated_stack(tmp_path / "stack", {"AIRFLOW__CORE__DAGS_FOLDER": str(dags)}) as stack:
        api = Api(stack)
        wait_for_dag(api, DAG_ID)
        started = time.monotonic()
        backfill = start_backfill(api, DAG_ID, FROM_DATE, TO_DATE)
        runs = wait_for_backfill(api, DAG_ID, backfill, runs=INTERVALS, timeout=DEADLINE_SECONDS)
        took = time.monotonic() - started
        attempts = Counter()
        for run in runs:
            path = f"/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances"
            for ti in api.all_items(path, "task_instances"):
                attempts[(ti["state"], ti["try_number"])] += 1
        logs = [p for p in (stack.home / "logs").rglob("*") if p.is_file()]
        warehouse = Path(stack.env["MALLARD_WAREHOUSE_PATH"])

    print(f"\n14-interval backfill of 10 sources: {took:.0f} s; task instances by (state, try): {dict(attempts)}")
    assert len(runs) == INTERVALS, [(r["dag_run_id"], r["state"]) for r in runs]
    assert {r["state"] for r in runs} == {"success"}, [(r["dag_run_id"], r["state"]) for r in runs]
    assert set(attempts) == {("success", 1)}, f"task attempts that failed or were retried: {dict(attempts)}"
    assert sum(p.read_text(errors="replace").count(LOCK_ERROR_TEXT) for p in logs) == 0

    first = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    last = first + dt.timedelta(days=INTERVALS)
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        expected = {}
        for name in [n for n in names if n.startswith("shop")]:
            orders, _ = synthetic.interval_rows(get_source(sources, name), first, last)
            expected[name] = len(orders)
            count = connection.execute(f"select count(*), count(distinct id) from raw_{name}.orders").fetchone()
            assert count == (len(orders), len(orders)), name
        # The small dbt project's view (default schema) sees the 14 days of raw_shop.
        assert connection.execute("select count(*) from main.stg_load__orders").fetchone()[0] == expected["shop"]
