"""DAG integrity: the DAG folder imports cleanly and the ELT DAG has the promised shape."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from include.mallard.config.loader import source_files
from include.mallard.dbt_group import BUILD_DONE_TASK_ID
from include.mallard.dbt_group import BUILD_TASK_ID as PRODUCER_TASK_ID
from include.mallard.factory import build_elt_dag
from include.mallard.paths import DBT_PROJECT_DIR, PROJECT_ROOT, SOURCES_DIR
from include.mallard.warehouse import WAREHOUSE_POOL

SNAPSHOT = Path(__file__).parent / "snapshots" / "mallard_elt.json"


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(str(PROJECT_ROOT / "dags"))


@pytest.fixture(scope="module")
def elt_dag(dagbag):
    return dagbag.dags["mallard_elt"]


def _dbt_manifest() -> dict:
    return json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "mallard_elt" in dagbag.dags


def test_every_dag_has_tags_owner_and_retries(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.default_args.get("owner") not in (None, "airflow"), f"{dag_id} has no owner"
        assert dag.default_args.get("retries", 0) >= 2, f"{dag_id} retries < 2"
        for task in dag.tasks:
            if task.task_id == PRODUCER_TASK_ID:
                # Cosmos skips a producer retry rather than run `dbt build` twice; the model and
                # test tasks retry instead, each re-running its own node.
                assert task.retries == 0, f"{dag_id}.{task.task_id} must not retry"
            else:
                assert task.retries >= 2, f"{dag_id}.{task.task_id} retries < 2"


def test_schedule_gives_real_data_intervals(elt_dag):
    # Airflow 3's @daily has empty intervals; the ELT DAG must cover [previous tick, tick).
    assert type(elt_dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert elt_dag.catchup is False


def test_one_ingestion_group_per_source_file(elt_dag):
    groups = {gid for gid in elt_dag.task_group.children if gid.startswith("ingest_")}
    assert groups == {f"ingest_{path.stem}" for path in source_files(SOURCES_DIR)}
    for group in groups:
        extract, load = elt_dag.get_task(f"{group}.extract"), elt_dag.get_task(f"{group}.load")
        assert load.upstream_task_ids == {extract.task_id}
        assert load.pool == WAREHOUSE_POOL, "the load step writes DuckDB: it must be in the writer pool"
        assert extract.pool != WAREHOUSE_POOL, "extraction does not touch DuckDB and may run in parallel"


def test_every_dbt_model_has_a_task_with_its_tests_after_it(elt_dag):
    manifest = _dbt_manifest()
    models = [n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    tested = {
        manifest["nodes"][parent]["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "test"
        for parent in node["depends_on"]["nodes"]
        if parent.startswith("model.")
    }
    assert models
    for model in models:
        # Cosmos renders a tested model as a group (run >> test) and an untested one as one task.
        run = elt_dag.get_task(f"dbt.{model}.run" if model in tested else f"dbt.{model}_run")
        assert type(run).__name__ == "MallardDbtRunWatcherOperator"
        if model in tested:
            test = elt_dag.get_task(f"dbt.{model}.test")
            assert run.task_id in test.upstream_task_ids
            assert type(test).__name__ == "MallardDbtTestWatcherOperator"


def test_one_dbt_build_writes_the_warehouse_and_the_model_tasks_watch_it(elt_dag):
    # One `dbt build` in the writer pool does the SQL; the per-model tasks only read its results,
    # so they hold no pool slot and never defer (a deferred sensor can hang `airflow dags test`).
    producer = elt_dag.get_task(PRODUCER_TASK_ID)
    assert producer.pool == WAREHOUSE_POOL
    assert producer.upstream_task_ids == {"ingestion_done"}
    watcher_types = ("MallardDbtRunWatcherOperator", "MallardDbtTestWatcherOperator")
    watchers = [t for t in elt_dag.tasks if type(t).__name__ in watcher_types]
    assert watchers
    for watcher in watchers:
        assert watcher.pool != WAREHOUSE_POOL, watcher.task_id
        assert watcher.producer_task_id == PRODUCER_TASK_ID
        assert (watcher.deferrable, watcher.mode) == (False, "poke"), watcher.task_id


def test_model_tasks_start_when_the_build_is_over_whatever_its_outcome(elt_dag):
    # `airflow dags test` runs ready tasks in any order: a watcher before its build would wait forever.
    producer_and_gate = {PRODUCER_TASK_ID, BUILD_DONE_TASK_ID}
    first_models = [elt_dag.get_task(f"dbt.{model}.run") for model in ("stg_shop__orders", "stg_stores__stores")]
    for task in first_models:
        assert task.upstream_task_ids == producer_and_gate
        # A failed build still reports each node (success or failure); a skipped one lets the
        # gate succeed (each node is re-run by its own task); if neither ran, the model is skipped.
        assert task.trigger_rule == "one_done"
    for task in elt_dag.tasks:
        if task.task_id.startswith("dbt.") and task.task_id not in producer_and_gate:
            assert PRODUCER_TASK_ID in task.get_flat_relative_ids(upstream=True), task.task_id


def test_downstream_models_wait_for_upstream_tests(elt_dag):
    # A failing test stops what depends on it: `orders` runs only after its parents' tests.
    assert "dbt.stg_shop__orders.test" in elt_dag.get_task("dbt.orders.run").upstream_task_ids


def test_ingestion_is_upstream_of_all_dbt_tasks(elt_dag):
    loads = {t.task_id for t in elt_dag.tasks if t.task_id.endswith(".load")}
    for task in elt_dag.tasks:
        if task.task_id.startswith("dbt."):
            assert loads <= task.get_flat_relative_ids(upstream=True), task.task_id


def test_dbt_docs_are_generated_last_in_the_writer_pool(elt_dag):
    # After every model and test task, not after the build alone: a cleared run skips the build and
    # its model and test tasks run their nodes with dbt; a skipped build upstream would skip the docs.
    docs = elt_dag.get_task("dbt_docs")
    assert docs.pool == WAREHOUSE_POOL
    dbt_tasks = {t.task_id for t in elt_dag.tasks if t.task_id.startswith("dbt.")}
    assert dbt_tasks <= docs.get_flat_relative_ids(upstream=True)


def test_dbt_tasks_get_the_warehouse_path_and_interval_at_run_time(elt_dag):
    # The producer runs dbt; a model task runs its own node only when retried or cleared.
    for task in (elt_dag.get_task(PRODUCER_TASK_ID), elt_dag.get_task("dbt.orders.run")):
        # The interval goes in env vars, never `vars` (new vars every run cost dbt a full re-parse).
        assert set(task.env) == {"MALLARD_WAREHOUSE_PATH", "MALLARD_INTERVAL_START", "MALLARD_INTERVAL_END"}
        assert task.env["MALLARD_WAREHOUSE_PATH"] == "{{ mallard_warehouse_path() }}"
        assert all("mallard_interval_bound(" in task.env[f"MALLARD_INTERVAL_{which}"] for which in ("START", "END"))
        assert not task.vars


def test_each_load_task_declares_an_asset_per_raw_table_dbt_reads_and_its_alias(elt_dag):
    """Stable URIs (the absolute warehouse path, as Cosmos names dbt's relations), known at parse time."""
    from airflow.sdk import Asset, AssetAlias

    from include.mallard.assets import table_uri
    from include.mallard.warehouse import configured_warehouse_path

    warehouse = configured_warehouse_path()
    assert warehouse.is_absolute()
    read_by_dbt: dict[str, set[str]] = {}
    for source in _dbt_manifest()["sources"].values():
        read_by_dbt.setdefault(source["schema"], set()).add(source["identifier"])
    loads = [t for t in elt_dag.tasks if t.task_id.endswith(".load")]
    assert {t.task_id for t in loads} == {"ingest_shop.load", "ingest_stores.load", "ingest_marketing.load"}
    for task in loads:
        source = task.task_id.split(".")[0].removeprefix("ingest_")
        tables = sorted(read_by_dbt[f"raw_{source}"])
        expected = [Asset(uri=table_uri(warehouse, f"raw_{source}", table)) for table in tables]
        assert task.outlets == [*expected, AssetAlias(f"raw_{source}")], task.task_id
    shop = elt_dag.get_task("ingest_shop.load").outlets
    shop_tables = [o.name.rsplit("/", 2)[-2:] for o in shop[:-1]]
    assert shop_tables == [["raw_shop", t] for t in ("customers", "orders", "payments")]
    # The DAG's doc names each source's Assets and its alias, where the Assets view shows the tables only a run finds.
    assert all(f"| `raw_{t.task_id.split('.')[0].removeprefix('ingest_')}` |" in elt_dag.doc_md for t in loads)
    assert "| `raw_shop.customers`, `raw_shop.orders`, `raw_shop.payments` | `raw_shop` |" in elt_dag.doc_md


def test_each_dbt_model_task_declares_its_relation_as_an_asset_and_cosmos_emits_none(elt_dag):
    """The Assets view shows a producing task for every model, in the raw tables' namespace."""
    from airflow.sdk import Asset

    from include.mallard.assets import table_uri
    from include.mallard.warehouse import configured_warehouse_path

    warehouse = configured_warehouse_path()
    models = {
        unique_id: node
        for unique_id, node in _dbt_manifest()["nodes"].items()
        if node["resource_type"] in ("model", "seed", "snapshot")
    }
    assert len(models) >= 9
    by_model = {getattr(t, "model_unique_id", None): t for t in elt_dag.tasks if t.task_id.endswith("run")}
    for unique_id, node in models.items():
        task = by_model[unique_id]
        assert task.outlets == [Asset(uri=table_uri(warehouse, node["schema"], node["alias"]))], task.task_id
        assert task.emit_datasets is False, "Cosmos would add the same event again through an alias"
    assert elt_dag.get_task(PRODUCER_TASK_ID)._should_generate_model_uris is False
    producers = {t.task_id for t in elt_dag.tasks if t.outlets}
    assert producers == {t.task_id for t in by_model.values() if t.outlets} | {
        "ingest_shop.load",
        "ingest_stores.load",
        "ingest_marketing.load",
    }


def test_dbt_tasks_name_their_assets_from_the_resolved_warehouse_path(elt_dag):
    from include.mallard.assets import export_warehouse_path_for_cosmos

    dbt_tasks = [t for t in elt_dag.tasks if t.task_id.startswith("dbt.") and hasattr(t, "profile_config")]
    assert elt_dag.get_task(PRODUCER_TASK_ID) in dbt_tasks and len(dbt_tasks) > 10
    for task in dbt_tasks:
        assert export_warehouse_path_for_cosmos in task.on_execute_callback, task.task_id


def test_only_the_sources_the_run_conf_names_load_and_dbt_runs_after_any_of_them(elt_dag):
    # Sources left out by conf `sources` skip; a failed one still stops dbt (upstream_failed).
    assert elt_dag.get_task("ingestion_done").trigger_rule == "none_failed_min_one_success"


def test_a_new_source_file_adds_a_task_group_without_code_changes(tmp_path):
    sources = tmp_path / "sources"
    shutil.copytree(SOURCES_DIR, sources)
    (sources / "web_events.yml").write_text("kind: synthetic\nseed: 3\n")
    dag = build_elt_dag("mallard_elt_extra", sources_dir=sources)
    assert "ingest_web_events" in dag.task_group.children
    assert dag.get_task("ingest_web_events.extract").op_kwargs["source_name"] == "web_events"


def test_disabled_source_has_no_task_group(tmp_path):
    sources = tmp_path / "sources"
    shutil.copytree(SOURCES_DIR, sources)
    text = (sources / "marketing.yml").read_text()
    (sources / "marketing.yml").write_text(text + "enabled: false\n")
    dag = build_elt_dag("mallard_elt_disabled", sources_dir=sources)
    assert "ingest_marketing" not in dag.task_group.children


def _structure(dag) -> dict:
    return {
        task.task_id: {
            "operator": type(task).__name__,
            "pool": task.pool,
            "retries": task.retries,
            "upstream": sorted(task.upstream_task_ids),
        }
        for task in sorted(dag.tasks, key=lambda t: t.task_id)
    }


def test_generated_dag_matches_snapshot(elt_dag):
    """The generated definitions, frozen. Refresh after an intended change: MALLARD_UPDATE_SNAPSHOTS=1."""
    structure = _structure(elt_dag)
    if os.environ.get("MALLARD_UPDATE_SNAPSHOTS") == "1" or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(structure, indent=2, sort_keys=True) + "\n")
    assert structure == json.loads(SNAPSHOT.read_text())


