"""Data-aware scheduling under the real scheduler: raw-table Assets trigger the dbt DAG (issue 18).

A stack whose DAG folder builds the project with `dbt_schedule: on_assets` and `dbt_assets: all`
over copies of the demo sources, `marketing` with a schedule of its own. With the job schedule on,
unpausing the DAGs makes the scheduler run each one's latest interval, as it would in production:
`mallard_elt` loads shop and stores, `mallard_elt_ingest_marketing` loads marketing, and only when
every source has landed (an event on one of its raw tables or its alias) does `mallard_dbt` run,
asset-triggered, and build the models.

Every raw table and model Asset has its producing task (declared outlets), and the raw tables
the dbt DAG as consumer. Then headless Chromium opens Airflow's Assets view, a raw table's and a
model's page, and takes screenshots (their paths are printed).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from include.mallard.assets import table_uri
from include.mallard.paths import INCLUDE_DIR, SOURCES_DIR
from scripts.airflow_stack import AirflowStack
from tests.e2e.airflow_api import RUN_TIMEOUT, Api, isolated_stack, unfinished_report, wait_for_dag
from tests.e2e.helpers import query
from tests.e2e.test_ui_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SKIP_BANNER,
    UI_TIMEOUT_MS,
    PageProblems,
    assert_page_ok,
    log_in,
    screenshot,
)

pytestmark = pytest.mark.e2e

ELT_DAG, MARKETING_DAG, DBT_DAG = "mallard_elt", "mallard_elt_ingest_marketing", "mallard_dbt"
DAG_FILE = """# An Airflow DAG file (the DAG processor reads files that mention both words).
from pathlib import Path

from include.mallard.config.project import load_project_settings
from include.mallard.factory import build_dags

settings = load_project_settings().model_copy(update={{"dbt_schedule": "on_assets", "dbt_assets": "all"}})
globals().update(build_dags(sources_dir=Path({sources!r}), settings=settings))
"""


def _sources(folder: Path) -> Path:
    folder.mkdir()
    for path in SOURCES_DIR.glob("*.yml"):
        text = path.read_text().replace("path: include/", f"path: {INCLUDE_DIR}/")
        if path.stem == "marketing":
            text += 'schedule: "0 6 * * *"\n'
        (folder / path.name).write_text(text)
    return folder


def _runs(api: Api, dag_id: str) -> list[dict[str, Any]]:
    return api.all_items(f"/dags/{dag_id}/dagRuns", "dag_runs")


def _wait_for_finished_runs(api: Api, dag_ids: tuple[str, ...], timeout: float) -> dict[str, list[dict[str, Any]]]:
    """Every DAG in `dag_ids` has at least one run, and all its runs are finished."""
    deadline = time.monotonic() + timeout
    runs: dict[str, list[dict[str, Any]]] = {}
    while time.monotonic() < deadline:
        api.assert_stack_alive()
        runs = {dag_id: _runs(api, dag_id) for dag_id in dag_ids}
        if all(runs[d] and all(r["state"] in ("success", "failed") for r in runs[d]) for d in dag_ids):
            return runs
        time.sleep(5)
    report = "\n".join(unfinished_report(api, d, r) for d, r in runs.items())
    raise AssertionError(f"runs not finished within {timeout:.0f} s: {runs}\n{report}")


def _screenshot_assets_view(stack: AirflowStack, folder: Path) -> None:
    """Airflow's Assets view in headless Chromium, as a user sees it after the runs (the path is printed)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print(f"{SKIP_BANNER}: no playwright, no screenshot of the Assets view")
        return
    if not CHROMIUM.is_file():
        print(f"{SKIP_BANNER}: {CHROMIUM} is missing, no screenshot of the Assets view")
        return
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        problems = PageProblems(context)
        log_in(page, problems, stack)
        page.goto(f"{stack.config.url}/assets")
        page.get_by_text("raw_shop/orders").first.wait_for()
        screenshot(page, folder, "assets", full_page=True)
        assert_page_ok(page, problems, "the Assets view")
        # One raw table's page: its graph (the producing task, the alias, the consumers).
        page.get_by_role("link", name=re.compile(r"raw_shop.orders$")).first.click()
        page.wait_for_url(re.compile(r"/assets/\d+"))
        page.wait_for_timeout(3000)  # the graph lays itself out after the page has loaded
        screenshot(page, folder, "asset_raw_shop_orders", full_page=True)
        assert_page_ok(page, problems, "the raw_shop.orders Asset")
        # A model's page: its producing task in the dbt DAG, downstream of the raw tables.
        page.goto(f"{stack.config.url}/assets")
        page.get_by_role("link", name=re.compile(r"marts.daily_activity$")).first.click()
        page.wait_for_url(re.compile(r"/assets/\d+"))
        page.wait_for_timeout(3000)
        screenshot(page, folder, "asset_marts_daily_activity", full_page=True)
        assert_page_ok(page, problems, "the marts.daily_activity Asset")
        browser.close()


def _assert_sources_page_shows_assets(api: Api, orders_events: list[dict[str, Any]]) -> None:
    """Mallard's Sources page lists each source's Assets with the newest event, from Airflow's database."""
    page = api.client.get(f"{api.stack.config.url}/mallard/sources")
    assert page.status_code == 200, page.text[:500]
    shop = page.text[page.text.index("id='source-shop'") :]
    shop = shop[: shop.index("</section>")]
    newest = max(orders_events, key=lambda e: e["timestamp"])
    for table in ("orders", "payments", "customers"):
        assert f">raw_shop.{table}</a>" in shop, shop
    assert f"href='/assets/{newest['asset_id']}'" in shop
    assert newest["source_run_id"] in shop and "ingest_shop.load" in shop
    marketing = page.text[page.text.index("id='source-marketing'") :]
    assert ">raw_marketing.spend</a>" in marketing[: marketing.index("</section>")]


