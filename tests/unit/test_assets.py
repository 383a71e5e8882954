"""Asset names known at parse time (issue 18): the warehouse path, dbt's relations, and each load's events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.sdk import Asset, AssetAlias
from airflow.sdk.execution_time.context import OutletEventAccessors

from include.mallard.assets import (
    check_declared_outlets,
    duckdb_location,
    emit_table_events,
    relation_uri,
    source_outlets,
    table_uri,
)
from include.mallard.config.project import load_project_settings
from include.mallard.dbt_project import RELATIONS_RELATIVE_PATH, dbt_relations, record_fingerprint
from include.mallard.paths import DEFAULT_WAREHOUSE_PATH, PROJECT_ROOT
from include.mallard.warehouse import (
    WarehousePathError,
    active_warehouse,
    configured_warehouse_path,
    resolve_warehouse_path,
)

WAREHOUSE_CONNECTION = "AIRFLOW_CONN_MALLARD_WAREHOUSE"


def _connection(host: str) -> str:
    return json.dumps({"conn_type": "generic", "host": host})


# --- where the warehouse is ------------------------------------------------------------------------


def test_the_path_is_the_env_var_resolved_against_the_project_else_the_default(monkeypatch):
    monkeypatch.delenv("MALLARD_WAREHOUSE_PATH", raising=False)
    assert configured_warehouse_path() == DEFAULT_WAREHOUSE_PATH
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", "elsewhere/w.duckdb")
    assert configured_warehouse_path() == PROJECT_ROOT / "elsewhere" / "w.duckdb"


def test_the_env_var_wins_over_the_connection_and_a_connection_naming_the_default_is_fine(tmp_path, monkeypatch):
    warehouse = tmp_path / "w.duckdb"
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(warehouse))
    monkeypatch.setenv(WAREHOUSE_CONNECTION, _connection(str(tmp_path / "other.duckdb")))
    assert resolve_warehouse_path() == warehouse
    monkeypatch.delenv("MALLARD_WAREHOUSE_PATH")
    monkeypatch.setenv(WAREHOUSE_CONNECTION, _connection("warehouse/mallard.duckdb"))  # airflow_settings.yaml's
    assert resolve_warehouse_path() == DEFAULT_WAREHOUSE_PATH


def test_a_connection_naming_another_file_fails_instead_of_writing_where_the_assets_do_not_point(tmp_path, monkeypatch):
    monkeypatch.delenv("MALLARD_WAREHOUSE_PATH", raising=False)
    monkeypatch.setenv(WAREHOUSE_CONNECTION, _connection(str(tmp_path / "other.duckdb")))
    with pytest.raises(WarehousePathError) as error:
        resolve_warehouse_path()
    message = str(error.value)
    assert "connection `mallard_warehouse`" in message and str(tmp_path / "other.duckdb") in message
    assert f"Fix: set MALLARD_WAREHOUSE_PATH={tmp_path / 'other.duckdb'}" in message
    assert not (tmp_path / "other.duckdb").exists()


def test_a_server_environment_never_reads_its_connection_as_a_file(monkeypatch):
    monkeypatch.setenv("MALLARD_ENV", "prod")
    monkeypatch.delenv("MALLARD_WAREHOUSE_PATH", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_MALLARD_WAREHOUSE_PROD", _connection("db.internal"))
    assert resolve_warehouse_path() == DEFAULT_WAREHOUSE_PATH


# --- dbt's relations -------------------------------------------------------------------------------


def _project(tmp_path: Path, monkeypatch, built_with: str) -> Path:
    """A dbt project folder with a manifest as `dbt parse` leaves it, recorded with the warehouse `built_with`."""
    project = tmp_path / "dbt"
    (project / "target").mkdir(parents=True)
    manifest = {
        "sources": {
            "source.p.shop.orders": {
                "database": "mallard",
                "schema": "raw_shop",
                "name": "orders",
                "identifier": "Orders",
            },
            "source.p.shop.customers": {"database": "mallard", "schema": "raw_shop", "name": "customers"},
            "source.p.crm.accounts": {"database": "mallard", "schema": "raw_crm", "name": "accounts"},
        },
        "nodes": {
            "model.p.orders": {"resource_type": "model", "database": "mallard", "schema": "marts", "name": "orders"},
            "model.p.cte": {
                "resource_type": "model",
                "database": "mallard",
                "schema": "marts",
                "name": "cte",
                "config": {"materialized": "ephemeral"},
            },
            "model.p.ext": {"resource_type": "model", "database": "lake", "schema": "s", "name": "e", "alias": "ext"},
            "test.p.not_null": {"resource_type": "test", "database": "mallard", "schema": "marts", "name": "t"},
        },
    }
    (project / "target" / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(tmp_path / built_with))
    record_fingerprint(project)
    return project


def test_the_relations_beside_the_manifest_keep_sources_and_built_nodes_only(tmp_path, monkeypatch):
    project = _project(tmp_path, monkeypatch, "mallard.duckdb")
    assert (project / RELATIONS_RELATIVE_PATH).is_file()
    relations = dbt_relations(project)
    assert relations.catalog == "mallard"
    shop = [("mallard", "raw_shop", "Orders"), ("mallard", "raw_shop", "customers")]
    assert relations.source_tables("raw_shop") == shop
    assert set(relations.nodes) == {"model.p.orders", "model.p.ext"}, "no ephemeral model, no test"
    # Without the recorded file (a manifest built elsewhere), the manifest itself says the same.
    (project / RELATIONS_RELATIVE_PATH).unlink()
    assert dbt_relations(project) == relations


def test_a_relation_in_the_warehouse_file_is_named_after_the_file_the_tasks_write(tmp_path, monkeypatch):
    relations = dbt_relations(_project(tmp_path, monkeypatch, "mallard.duckdb"))
    written = tmp_path / "prod" / "warehouse.duckdb"
    location = duckdb_location(written)
    assert relation_uri(location, relations, relations.nodes["model.p.orders"]) == table_uri(written, "marts", "orders")
    # A relation in another attached database keeps that database.
    assert relation_uri(location, relations, relations.nodes["model.p.ext"]).endswith("/lake/s/ext")


def test_a_load_task_declares_the_raw_tables_dbt_reads_and_its_alias(tmp_path, monkeypatch):
    project = _project(tmp_path, monkeypatch, "mallard.duckdb")
    warehouse = tmp_path / "mallard.duckdb"
    dev = active_warehouse(load_project_settings())
    outlets = source_outlets("shop", "raw_shop", dev, project)
    assert outlets == [
        Asset(uri=table_uri(warehouse, "raw_shop", "Orders")),
        Asset(uri=table_uri(warehouse, "raw_shop", "customers")),
        AssetAlias("raw_shop"),
    ]
    # A source dbt does not read, and any source on a server (its host is in the connection): the alias only.
    assert source_outlets("events", "raw_events", dev, project) == [AssetAlias("raw_events")]
    monkeypatch.setenv("MALLARD_ENV", "prod")
    assert source_outlets("shop", "raw_shop", active_warehouse(load_project_settings()), project) == [
        AssetAlias("raw_shop")
    ]


# --- a load's events -------------------------------------------------------------------------------


def test_declared_tables_get_their_rows_on_their_own_event_and_the_others_go_through_the_alias(tmp_path):
    location = duckdb_location(tmp_path / "mallard.duckdb")
    uri = {table: table_uri(tmp_path / "mallard.duckdb", "raw_shop", table) for table in ("a", "b", "c", "a__kids")}
    declared = [Asset(uri=uri["a"]), Asset(uri=uri["b"]), Asset(uri=uri["c"]), AssetAlias("raw_shop")]
    events = OutletEventAccessors()
    extra = {"interval": ["2024-01-01T00:00:00+00:00", "2024-01-02T00:00:00+00:00"]}
    emitted = emit_table_events(events, declared, "shop", "raw_shop", {"a": 5, "b": 0, "a__kids": 7}, extra, location)

    assert emitted == sorted(uri.values())
    assert events[Asset(uri=uri["a"])].extra == {**extra, "rows": 5}
    assert events[Asset(uri=uri["b"])].extra == {**extra, "rows": 0}
    # Declared but not written this time: Airflow records its event anyway, so it says 0 rows.
    assert events[Asset(uri=uri["c"])].extra == {**extra, "rows": 0}
    through_alias = events[AssetAlias("raw_shop")].asset_alias_events
    assert [(e.dest_asset_key.name, e.extra) for e in through_alias] == [(uri["a__kids"], {**extra, "rows": 7})]


def test_a_task_whose_declared_assets_name_another_warehouse_fails_before_writing(tmp_path):
    class Task:
        outlets = [Asset(uri=table_uri(tmp_path / "parsed.duckdb", "raw_shop", "orders")), AssetAlias("raw_shop")]

    check_declared_outlets(Task(), duckdb_location(tmp_path / "parsed.duckdb"))
    with pytest.raises(RuntimeError, match="MALLARD_WAREHOUSE_PATH must be the same for the DAG processor and"):
        check_declared_outlets(Task(), duckdb_location(tmp_path / "run.duckdb"))
