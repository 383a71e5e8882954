"""The `dbt build` task keeps dbt's partial parse from one DAG run to the next.

Each run has a new interval. Passed as `--vars`, it made dbt log "Unable to do partial parsing
because config vars, config profile, or config target have changed" and re-parse the whole project
on every run (7 s for the demo, ~30 s at 1,000 models). Passed as env vars read only inside
`is_incremental()` (macros/interval_filter.sql), the second run parses incrementally. Two real
`airflow dags test` runs of the ELT DAG, with their own Airflow home and Cosmos cache.
"""

from __future__ import annotations

import pytest

from tests.e2e.helpers import airflow_env, query, run_airflow

pytestmark = pytest.mark.e2e
FULL_PARSE = "Unable to do partial parsing"


def test_the_second_run_with_a_new_interval_parses_dbt_incrementally(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    env = airflow_env(tmp_path / "airflow", warehouse, tmp_path / "work")
    env["AIRFLOW__COSMOS__CACHE_DIR"] = str(tmp_path / "cosmos")  # no partial parse from another test
    run_airflow(["db", "migrate"], env, tmp_path / "migrate.log")
    run_airflow(["dags", "test", "mallard_elt", "2024-01-08"], env, tmp_path / "run1.log")
    run_airflow(["dags", "test", "mallard_elt", "2024-01-09"], env, tmp_path / "run2.log")

    second = (tmp_path / "run2.log").read_text()
    assert "Partial parse is enabled" in second  # Cosmos found the first run's saved parse
    assert FULL_PARSE not in second, [line for line in second.splitlines() if FULL_PARSE in line]
    # The interval still reached dbt: the incremental orders mart holds both days, each order once.
    [(raw, distinct_raw)] = query(warehouse, "select count(*), count(distinct id) from raw_shop.orders")
    [(mart, distinct_mart, days)] = query(
        warehouse,
        "select count(*), count(distinct order_id), count(distinct cast(ordered_at as date)) from marts.orders",
    )
    assert raw == distinct_raw == mart == distinct_mart and days == 2
