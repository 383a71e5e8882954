"""The local stack's environment (scripts/airflow_stack.py), computed without starting anything."""

from __future__ import annotations

import json
import os
from pathlib import Path

from scripts.airflow_stack import PostgresCluster, StackConfig, stack_env


def test_every_stack_binds_loopback_and_keeps_its_state_in_its_own_home(tmp_path: Path):
    shared_shell = {**os.environ, "AIRFLOW__COSMOS__CACHE_DIR": "/tmp/cosmos-of-the-shell"}
    shared_shell.pop("AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME", None)
    shared_shell.pop("AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL", None)
    first = stack_env(StackConfig(airflow_home=tmp_path / "a", port=18080), base=shared_shell)
    second = stack_env(StackConfig(airflow_home=tmp_path / "b", port=18081), base=shared_shell)
    for env, home in ((first, tmp_path / "a"), (second, tmp_path / "b")):
        assert env["AIRFLOW_HOME"] == str(home)
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{home / 'airflow.db'}"
        assert env["AIRFLOW__COSMOS__CACHE_DIR"] == str(home / "cosmos")
        assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
        assert env["PROVIDERS__ENABLE_AIRFLOW_SECRETS"] == "false"  # from scripts/env.sh
        # A finished task waits at most this long for the next to be queued (scripts/env.sh).
        assert float(env["AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"]) < 1.0
        # A finished task's worker is freed within a second, not Airflow's 5 (scripts/env.sh).
        assert int(env["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"]) == 1
    assert first["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"


def test_a_stack_on_postgres_keeps_its_metadata_and_warehouse_there_not_in_sqlite(tmp_path: Path):
    postgres = PostgresCluster(tmp_path / "postgres", port=15432)
    postgres.root.mkdir()
    (postgres.root / "passwords.json").write_text(json.dumps({"airflow": "meta-pw", "mallard": "wh-pw"}))
    env = stack_env(StackConfig(airflow_home=tmp_path / "home", port=18080), base={}, postgres=postgres)

    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://airflow:meta-pw@127.0.0.1:15432/airflow"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"].startswith("postgresql+psycopg_async://airflow:meta-pw@")
    assert env["AIRFLOW_CONN_MALLARD_WAREHOUSE_PROD"] == "postgresql://mallard:wh-pw@127.0.0.1:15432/mallard"
    assert "sqlite" not in " ".join(env.values())
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"  # PostgreSQL alone does not mean Celery


def test_postgresql_runs_as_its_user_with_a_path_that_leaves_out_sbin(monkeypatch):
    """`env -i PATH=/usr/bin:/bin` (cron, a bare CI shell) has no /usr/sbin, where util-linux puts runuser."""
    import pytest

    from scripts import airflow_stack

    if os.geteuid() != 0 or not any(path.is_file() for path in airflow_stack.RUNUSER_PATHS):
        pytest.skip("only as root, with runuser in /usr/sbin or /sbin")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    prefix, owner = airflow_stack._postgres_owner()
    assert Path(prefix[0]).is_absolute() and Path(prefix[0]).name == "runuser" and Path(prefix[0]).is_file()
    assert prefix[1:] == ["-u", "postgres", "--"] and owner is not None


def test_the_stack_writes_the_projects_bytecode_even_where_python_writes_none(tmp_path: Path, monkeypatch):
    """Task processes then load the DAG file and include.mallard compiled; a broken file stops nothing."""
    import importlib.util
    import sys

    from scripts.airflow_stack import compile_project_code

    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # what PYTHONDONTWRITEBYTECODE=1 sets
    (tmp_path / "dags" / "sub").mkdir(parents=True)
    dag_file, module = tmp_path / "dags" / "elt.py", tmp_path / "dags" / "sub" / "helpers.py"
    dag_file.write_text("X = 1\n")
    module.write_text("Y = 2\n")
    (tmp_path / "dags" / "broken.py").write_text("def (\n")

    compile_project_code([tmp_path / "dags", tmp_path / "missing"])

    for source in (dag_file, module):
        bytecode = Path(importlib.util.cache_from_source(str(source)))
        assert bytecode.is_file(), f"no bytecode for {source}"
        assert bytecode.stat().st_mtime_ns >= source.stat().st_mtime_ns
    assert not Path(importlib.util.cache_from_source(str(tmp_path / "dags" / "broken.py"))).exists()
