"""The first hour, end to end in a copy of the project: `mallard doctor`, `mallard add source`, `mallard run`.

Each test runs the real command (`python -m include.mallard.cli`) in a temporary copy of the project,
with its own Airflow home and warehouse, so it writes nothing into the checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from include.mallard.config.loader import parse_source_file
from include.mallard.paths import PROJECT_ROOT
from tests.e2e.helpers import warehouse_held_open
from tests.e2e.servers import API_TOKEN, ShopApi, serve_api

pytestmark = pytest.mark.e2e
COPIED = ["include", "dags", "scripts", "docs", "mallard.yml", "requirements.txt", "requirements-local.txt"]
_IGNORED = shutil.ignore_patterns("__pycache__", "logs", ".mallard")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for name in COPIED:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=_IGNORED)
        else:
            shutil.copy2(source, root / name)
    return root


def project_env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLARD_", "AIRFLOW"))}
    env.update(
        PYTHONPATH=str(root),
        AIRFLOW_HOME=str(root / ".airflow"),
        MALLARD_WAREHOUSE_PATH=str(root / "warehouse" / "mallard.duckdb"),
        MALLARD_WORK_DIR=str(root / ".mallard"),
        COLUMNS="200",
        **extra,
    )
    return env


def mallard(
    root: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "include.mallard.cli", *args],
        cwd=root,
        env=env or project_env(root),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    print(result.stdout, result.stderr)  # the captured terminal output, shown when a test fails
    return result


def test_doctor_is_all_green_on_a_healthy_project(project):
    result = mallard(project, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PROBLEM" not in result.stdout
    assert "all 8 checks ok" in result.stdout
    assert f"{project}/include/dbt/target/manifest.json is fresh" in result.stdout  # the copy, not the checkout


def test_doctor_names_three_injected_problems_with_their_fixes(project):
    model = next((project / "include" / "dbt" / "models").rglob("*.sql"))
    model.write_text(model.read_text() + "\n-- edited after the manifest was built\n")
    (project / "include" / "sources" / "needs_token.yml").write_text(
        "kind: rest_api\nbase_url: http://127.0.0.1:1/\n"
        "auth: {type: bearer, token: {env: MALLARD_TEST_MISSING_TOKEN}}\n"
        "resources: [{name: things}]\n"
    )
    warehouse = project / "warehouse" / "mallard.duckdb"
    warehouse.parent.mkdir()
    with warehouse_held_open(warehouse, 120) as holder:
        result = mallard(project, "doctor")
    out = result.stdout
    assert result.returncode == 1, out
    assert "PROBLEM dbt manifest" in out and "is stale" in out and "fix: run `mallard manifest`" in out
    assert "PROBLEM env vars and connections" in out and "MALLARD_TEST_MISSING_TOKEN is not set" in out
    assert "PROBLEM warehouse" in out and f"PID {holder.pid}: {sys.executable} -c import duckdb" in out
    assert f"fix: close that program (DuckDB CLI, notebook, BI tool) or `kill {holder.pid}`" in out
    assert "3 problem(s)" in out


def test_add_source_for_a_csv_folder_by_flags_writes_a_valid_file_and_previews_it(project):
    data = project / "include" / "data" / "inventory"
    data.mkdir()
    (data / "stock_1.csv").write_text(
        "sku,warehouse_id,qty,updated_at\nA1,1,5,2024-01-01T08:00:00\nB2,1,7,2024-01-02T09:30:00\n"
    )
    (data / "stock_2.csv").write_text("sku,warehouse_id,qty,updated_at\nC3,2,0,2024-01-03T10:00:00\n")
    args = ["add", "source", "--name", "inventory", "--kind", "files", "--path", "include/data/inventory"]
    result = mallard(project, *args, "--glob", "stock_*.csv", "--primary-key", "sku")
    assert result.returncode == 0, result.stdout + result.stderr
    written = project / "include" / "sources" / "inventory.yml"
    assert written.read_text().startswith("# yaml-language-server: $schema=../../docs/source.schema.json\n")
    config = parse_source_file(written)
    [table] = config.tables
    assert (table.name, table.glob, table.format, table.primary_key) == ("inventory", "stock_*.csv", "csv", ["sku"])
    assert "found: 2 csv file(s)" in result.stdout
    assert "columns of inventory: sku text, warehouse_id bigint, qty bigint, updated_at timestamp" in result.stdout
    assert "suggested cursor for inventory: updated_at" in result.stdout
    assert not (project / "warehouse").exists(), "the preview must not open the warehouse"
    # A second time without --force: refused, and the first file is kept.
    again = mallard(project, *args, "--glob", "*.csv")
    assert again.returncode == 1 and "exists already" in again.stderr
    assert parse_source_file(written).tables[0].glob == "stock_*.csv"


def test_add_source_for_a_rest_api_by_flags_refers_to_the_secret_and_previews_it(project):
    with serve_api(ShopApi()) as api:
        env = project_env(project, SHOP_API_TOKEN=API_TOKEN)
        flags = ["--kind", "rest_api", "--base-url", api.base_url, "--resource", "customers", "--data-selector", "data"]
        flags += ["--paginator", "page_number", "--auth", "bearer"]
        result = mallard(project, "add", "source", "--name", "shop_api", *flags, "--secret", "SHOP_API_TOKEN", env=env)
        leaked = mallard(project, "add", "source", "--name", "leak", *flags, "--secret", API_TOKEN, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    written = project / "include" / "sources" / "shop_api.yml"
    document = yaml.safe_load(written.read_text())
    assert document["auth"] == {"type": "bearer", "token": {"env": "SHOP_API_TOKEN"}}
    assert API_TOKEN not in written.read_text()
    assert parse_source_file(written).resources[0].primary_key == ["id"]  # suggested from the data
    assert "columns of customers: id bigint, name text, tier text" in result.stdout
    # A literal token is refused, not echoed, and nothing is written.
    assert leaked.returncode == 1 and "not an env var name" in leaked.stderr and API_TOKEN not in leaked.stderr
    assert not (project / "include" / "sources" / "leak.yml").exists()


def test_add_source_interactively_through_a_pseudo_terminal(project):
    import pexpect

    data = project / "include" / "data" / "stock"
    data.mkdir()
    (data / "stock.csv").write_text("id,sku,qty,updated_at\n1,A1,5,2024-01-01T08:00:00\n2,B2,7,2024-01-02T09:30:00\n")
    env = project_env(project)
    session = pexpect.spawn(
        sys.executable, ["-m", "include.mallard.cli", "add", "source"], cwd=str(project), env=env, timeout=60,
        encoding="utf-8", dimensions=(50, 200),
    )  # fmt: skip
    transcript: list[str] = []
    session.logfile_read = _Collect(transcript)
    try:
        for prompt, answer in [
            ("Source name", "stock"),
            (r"Kind of source \(files, rest_api, sql_database\) \[files\]", ""),
            ("Folder with the files", "include/data/stock"),
            (r"Glob of the table's files \[\*\.csv\]", ""),
            (r"Format \(csv, jsonl, parquet\) \[csv\]", ""),
            (r"Table name \[stock\]", ""),
            (r"Primary key of stock \(empty: none\) \[id\]", ""),
            (r"Cursor of stock", "updated_at"),
        ]:
            session.expect(prompt)
            session.sendline(answer)
        session.expect("wrote include/sources/stock.yml")
        session.expect(pexpect.EOF)
    finally:
        session.close()
        print("".join(transcript))
    assert session.exitstatus == 0, "".join(transcript)
    [table] = parse_source_file(project / "include" / "sources" / "stock.yml").tables
    assert (table.glob, table.format, table.primary_key, table.cursor) == ("*.csv", "csv", ["id"], "updated_at")
    assert "columns of stock: id bigint, sku text, qty bigint, updated_at timestamp" in "".join(transcript)


class _Collect:
    """A pexpect log file that keeps what the terminal showed."""

    def __init__(self, into: list[str]) -> None:
        self.into = into

    def write(self, text: str) -> None:
        self.into.append(text)

    def flush(self) -> None:
        pass


def test_run_loads_a_two_day_range_and_summarises_it(project):
    import datetime as dt
    from decimal import Decimal

    from include.mallard.config import get_source
    from include.mallard.sources import synthetic
    from tests.e2e.helpers import query

    result = mallard(project, "run", "--start", "2024-01-01", "--end", "2024-01-03", timeout=900)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "run succeeded in" in out
    assert "ingestion    6 done" in out and "dbt models   9 done" in out and "dbt tests    9 done" in out
    assert "raw_stores.stores" in out and "marts.orders" in out
    log = next((project / ".airflow" / "runs").glob("run-2024-01-01-2024-01-03-*.log"))
    assert f"full log: {log}" in out
    # The marts hold what the DAG's run must produce for the two days: the generator's rows.
    shop = get_source(project / "include" / "sources", "shop")
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    orders, payments = synthetic.interval_rows(shop, start, start + dt.timedelta(days=2))
    warehouse = project / "warehouse" / "mallard.duckdb"
    assert query(warehouse, "select count(*) from marts.orders") == [(len(orders),)]
    assert re.search(rf"marts\.orders +{len(orders)} rows", out)
    [(revenue,)] = query(warehouse, "select sum(order_total) from marts.orders")
    assert revenue == Decimal(sum(p["amount_cents"] for p in payments)) / 100
    assert query(warehouse, "select count(*) from marts.daily_activity") == [(2,)]

    # `--source marketing` for the next day: only marketing loads (the other sources skip), dbt builds.
    spend_before = query(warehouse, "select count(*) from raw_marketing.spend")[0][0]
    result = mallard(project, "run", "--source", "marketing", "--start", "2024-01-03", "--end", "2024-01-04")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "ingestion    2 done, 4 skipped" in out and "dbt models   9 done" in out
    assert query(warehouse, "select count(*) from raw_shop.orders") == [(len(orders),)]  # shop did not run
    day_three = "select count(*) from raw_marketing.spend where spend_date = date '2024-01-03'"
    assert query(warehouse, day_three)[0][0] > 0
    assert query(warehouse, "select count(*) from raw_marketing.spend")[0][0] > spend_before

    # The same command again: `dags test` replaces the run of that date, which SQLite gives the same
    # id; it was reported FAILED with no task although it succeeded.
    result = mallard(project, "run", "--source", "marketing", "--start", "2024-01-03", "--end", "2024-01-04")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "run succeeded in" in out and "ingestion    2 done, 4 skipped" in out, out

    # A name that is no source stops before any run, naming the sources there are.
    result = mallard(project, "run", "--source", "shpo", "--start", "2024-01-03", "--end", "2024-01-04")
    assert result.returncode == 1
    assert (
        "--source 'shpo': no valid source of that name" in result.stderr and "marketing, shop, stores" in result.stderr
    )


def test_run_fails_with_the_failing_task_and_its_error(project):
    (project / "include" / "sources" / "stores.yml").write_text(
        "kind: files\npath: include/data/no_such_folder\ntables: [{name: stores, glob: '*.csv', on_empty: fail}]\n"
    )
    result = mallard(project, "run", "--start", "2024-01-01", "--end", "2024-01-02", timeout=900)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "run FAILED" in out and "failed tasks: ingest_stores.extract\n" in out
    assert "PipelineStepFailed" in out  # the failing task's error, from the log


def test_doctor_names_a_read_only_holder_of_the_warehouse(project):
    """A reader blocks the run's writer too, although a read-only open by doctor itself would succeed."""
    warehouse = project / "warehouse" / "mallard.duckdb"
    warehouse.parent.mkdir()
    subprocess.run([sys.executable, "-c", f"import duckdb; duckdb.connect({str(warehouse)!r}).close()"], check=True)
    hold = (
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
        "print('holding', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(warehouse)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        result = mallard(project, "doctor")
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1, result.stdout
    assert f"PROBLEM warehouse: {warehouse} is open in another process (PID {holder.pid}:" in result.stdout


def test_doctor_names_a_process_of_an_earlier_stack_still_running(project):
    """The stack's state file (scripts/airflow_stack.py) lists a process that still runs: named with its PID."""
    import json

    from include.mallard.first_hour.procs import start_time

    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state = project / ".airflow" / "stack" / "stack.json"
        state.parent.mkdir(parents=True)
        state.write_text(json.dumps({str(leftover.pid): {"name": "scheduler", "start_time": start_time(leftover.pid)}}))
        result = mallard(project, "doctor")
    finally:
        leftover.kill()
        leftover.wait()
    assert result.returncode == 1, result.stdout
    assert f"PROBLEM earlier `make stack`: still running: scheduler PID {leftover.pid}" in result.stdout
    assert f"or `kill {leftover.pid}`" in result.stdout
