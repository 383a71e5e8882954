"""Run conf `sources` (`mallard run --source`): only the named sources load; bad values are named errors."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from include.mallard.first_hour.run import selection_problems
from include.mallard.paths import SOURCES_DIR
from include.mallard.tasks import selected_sources, skip_unless_selected


def _context(conf: dict | None) -> dict:
    task_ids = [f"ingest_{name}.{step}" for name in ("shop", "marketing") for step in ("extract", "load")]
    tasks = [SimpleNamespace(task_id=task_id) for task_id in [*task_ids, "ingestion_done", "dbt.dbt_producer_watcher"]]
    dag = SimpleNamespace(tasks=tasks, task_dict={task.task_id: task for task in tasks})
    return {"dag_run": SimpleNamespace(conf=conf), "dag": dag}


def test_without_sources_in_the_conf_every_source_loads():
    assert selected_sources(None) is None
    assert selected_sources({"start": "2024-01-01", "end": "2024-01-02"}) is None
    skip_unless_selected("shop", _context({"start": "2024-01-01", "end": "2024-01-02"}))  # no skip


def test_a_source_left_out_of_the_conf_skips_and_a_named_one_runs():
    context = _context({"sources": ["marketing"]})
    skip_unless_selected("marketing", context)
    with pytest.raises(AirflowSkipException, match=r"'shop' is not in this run's conf 'sources' \['marketing'\]"):
        skip_unless_selected("shop", context)


def test_a_name_the_dag_has_no_source_for_fails_the_run_instead_of_skipping_everything():
    with pytest.raises(
        AirflowFailException,
        match=r"names \['shpo'\], which this DAG does not load \(its sources: "
        r"marketing, shop\)",
    ):
        skip_unless_selected("shop", _context({"sources": ["shpo"]}))


@pytest.mark.parametrize("name", ["dbt", "ingestion_done", "publish"])
def test_a_task_that_is_not_a_source_is_not_a_source_name(name):
    with pytest.raises(AirflowFailException, match=rf"names \['{name}'\], which this DAG does not load"):
        skip_unless_selected("shop", _context({"sources": [name]}))


@pytest.mark.parametrize("value", ["shop", [], ["shop", 3], [""], {"shop": True}])
def test_a_sources_value_that_is_not_a_list_of_names_fails_without_retry(value):
    with pytest.raises(AirflowFailException, match=r"run conf field 'sources' = .* is not a list of source names"):
        selected_sources({"sources": value})


def test_source_names_that_cannot_run_in_the_elt_dag_are_explained(tmp_path: Path):
    sources = tmp_path / "sources"
    shutil.copytree(SOURCES_DIR, sources)
    stores = sources / "stores.yml"
    stores.write_text(stores.read_text() + "enabled: false\n")
    marketing = sources / "marketing.yml"
    marketing.write_text(marketing.read_text() + 'schedule: "0 * * * *"\n')

    assert selection_problems(["shop"], sources) == []
    problems = selection_problems(["shpo", "stores", "marketing"], sources)
    assert len(problems) == 3, problems
    assert (
        problems[0].startswith("--source 'shpo': no valid source of that name")
        and "marketing, shop, stores" in problems[0]
    )
    assert "'stores' is disabled (`enabled: false` in stores.yml)" in problems[1]
    assert "'marketing' has a `schedule` of its own" in problems[2]


def test_selecting_a_source_from_a_folder_without_source_files_names_the_folder(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("no source here\n")
    (problem,) = selection_problems(["shop"], tmp_path)
    assert problem.startswith(f"{tmp_path}: field `(folder)`: holds no source file (*.yml or *.yaml)")
    assert "mallard add source" in problem


def test_the_run_summary_counts_raw_tables_but_not_dlts_own_or_a_failed_refreshs_swap_table(tmp_path: Path):
    import duckdb

    from include.mallard.first_hour.run import raw_table_counts
    from include.mallard.warehouse import FULL_REFRESH_SWAP_SUFFIX

    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("create schema raw_shop; create table raw_shop.orders as select range id from range(3)")
        connection.execute("create table raw_shop._dlt_loads (load_id varchar)")
        connection.execute(f'create table raw_shop."orders{FULL_REFRESH_SWAP_SUFFIX}" as select 1 id')
    assert raw_table_counts(warehouse) == [("raw_shop.orders", 3)]
