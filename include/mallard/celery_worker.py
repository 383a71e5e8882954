"""Celery settings for Mallard: Airflow's own, and a worker that preloads what Mallard's tasks import.

`[celery] celery_config_options` names `CELERY_CONFIG` (set by scripts/airflow_stack.py; elsewhere
by the deployment, docs/scale-out.md: the Dockerfile leaves Celery's settings to the platform), so
every process that creates Airflow's Celery app imports this module. An `airflow celery worker`
forks its pool processes once it has started, and each pool process forks a process per task
(Airflow's supervisor): what the worker imports before its pool starts is in every task process.
Without it each extract and load task imported dlt, and each dbt task dbt, as the LocalExecutor's
did before the scheduler preloaded them (worker_preload.py). `MALLARD_PRELOAD_TASK_LIBRARIES=false`
turns it off.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

CELERY_CONFIG: dict[str, Any] = DEFAULT_CELERY_CONFIG


@worker_init.connect
def preload_before_the_pool_forks(**_: Any) -> None:
    """Celery's `worker_init`: in the worker's main process, before it starts its pool."""
    from include.mallard import worker_preload

    if not worker_preload.is_turned_off(os.environ.get(worker_preload.PRELOAD_ENV)):
        worker_preload.preload_for_task_processes("the Celery worker's")
