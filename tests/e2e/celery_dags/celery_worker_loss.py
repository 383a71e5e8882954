"""For tests/e2e/test_celery_stack.py: a task whose Celery worker is SIGKILLed while it runs.

Its first try sleeps until the test kills the worker that runs it; the scheduler notices the
missing heartbeats and the retry (retries=1, 2 s delay) returns the hostname it ran on at once.
"""

from __future__ import annotations

import datetime as dt
import time

from airflow.sdk import dag, get_current_context, task


@dag(dag_id="celery_worker_loss", schedule=None, start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), catchup=False)
def celery_worker_loss() -> None:
    @task(retries=1, retry_delay=dt.timedelta(seconds=2))
    def outlive_worker() -> str:
        ti = get_current_context()["ti"]
        if ti.try_number == 1:
            time.sleep(600)  # the test kills this worker long before
        return ti.hostname

    outlive_worker()


celery_worker_loss()
