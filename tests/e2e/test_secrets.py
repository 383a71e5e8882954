"""Secrets held in Airflow connections never leave the task that uses them.

One `airflow dags test` run of the ELT DAG with two extra sources whose credentials are Airflow
connections: a REST API behind a bearer token (a local server) and a PostgreSQL database behind a
password (a local cluster). Both must load (so the secrets were really used), and neither value
may appear in the task logs, the Airflow metadata database (rendered template fields, XCom, ...),
dlt's working folders, the dbt logs and targets, Cosmos's cache or any text in the warehouse.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest
from dlt.common.libs.sql_alchemy import sa

from include.mallard.paths import DBT_PROJECT_DIR, SOURCES_DIR
from tests.e2e.helpers import airflow_env, run_airflow, write_elt_dag
from tests.e2e.servers import API_TOKEN, PostgresUnavailable, ShopApi, postgres_server, serve_api
from tests.e2e.test_source_kinds import fill_shop_database

pytestmark = pytest.mark.e2e
COSMOS_CACHE = os.environ.get("AIRFLOW__COSMOS__CACHE_DIR", "/tmp/cosmos")

DAG_ID = "elt_with_secrets"
API_SOURCE = """
kind: rest_api
base_url: {base_url}
auth:
  type: bearer
  token: {{connection: shop_api}}
resources:
  - name: customers
    primary_key: id
    data_selector: data
    paginator: {{type: page_number}}
"""
DATABASE_SOURCE = """
kind: sql_database
credentials: {connection: shop_pg}
schema: sales
tables:
  - name: orders
    primary_key: id
    cursor: updated_at
"""


def _files_containing(roots: list[Path], secret: bytes) -> list[str]:
    hits = []
    for root in roots:
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.is_file() and secret in path.read_bytes():
                hits.append(str(path))
    return hits


def _warehouse_texts(warehouse: Path) -> str:
    """Every text value in the warehouse (dlt keeps no pipeline state there: restore_from_destination is off)."""
    texts = []
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        columns = connection.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type in ('VARCHAR', 'JSON')"
        ).fetchall()
        for schema, table, column in columns:
            values = connection.execute(f'select "{column}" from "{schema}"."{table}"').fetchall()
            texts += [value for (value,) in values if value is not None]
    return "\n".join(texts)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("secrets")
    sources, dags = root / "sources", root / "dags"
    sources.mkdir()
    for config in SOURCES_DIR.glob("*.yml"):
        shutil.copy(config, sources / config.name)
    write_elt_dag(dags, DAG_ID, sources)
    warehouse, airflow_home, work = root / "warehouse.duckdb", root / "airflow", root / "work"
    log = root / "airflow.log"
    with contextlib.ExitStack() as servers:
        try:
            database = servers.enter_context(postgres_server())
        except PostgresUnavailable as error:
            pytest.skip(f"SKIPPED LOUDLY: PostgreSQL is not installed here ({error}); .ci/run installs it")
        fill_shop_database(sa.create_engine(database.url), schema="sales")
        api = servers.enter_context(serve_api(ShopApi()))
        (sources / "shop_api.yml").write_text(API_SOURCE.format(base_url=api.base_url))
        (sources / "shop_pg.yml").write_text(DATABASE_SOURCE)
        env = airflow_env(airflow_home, warehouse, work) | {
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW_CONN_SHOP_API": json.dumps({"conn_type": "http", "password": API_TOKEN}),
            "AIRFLOW_CONN_SHOP_PG": database.airflow_uri,
        }
        run_airflow(["db", "migrate"], env, log)
        run_airflow(["dags", "test", DAG_ID, "2024-01-03"], env, log)
        authorized_requests = api.statuses[200]
    return {
        "secrets": {"the API token": API_TOKEN, "the database password": database.password},
        "searched": [root, DBT_PROJECT_DIR / "logs", DBT_PROJECT_DIR / "target", Path(COSMOS_CACHE)],
        "warehouse": warehouse,
        "authorized_requests": authorized_requests,
    }


def test_both_secrets_were_used_to_load(run):
    assert run["authorized_requests"] >= 1
    with duckdb.connect(str(run["warehouse"]), read_only=True) as connection:
        assert connection.execute("select count(*) from raw_shop_api.customers").fetchone()[0] == 23
        assert connection.execute("select count(*) from raw_shop_pg.orders").fetchone()[0] == 24


@pytest.mark.parametrize("which", ["the API token", "the database password"])
def test_no_secret_in_logs_metadata_xcom_dbt_files_or_work_dirs(run, which):
    secret = run["secrets"][which].encode()
    searched = [path for path in run["searched"] if path.exists()]
    # The search itself works: it finds what the tasks did write (task logs, metadata database).
    assert _files_containing(searched, b"ingest_shop_api.extract"), "the task logs were not searched"
    assert _files_containing(searched, b"rendered_task_instance_fields"), "the metadata database was not searched"
    assert _files_containing(searched, secret) == [], f"{which} was written to these files"


@pytest.mark.parametrize("which", ["the API token", "the database password"])
def test_no_secret_in_the_warehouse(run, which):
    texts = _warehouse_texts(run["warehouse"])
    assert "shop_api" in texts, "dlt's bookkeeping tables were not searched"
    assert run["secrets"][which] not in texts