def test_a_source_with_its_own_schedule_gets_its_own_dag(tmp_path):
    from include.mallard.factory import build_source_dags

    sources = tmp_path / "sources"
    shutil.copytree(SOURCES_DIR, sources)
    (sources / "hourly.yml").write_text("kind: synthetic\nschedule: '0 * * * *'\ntags: [fast]\n")
    elt = build_elt_dag("elt_sched", sources_dir=sources)
    assert "ingest_hourly" not in elt.task_group.children
    [hourly] = build_source_dags("elt_sched", sources_dir=sources)
    assert hourly.dag_id == "elt_sched_ingest_hourly"
    assert hourly.timetable.expression == "0 * * * *"
    assert {"fast", "ingest"} <= set(hourly.tags)
    # Its runs publish the snapshot too (readers see its loads without waiting for the ELT DAG).
    assert set(hourly.task_ids) == {"ingest_hourly.extract", "ingest_hourly.load", "publish"}
    assert hourly.get_task("ingest_hourly.load").pool == WAREHOUSE_POOL
    publish = hourly.get_task("publish")
    assert publish.is_teardown and publish.pool == WAREHOUSE_POOL
    assert publish.upstream_task_ids == {"ingest_hourly.extract", "ingest_hourly.load"}


def test_generate_staging_step_sits_between_ingestion_and_dbt(tmp_path):
    dag = build_elt_dag("elt_staging", generate_staging=True)
    staging = dag.get_task("generate_staging")
    # The DAG keeps its shape with the flag: every load joins at ingestion_done, staging comes after it.
    loads = {t.task_id for t in dag.tasks if t.task_id.endswith(".load")}
    assert dag.get_task("ingestion_done").upstream_task_ids == loads
    assert staging.upstream_task_ids == {"ingestion_done"}
    assert "generate_staging" in dag.get_task(PRODUCER_TASK_ID).upstream_task_ids


def test_publish_is_a_teardown_after_every_task_and_every_task_alerts_on_failure(elt_dag):
    """`publish` must run last, after tasks that still retry when a failure already failed dbt_docs."""
    from include.mallard.alerts import MallardWebhookNotifier
    from include.mallard.run_steps import PUBLISH_TASK_ID

    publish = elt_dag.get_task(PUBLISH_TASK_ID)
    assert publish.is_teardown and publish.pool == WAREHOUSE_POOL and not publish.on_failure_fail_dagrun
    assert publish.upstream_task_ids == {t.task_id for t in elt_dag.tasks} - {PUBLISH_TASK_ID}
    assert elt_dag.leaves == [publish]
    for task in elt_dag.tasks:
        callbacks = task.on_failure_callback or []
        assert any(isinstance(c, MallardWebhookNotifier) for c in callbacks), task.task_id
    # The build keeps its run_results.json for publish (Cosmos deletes its project copy after the callbacks).
    from include.mallard import tasks

    assert tasks.keep_dbt_run_results in elt_dag.get_task(PRODUCER_TASK_ID).callback
