"""`mallard doctor` reads the local stack's state file: a PostgreSQL-backed stack's records are not processes."""

from __future__ import annotations

import json
import os

from include.mallard.first_hour.doctor import check_old_stack, check_pool
from include.mallard.first_hour.procs import start_time


def test_a_running_postgres_backed_stack_is_reported_not_crashed_on(tmp_path, monkeypatch):
    # The state file also records the stack's PostgreSQL and warehouse URI: both checks read every
    # key as a PID and failed with "invalid literal for int()".
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    (tmp_path / "stack").mkdir()
    state = {
        str(os.getpid()): {"name": "scheduler", "start_time": start_time(os.getpid())},
        "postgres": {"data_dir": str(tmp_path / "stack" / "postgres" / "data"), "port": 5999},
        "warehouse_uri": "postgresql://airflow:pw@127.0.0.1:5999/mallard",
    }
    (tmp_path / "stack" / "stack.json").write_text(json.dumps(state))

    old_stack = check_old_stack()
    assert not old_stack.ok and f"scheduler PID {os.getpid()}" in old_stack.detail, old_stack
    pool = check_pool()
    assert pool.ok and "not checked: the running stack keeps its metadata in its own PostgreSQL" in pool.detail, pool