def test_sources_land_their_assets_and_the_dbt_dag_runs_on_them(tmp_path: Path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "mallard_assets.py").write_text(DAG_FILE.format(sources=str(_sources(tmp_path / "sources"))))
    extra_env = {"AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True"}
    with isolated_stack(tmp_path / "stack", extra_env) as stack:
        api = Api(stack)
        for dag_id in (ELT_DAG, MARKETING_DAG, DBT_DAG):
            wait_for_dag(api, dag_id)
        dbt_dag = api.call("GET", f"/dags/{DBT_DAG}/details")
        assert "timetable_summary" in dbt_dag and "Asset" in str(dbt_dag["timetable_summary"]), dbt_dag
        for dag_id in (DBT_DAG, ELT_DAG, MARKETING_DAG):
            api.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        # Each clock DAG runs its latest interval; dbt waits for an event on every alias, then runs.
        runs = _wait_for_finished_runs(api, (ELT_DAG, MARKETING_DAG, DBT_DAG), 2 * RUN_TIMEOUT)
        events = api.all_items("/assets/events", "asset_events")
        warehouse = Path(stack.env["MALLARD_WAREHOUSE_PATH"])

        for dag_id, dag_runs in runs.items():
            assert {r["state"] for r in dag_runs} == {"success"}, (dag_id, dag_runs)
        # Usually one run each; a clock tick during the test (midnight, 06:00) adds one, which is fine.
        assert {r["run_type"] for r in runs[DBT_DAG]} == {"asset_triggered"}, runs[DBT_DAG]

        # One event per raw table and load, from the load task that wrote it, with its rows and interval.
        # By name: an Asset's name is the URI as built; Airflow stores `duckdb:///x` as `duckdb:/x`.
        loads = [e for e in events if e["source_task_id"] and e["source_task_id"].endswith(".load")]

        def of(schema: str, table: str) -> list[dict[str, Any]]:
            return [e for e in loads if e["name"] == table_uri(warehouse, schema, table)]

        marketing_runs = {r["dag_run_id"]: r for r in runs[MARKETING_DAG]}
        spends = of("raw_marketing", "spend")
        assert len(spends) == len(marketing_runs), spends
        for spend in spends:
            assert spend["source_dag_id"] == MARKETING_DAG and spend["source_task_id"] == "ingest_marketing.load"
            run = marketing_runs[spend["source_run_id"]]
            interval = [
                dt.datetime.fromisoformat(run[k]).isoformat() for k in ("data_interval_start", "data_interval_end")
            ]
            assert spend["extra"]["interval"] == interval
            assert spend["extra"]["rows"] == 0  # the demo CSVs end in March 2024: an empty interval, still an event
        orders = of("raw_shop", "orders")
        assert orders and {e["source_dag_id"] for e in orders} == {ELT_DAG}
        loaded = sum(e["extra"]["rows"] for e in orders)
        assert loaded > 0 and query(warehouse, "select count(*) from raw_shop.orders") == [(loaded,)]
        # The dbt run was created by these events, and the models that read them were built.
        assert any(r["dag_id"] == DBT_DAG for e in spends for r in e["created_dagruns"]), spends
        assert query(warehouse, "select count(*) from marts.orders") == [(loaded,)]
        models = {e["name"] for e in events if e["source_dag_id"] == DBT_DAG}
        assert table_uri(warehouse, "marts", "daily_activity") in models, models

        # The scheduler activates new Assets in its periodic orphanage check (up to a minute later).
        names = {e["name"] for e in events}
        deadline = time.monotonic() + 180
        while len(shown := api.all_items("/assets", "assets")) < len(names) and time.monotonic() < deadline:
            time.sleep(5)
        assert {a["name"] for a in shown} == names, "the Assets view does not list every Asset that has an event"
        # Declared outlets: every raw table and model Asset has its producing task, the raw tables
        # their consumer DAG, so Airflow draws load task -> raw table -> mallard_dbt -> model.
        by_name = {a["name"]: a for a in shown}

        def producers(schema: str, table: str) -> set[tuple[str, str]]:
            asset = by_name[table_uri(warehouse, schema, table)]
            return {(t["dag_id"], t["task_id"]) for t in asset["producing_tasks"]}

        assert producers("raw_shop", "orders") == {(ELT_DAG, "ingest_shop.load")}
        assert producers("raw_marketing", "spend") == {(MARKETING_DAG, "ingest_marketing.load")}
        assert producers("marts", "daily_activity") == {(DBT_DAG, "dbt.daily_activity.run")}
        assert producers("staging", "stg_shop__orders") == {(DBT_DAG, "dbt.stg_shop__orders.run")}
        orders_asset = by_name[table_uri(warehouse, "raw_shop", "orders")]
        assert DBT_DAG in {d["dag_id"] for d in orders_asset["scheduled_dags"]}, orders_asset
        _assert_sources_page_shows_assets(api, orders)
        _screenshot_assets_view(stack, tmp_path)
    shutil.rmtree(tmp_path / "stack" / "work", ignore_errors=True)
