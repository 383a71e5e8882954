"""For tests/e2e/test_celery_stack.py: eight short tasks in parallel on the Celery stack.

Each airflow task sleeps 2 s, then records where it ran: a row in the warehouse (Airflow connection
`mallard_warehouse_prod`) and a file in its worker's MALLARD_WORK_DIR. A first task creates the
table, so that the eight do not race to create it.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from airflow.sdk import BaseHook, dag, get_current_context, task

NAPS = 8
TABLE = "celery_fan_out_runs"


def _warehouse():
    import psycopg2

    conn = BaseHook.get_connection("mallard_warehouse_prod")
    return psycopg2.connect(host=conn.host, port=conn.port, user=conn.login, password=conn.password, dbname=conn.schema)


@dag(dag_id="celery_fan_out", schedule=None, start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), catchup=False)
def celery_fan_out() -> None:
    @task
    def create_table() -> None:
        with _warehouse() as db, db.cursor() as cursor:
            columns = "run_id text, task_id text, hostname text, work_dir text, home text"
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({columns})")

    @task
    def nap() -> dict[str, str]:
        time.sleep(2)
        ti = get_current_context()["ti"]
        where = {"hostname": ti.hostname, "work_dir": os.environ["MALLARD_WORK_DIR"], "home": os.environ["HOME"]}
        marker = Path(where["work_dir"]) / "celery_fan_out" / ti.run_id / ti.task_id
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(where["hostname"])
        with _warehouse() as db, db.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {TABLE} VALUES (%s, %s, %s, %s, %s)",
                (ti.run_id, ti.task_id, where["hostname"], where["work_dir"], where["home"]),
            )
        return where

    table = create_table()
    for number in range(NAPS):
        table >> nap.override(task_id=f"nap_{number}")()


celery_fan_out()
