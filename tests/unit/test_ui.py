"""The Mallard pages on real DuckDB snapshots: before the first run, with the run history, and on bad input.

Each test writes a warehouse file with raw tables, dbt's tables and views and (or not) the run
history tables with the agreed columns (tests/unit/ui_fixtures.py), publishes it as the snapshot
and renders the pages the plugin serves.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from include.mallard.paths import PROJECT_ROOT, SOURCES_DIR
from include.mallard.ui.data import open_snapshot
from include.mallard.ui.html import Links
from include.mallard.ui.runs_page import AirflowRun, render_run_page, render_runs_page
from include.mallard.ui.sources_page import NO_LOAD_YET, render_sources_page
from include.mallard.ui.tables_page import render_tables_page
from include.mallard.ui.text import shown_text
from tests.unit.ui_fixtures import DAG_ID, RUN_BAD, RUN_OK, demo_history, publish, write_warehouse

LINKS = Links(base="/mallard", airflow="")


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    warehouse = tmp_path / "warehouse" / "mallard.duckdb"
    snapshot = warehouse.with_name("mallard.read.duckdb")
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(warehouse))
    monkeypatch.setenv("MALLARD_SNAPSHOT_PATH", str(snapshot))
    return warehouse, snapshot


@pytest.fixture
def published(paths: tuple[Path, Path]) -> Path:
    warehouse, snapshot = paths
    write_warehouse(warehouse, demo_history())
    publish(warehouse, snapshot)
    return snapshot


def _no_host_path(page: str) -> None:
    assert str(PROJECT_ROOT) not in page
    assert "/work/secret" not in page and "/tmp/" not in page


def test_before_the_first_run_every_page_says_so(paths):
    sources = render_sources_page(SOURCES_DIR, LINKS)
    assert sources.count(NO_LOAD_YET) >= 4  # the notice and one per source
    for name in ("shop", "stores", "marketing", "raw_shop", "synthetic"):
        assert name in sources
    assert "no run yet" in render_runs_page(LINKS, {})
    tables = render_tables_page(LINKS)
    assert "No run has published the warehouse snapshot yet" in tables and "customers (not built yet)" in tables
    assert render_tables_page(LINKS, "marts", "customers") is None  # nothing to preview: a 404
    assert render_run_page(LINKS, DAG_ID, RUN_OK, AirflowRun()) is None


def test_a_snapshot_without_history_tables_shows_the_columns_and_no_load_yet(paths):
    warehouse, snapshot = paths
    write_warehouse(warehouse, history=None)
    publish(warehouse, snapshot)
    page = render_sources_page(SOURCES_DIR, LINKS)
    assert "no run has loaded this source into the snapshot" in page
    assert "ordered_at <i>TIMESTAMP WITH TIME ZONE</i>" in page  # columns still come from the snapshot
    assert "no run yet" in render_runs_page(LINKS, {})


def test_the_sources_page_shows_the_last_load_rows_columns_changes_and_freshness(published):
    page = render_sources_page(SOURCES_DIR, LINKS)
    _no_host_path(page)
    stores = page[page.index("id='source-stores'") :]
    # The last load of stores: its interval, when, how long, the dlt load id, and its rows per table.
    assert "interval <b>2024-01-08 → 2024-01-09</b>" in stores
    assert "finished <b>2024-01-09 06:01:00 UTC</b>" in stores and "took <b>1.0 s</b>" in stores
    assert "<code>1704780000.789</code>" in stores
    assert "<td class='num'>6</td><td class='num'>5</td>" in stores  # 6 loaded, 5 in the table now
    assert "store_name <i>VARCHAR</i>" in stores and "opened_on <i>DATE</i>" in stores
    assert "tax_rate" in stores and "type changed" in stores and "bigint → double" in stores
    # Freshness: the newest value of the cursor that the config names (shop's orders: ordered_at).
    shop = page[page.index("id='source-shop'") : page.index("id='source-stores'")]
    assert "<code>ordered_at</code> newest <b>2024-01-07 19:30:00 UTC</b>" in shop
    assert "_dlt_loads" not in shop  # dlt's bookkeeping is not a raw table of the user's
    log = "/dags/mallard_elt/runs/manual__2024-01-09T06%3A00%3A00%2B00%3A00/tasks/ingest_stores.load"
    assert f"href='{log}' target='_top'" in stores


def test_a_failed_last_load_shows_its_error_without_host_path_and_the_last_good_load(published):
    page = render_sources_page(SOURCES_DIR, LINKS)
    shop = page[page.index("id='source-shop'") : page.index("id='source-stores'")]
    assert "last load <span class='pill state-failed'>failed</span>" in shop
    assert "IO Error: cannot open …/path/orders.parquet" in shop
    assert "last successful load <span class='pill state-success'>success</span>" in shop
    # The failed load loaded no table: the rows shown are the last good load's, and say so.
    assert "rows in last successful load" in shop and "<td class='num'>120</td>" in shop
    _no_host_path(page)


def test_config_problems_show_file_field_and_fix_with_a_project_relative_path(tmp_path, paths):
    sources = PROJECT_ROOT / "tests" / "fixtures" / "invalid_sources"
    page = render_sources_page(sources, LINKS)
    assert "The source configs have" in page
    assert "<code>tests/fixtures/invalid_sources/cron_never_fires.yml</code> · field <code>schedule</code>" in page
    assert "<span class='fix'>Fix:</span>" in page
    _no_host_path(page)
    (tmp_path / "bad.yml").write_text("kind: <script>alert(1)</script>\n")
    outside = render_sources_page(tmp_path, LINKS)
    assert "<script>alert" not in outside and "&lt;script&gt;alert(1)&lt;/script&gt;" in outside
    assert "bad.yml" in outside and "field <code>kind</code>" in outside
    _no_host_path(outside)


def test_the_runs_page_counts_models_and_tests_and_names_the_failing_test_with_its_rows(published):
    tasks = {"dbt.stg_stores__stores.test", "ingest_shop.load", "ingest_stores.load", "dbt.dbt_producer_watcher"}
    airflow = {(DAG_ID, RUN_BAD): AirflowRun("failed", tasks), (DAG_ID, RUN_OK): AirflowRun("success")}
    page = render_runs_page(LINKS, airflow)
    _no_host_path(page)
    assert page.index(RUN_BAD) < page.index(RUN_OK)  # newest first
    bad = page[: page.index(f"{DAG_ID} · {RUN_OK}")]
    assert "dbt models <span class='pill state-passed'>1 passed</span>" in bad
    assert "<span class='pill state-skipped'>2 skipped</span>" in bad
    assert (
        "dbt tests <span class='pill state-passed'>1 passed</span> <span class='pill state-failed'>1 failed</span>"
        in bad
    )
    row = bad[bad.index("not_null_stg_stores__stores_store_name") :]
    assert "<td class='num'>3</td>" in row.split("</tr>")[0]  # its failing row count
    run = "/dags/mallard_elt/runs/manual__2024-01-09T06%3A00%3A00%2B00%3A00"
    assert f"{run}/tasks/dbt.stg_stores__stores.test" in row.split("</tr>")[0]
    assert f"{run}/tasks/dbt.dbt_producer_watcher" in bad
    # Rows loaded per table, and the failed load with its error.
    assert "<code>stores</code></td><td><code>stores</code></td><td class='num'>6</td>" in bad
    assert "IO Error: cannot open …/path/orders.parquet" in bad
    ok = page[page.index(f"{DAG_ID} · {RUN_OK}") :]
    assert "rows loaded <b>213</b>" in ok and "0 failed" in ok


def test_a_log_link_never_points_at_a_task_the_run_does_not_have(published):
    page = render_run_page(LINKS, DAG_ID, RUN_BAD, AirflowRun("failed", {"dbt.dbt_producer_watcher"}))
    assert page is not None and "Every dbt node" in page
    run = "/dags/mallard_elt/runs/manual__2024-01-09T06%3A00%3A00%2B00%3A00"
    assert "tasks/dbt.stg_stores__stores.test" not in page  # not a task of this run: the build's log instead
    assert f"{run}/tasks/dbt.dbt_producer_watcher" in page
    assert render_run_page(LINKS, DAG_ID, "no_such_run", AirflowRun()) is None


def test_the_preview_lists_the_models_and_raw_tables_and_pages_by_50(published):
    index = render_tables_page(LINKS)
    assert "href='/mallard/tables/marts/customers'" in index
    assert "href='/mallard/tables/raw_shop/orders'" in index and "_dlt_loads" not in index
    assert "daily_activity (not built yet)" in index  # in the manifest, not in this snapshot
    first = render_tables_page(LINKS, "marts", "customers")
    assert "120 rows" in first and "page 1 of 3" in first and "rows 1&ndash;50 of 120" in first
    assert "number_of_orders <i>BIGINT</i>" in first
    assert first.count("<tr>") == 51  # header + 50 rows
    last = render_tables_page(LINKS, "marts", "customers", page=3)
    assert (
        "rows 101&ndash;120 of 120" in last and "<td>customer 119</td>" in last and "<td>customer 99</td>" not in last
    )
    second = render_tables_page(LINKS, "marts", "customers", page=2)
    assert "<td>customer 50</td>" in second and "<td>customer 49</td>" not in second
    # dbt's views (their SQL names the warehouse's catalog) work in the snapshot, a copy of another name.
    assert "40 rows" in render_tables_page(LINKS, "staging", "stg_shop__orders")


@pytest.mark.parametrize(
    ("schema", "table"),
    [("marts", "nope"), ("mallard_meta", "loads"), ("information_schema", "tables"), ('marts"; drop table x; --', "t")],
)
def test_the_preview_refuses_any_table_not_in_the_list(published, schema, table):
    assert render_tables_page(LINKS, schema, table) is None


HOLD_READ_ONLY = (
    "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
    "print('holding', flush=True); time.sleep(60)"
)


def test_pages_read_the_snapshot_read_only_and_never_change_it(published):
    before = hashlib.sha256(published.read_bytes()).hexdigest()
    # Another process (a BI tool) holds the snapshot read-only: a read-write open would fail here.
    holder = subprocess.Popen([sys.executable, "-c", HOLD_READ_ONLY, str(published)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        assert "120 rows" in render_tables_page(LINKS, "marts", "customers")
        assert "interval" in render_sources_page(SOURCES_DIR, LINKS)
    finally:
        holder.kill()
        holder.wait()
    assert hashlib.sha256(published.read_bytes()).hexdigest() == before


def test_a_snapshot_that_is_not_a_database_is_a_clear_error(paths):
    _, snapshot = paths
    snapshot.parent.mkdir(parents=True)
    snapshot.write_text("not a duckdb file")
    page = render_sources_page(SOURCES_DIR, LINKS)
    assert "cannot be opened" in page and "the next successful run publishes a new one" in page
    assert "Traceback" not in page
    _no_host_path(page)
    with pytest.raises(Exception, match="cannot be opened"), open_snapshot():
        pass


def test_shown_text_makes_project_paths_relative_and_shortens_others():
    assert shown_text(f"{PROJECT_ROOT}/include/sources/shop.yml: bad") == "include/sources/shop.yml: bad"
    assert shown_text("open /tmp/pytest-1/x/cosmos/models/a.sql failed") == "open …/models/a.sql failed"
    assert (
        shown_text("see http://127.0.0.1:8080/dags/x/runs and 3/4 rows")
        == "see http://127.0.0.1:8080/dags/x/runs and 3/4 rows"
    )


def test_the_docs_site_is_written_without_a_catalog_and_keeps_a_run_s_catalog(tmp_path):
    from include.mallard.dbt_docs import docs_dir_of, write_docs_without_catalog
    from include.mallard.paths import DBT_PROJECT_DIR

    docs = write_docs_without_catalog(DBT_PROJECT_DIR, tmp_path / "docs")
    manifest = json.loads((docs / "manifest.json").read_text())
    assert "model.mallard.customers" in manifest["nodes"]
    assert manifest["parent_map"]["model.mallard.customers"]  # the lineage
    assert json.loads((docs / "catalog.json").read_text())["nodes"] == {}
    assert "dbt Docs" in (docs / "index.html").read_text()[:2000] or (docs / "index.html").stat().st_size > 100_000
    assert str(PROJECT_ROOT) not in (docs / "manifest.json").read_text()
    (docs / "catalog.json").write_text('{"nodes": {"model.mallard.customers": {}}, "sources": {}}')
    write_docs_without_catalog(DBT_PROJECT_DIR, docs)
    assert "model.mallard.customers" in (docs / "catalog.json").read_text()  # the last run's catalog stays
    other = tmp_path / "other_project"
    assert docs_dir_of(other) == other / "target" / "docs"  # another project never overwrites ours


def test_the_plugin_module_imports_no_airflow_security_and_its_app_has_no_docs_routes():
    code = (
        "import sys, plugins.mallard_plugin as p; "
        "heavy = ('airflow.api_fastapi.core_api.security', 'duckdb', 'dbt'); "
        "print('HEAVY', sorted(m for m in heavy if m in sys.modules)); "
        "app = p.MallardPlugin().fastapi_apps[0]['app']; print('ROUTES', sorted(r.path for r in app.routes))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in result.stdout.splitlines() if " " in line}
    assert lines["HEAVY"] == "[]", result.stdout
    routes = lines["ROUTES"]
    assert "/sources" in routes and "/tables/{schema}/{table}" in routes
    for off in ("/docs", "/openapi.json", "/redoc"):
        assert f"'{off}'" not in routes


def test_a_broken_mallard_app_is_logged_and_not_served_instead_of_stopping_the_api_server():
    code = (
        "import sys, types, logging; logging.basicConfig(); broken = types.ModuleType('include.mallard.ui.app'); "
        "broken.create_app = lambda: 1 / 0; sys.modules['include.mallard.ui.app'] = broken; "
        "import plugins.mallard_plugin as p; print('APPS', p.MallardPlugin().fastapi_apps); "
        "print('GUARD', p.MallardPlugin().fastapi_root_middlewares[0]['name'])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert "APPS []" in result.stdout and "GUARD mallard_cosmos_auth" in result.stdout, result.stdout
    assert "The Mallard UI app could not be built" in result.stdout + result.stderr


def test_the_sources_page_shows_each_sources_assets_and_their_last_event(published):
    import datetime as dt

    from include.mallard.ui.assets_panel import AssetEventSeen, SourceAsset

    at = dt.datetime(2024, 1, 8, 0, 5, tzinfo=dt.UTC)
    extra = {"rows": 46, "interval": ["2024-01-07T00:00:00+00:00", "2024-01-08T00:00:00+00:00"], "load_ids": ["1"]}
    event = AssetEventSeen(at, "mallard_elt", "scheduled__2024-01-07", "ingest_shop.load", extra)
    asked: list[list[str]] = []

    def assets_of(names: list[str]) -> dict[str, list[SourceAsset]]:
        asked.append(names)
        return {
            "shop": [
                SourceAsset(7, "duckdb:///work/secret/warehouse.duckdb/warehouse/raw_shop/orders", event),
                SourceAsset(8, "duckdb:///work/secret/warehouse.duckdb/warehouse/raw_shop/payments", None),
            ]
        }

    page = render_sources_page(SOURCES_DIR, LINKS, now=at + dt.timedelta(hours=1), assets_of=assets_of)
    assert asked == [["marketing", "shop", "stores"]]
    shop = page[page.index("id='source-shop'") :]
    shop = shop[: shop.index("</section>")]
    assert "<code>raw_shop</code>" in shop  # the alias
    assert "href='/assets/7'" in shop and ">raw_shop.orders</a>" in shop
    assert "2024-01-08 00:05" in shop and "ingest_shop.load" in shop and "scheduled__2024-01-07" in shop
    assert "46" in shop and "2024-01-07 → 2024-01-08" in shop
    assert ">raw_shop.payments</a>" in shop and "no event yet" in shop
    # A source Airflow has no Asset of yet says so; the warehouse path never shows.
    stores = page[page.index("id='source-stores'") :]
    assert "Airflow has no Asset event from it" in stores[: stores.index("</section>")]
    _no_host_path(page)


def test_the_sources_page_says_which_environment_and_warehouse(paths, monkeypatch):
    monkeypatch.setenv("MALLARD_ENV", "dev")
    dev = render_sources_page(SOURCES_DIR, LINKS)
    assert "writes the <b>duckdb</b> warehouse through Airflow connection <code>mallard_warehouse</code>" in dev
    assert "a server warehouse does not have" not in dev
    monkeypatch.setenv("MALLARD_ENV", "prod")
    prod = render_sources_page(SOURCES_DIR, LINKS)
    assert "writes the <b>postgres</b> warehouse through Airflow connection <code>mallard_warehouse_prod</code>" in prod
    # The snapshot is DuckDB's: the page says its loads are not the server's.
    assert "a server warehouse does not have" in prod


def test_a_swap_table_left_by_a_failed_full_refresh_is_not_shown_as_a_raw_table(paths):
    import duckdb

    from include.mallard.warehouse import FULL_REFRESH_SWAP_SUFFIX

    warehouse, snapshot = paths
    write_warehouse(warehouse, demo_history())
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute(f'create table raw_shop."orders{FULL_REFRESH_SWAP_SUFFIX}" as from raw_shop.orders limit 0')
    publish(warehouse, snapshot)
    index = render_tables_page(LINKS)
    assert "href='/mallard/tables/raw_shop/orders'" in index
    assert FULL_REFRESH_SWAP_SUFFIX not in index
    assert FULL_REFRESH_SWAP_SUFFIX not in render_sources_page(SOURCES_DIR, LINKS)
