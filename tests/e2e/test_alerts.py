"""Alerts under `airflow dags test`: a failing source POSTs one payload that names it, with no secret.

A webhook receiver of the test's own on 127.0.0.1 is the `mallard_alerts` connection (through
AIRFLOW_CONN_MALLARD_ALERTS). The source is a `python` source whose error message contains the
token it resolved from an env var; the payload, the run's history and the snapshot must show
`***` instead. A failing dbt test's alerts are checked in test_dbt_failure.py.
"""

from __future__ import annotations

import pytest

from tests.e2e.helpers import airflow_env, query, run_airflow, small_dbt_project, write_elt_dag
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

DAG_ID = "elt_alerts"
TOKEN = "alert-token-7c1d9e2f4b"
FLAKY = """kind: python
description: An API that rejects us.
function: tests.e2e.alert_sources:rejects_token
retries: 0
args:
  token: {env: ALERTS_TEST_TOKEN}
"""


def test_a_failing_source_posts_one_alert_naming_it_with_the_secret_masked(tmp_path):
    sources, dags = tmp_path / "sources", tmp_path / "dags"
    sources.mkdir()
    (sources / "flaky.yml").write_text(FLAKY)
    project = small_dbt_project(tmp_path / "dbt")
    write_elt_dag(dags, DAG_ID, sources, project)
    warehouse = tmp_path / "warehouse.duckdb"
    env = airflow_env(tmp_path / "airflow", warehouse, tmp_path / "work")
    env |= {"AIRFLOW__CORE__DAGS_FOLDER": str(dags), "ALERTS_TEST_TOKEN": TOKEN}
    log = tmp_path / "airflow.log"
    run_airflow(["db", "migrate"], env, log)
    with WebhookReceiver() as receiver:
        env["AIRFLOW_CONN_MALLARD_ALERTS"] = receiver.connection_json()
        with pytest.raises(AssertionError, match="failed"):
            run_airflow(["dags", "test", DAG_ID, "2024-01-08"], env, log)

    [alert] = receiver.payloads  # the extract failed; nothing downstream ran, so nothing else alerts
    assert (alert["dag_id"], alert["task_id"], alert["source"]) == (DAG_ID, "ingest_flaky.extract", "flaky")
    assert alert["run_id"].startswith("manual__")
    assert "rejected the request made with token ***" in alert["error"], alert["error"]
    assert alert["text"].startswith("Mallard: ingest_flaky.extract failed (source 'flaky') in elt_alerts run")
    assert f"/dags/{DAG_ID}/runs/" in alert["log_url"] and alert["log_url"].endswith(
        "/tasks/ingest_flaky.extract?try_number=1"
    )
    assert TOKEN not in receiver.raw[0].decode()
    # The run's last task recorded the failure; no secret there either (nor in the snapshot).
    [(table, status, error)] = query(warehouse, "select table_name, status, error from mallard_meta.loads")
    assert (table, status) == (None, "failed") and "token ***" in error
    assert TOKEN not in warehouse.read_bytes().decode("latin-1")
    assert TOKEN not in warehouse.with_name("mallard.read.duckdb").read_bytes().decode("latin-1")
