"""`dbt_schedule: on_assets` (mallard.yml): ingestion DAGs without dbt, and `mallard_dbt` scheduled on their Assets."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk import Asset, AssetAlias, AssetAll, AssetAny

from include.mallard.assets import table_uri
from include.mallard.config.project import load_project_settings
from include.mallard.dbt_group import BUILD_TASK_ID
from include.mallard.dbt_on_assets import DBT_DAG_ID
from include.mallard.factory import build_dags
from include.mallard.interval import asset_run_bound
from include.mallard.paths import SOURCES_DIR
from include.mallard.warehouse import configured_warehouse_path


def _dags(tmp_path: Path, **settings: str) -> dict:
    sources = tmp_path / "sources"
    shutil.copytree(SOURCES_DIR, sources)
    marketing = sources / "marketing.yml"
    marketing.write_text(marketing.read_text() + 'schedule: "0 6 * * *"\n')
    project = load_project_settings().model_copy(update=settings)
    return build_dags(sources_dir=sources, settings=project)


def test_the_default_keeps_dbt_in_the_elt_dag_and_builds_no_dbt_dag(tmp_path):
    dags = _dags(tmp_path)
    assert DBT_DAG_ID not in dags
    assert BUILD_TASK_ID in dags["mallard_elt"].task_dict


RAW_TABLES = {"marketing": ["spend"], "shop": ["customers", "orders", "payments"], "stores": ["stores"]}


@pytest.mark.parametrize(("mode", "condition"), [("any", AssetAny), ("all", AssetAll)])
def test_on_assets_schedules_dbt_on_every_sources_raw_tables_and_alias(tmp_path, mode, condition):
    dags = _dags(tmp_path, dbt_schedule="on_assets", dbt_assets=mode)
    assert set(dags) == {"mallard_elt", "mallard_elt_ingest_marketing", DBT_DAG_ID}
    elt, dbt = dags["mallard_elt"], dags[DBT_DAG_ID]
    assert not [task_id for task_id in elt.task_dict if task_id.startswith("dbt")], "dbt moved to its own DAG"
    assert {"ingest_shop.load", "ingest_stores.load", "publish"} <= elt.task_dict.keys()
    warehouse = configured_warehouse_path()

    def landed(name: str) -> AssetAny:
        tables = [Asset(uri=table_uri(warehouse, f"raw_{name}", table)) for table in RAW_TABLES[name]]
        return AssetAny(*tables, AssetAlias(f"raw_{name}"))

    expected = condition(*(landed(name) for name in ("marketing", "shop", "stores")))
    assert dbt.timetable.asset_condition == expected
    assert BUILD_TASK_ID in dbt.task_dict and {"dbt_docs", "publish"} <= dbt.task_dict.keys()
    assert dbt.max_active_runs == 1
    # The source on its own schedule is among them: its loads trigger dbt too.
    marketing_load = dags["mallard_elt_ingest_marketing"].get_task("ingest_marketing.load")
    assert marketing_load.outlets == list(landed("marketing").objects)
    # The models the dbt DAG builds are its tasks' declared Assets.
    assert dbt.get_task("dbt.orders.run").outlets == [Asset(uri=table_uri(warehouse, "marts", "orders"))]


def _events(*intervals: tuple[str, str] | None) -> dict:
    return {
        f"asset{i}": [SimpleNamespace(extra={"interval": list(iv)} if iv else {})] for i, iv in enumerate(intervals)
    }


def test_an_asset_triggered_run_rebuilds_the_span_of_its_events_intervals():
    events = _events(("2024-01-02T00:00:00+00:00", "2024-01-03T00:00:00+00:00"), None)
    events["asset9"] = [SimpleNamespace(extra={"interval": ["2024-01-05T06:00:00+00:00", "2024-01-06T06:00:00+00:00"]})]
    run = SimpleNamespace(conf={})
    assert asset_run_bound(run, None, None, "start", events) == "2024-01-02T00:00:00+00:00"
    assert asset_run_bound(run, None, None, "end", events) == "2024-01-06T06:00:00+00:00"


def test_the_run_conf_wins_and_without_either_everything_is_rebuilt():
    events = _events(("2024-01-02T00:00:00+00:00", "2024-01-03T00:00:00+00:00"))
    by_hand = SimpleNamespace(conf={"start": "2023-12-01", "end": "2023-12-02"})
    assert asset_run_bound(by_hand, None, None, "start", events) == "2023-12-01T00:00:00+00:00"
    # '' makes macros/interval_filter.sql filter nothing: the incremental models rebuild from all raw data.
    assert asset_run_bound(SimpleNamespace(conf={}), None, None, "start", {}) == ""
    assert asset_run_bound(SimpleNamespace(conf=None), None, None, "end", _events(None)) == ""
