"""A broken source file stops only its own source: the DAG keeps every valid source, and Airflow lists the problem.

Parsed by Airflow's own DagBag over a DAG folder like the project's: an ELT DAG file and the file
that raises the invalid sources' problems as an import error.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from include.mallard.factory import AIRFLOW_START_DATE, build_elt_dag, build_source_dags
from include.mallard.paths import PROJECT_ROOT, SOURCES_DIR

BROKEN_GLOB = 'kind: files\npath: include/data/stores\ntables:\n  - name: stock\n    glob: "../x.csv"\n'
DAG_FILES = {
    "elt.py": (
        "# An Airflow DAG file (the DAG processor's safe mode wants both words).\n"
        "from pathlib import Path\nfrom include.mallard.factory import build_dags\n"
        "globals().update(build_dags(sources_dir=Path({sources!r})))\n"
    ),
    # What dags/mallard_source_errors.py does, for this folder of sources.
    "source_errors.py": (
        "# Airflow DAG folder: the invalid source files' problems as an import error.\n"
        "from pathlib import Path\nfrom include.mallard.config.project import raise_for_invalid_project_files\n"
        "raise_for_invalid_project_files(Path({sources!r}))\n"
    ),
}


def _project(tmp_path: Path, extra: dict[str, str]) -> tuple[Path, DagBag]:
    sources = tmp_path / "sources"
    shutil.copytree(SOURCES_DIR, sources)
    for name, text in extra.items():
        (sources / name).write_text(text)
    dags = tmp_path / "dags"
    dags.mkdir()
    for name, text in DAG_FILES.items():
        (dags / name).write_text(text.format(sources=str(sources)))
    return sources, DagBag(str(dags))


def test_an_invalid_source_file_stops_only_its_own_source(tmp_path):
    sources, bag = _project(tmp_path, {"inventory.yml": BROKEN_GLOB})
    # The DAG is there, with every valid source's group and their own files in the tasks...
    dag = bag.dags["mallard_elt"]
    for name in ("shop", "stores", "marketing"):
        for step in ("extract", "load"):
            assert dag.get_task(f"ingest_{name}.{step}").op_kwargs["source_file"] == str(sources / f"{name}.yml")
    # ...and the invalid file as a task of its own that fails, upstream of dbt.
    broken = dag.get_task("ingest_inventory")
    assert broken.op_kwargs["source_file"] == str(sources / "inventory.yml")
    assert "ingest_inventory" in dag.get_task("ingestion_done").upstream_task_ids
    assert "tables[0].glob" in broken.doc_md and "tables[0].glob" in dag.doc_md
    # Airflow's import errors name the file, the field and the fix: from the other file only, as an
    # import error on the DAG's own file would stop Airflow from scheduling the DAG.
    [(error_file, message)] = bag.import_errors.items()
    assert error_file.endswith("source_errors.py")
    assert "inventory.yml: field `tables[0].glob`" in message and "Fix:" in message
    assert "shop.yml" not in message


def test_every_invalid_file_gets_its_own_failing_task(tmp_path):
    _, bag = _project(
        tmp_path,
        {
            "shop2.yml": "kind: synthetic\nname: shop\n",  # valid alone, but the name is taken
            "shop.yaml": "kind: synthetic\nseed: [\n",  # not YAML, next to a valid shop.yml
            "my events.yml": "kind: nope\n",  # a name that is no task id
        },
    )
    dag = bag.dags["mallard_elt"]
    for task_id in ("ingest_shop2", "ingest_shop_yaml", "ingest_my_events"):
        assert dag.get_task(task_id).python_callable.__name__ == "invalid_source_task"
    assert {"ingest_shop.extract", "ingest_stores.load"} <= set(dag.task_ids)
    [message] = bag.import_errors.values()
    assert "already used by shop.yml" in message and "shop.yaml" in message and "my events.yml" in message


def test_airflow_starts_the_dag_far_back_and_the_tasks_enforce_the_project_start_date():
    # For a logical date before a DAG's start_date Airflow creates no task instance: a run there
    # would "succeed" having loaded nothing. The project's start date is checked by the tasks.
    dag = build_elt_dag("elt_dates")
    assert dag.start_date == AIRFLOW_START_DATE
    extract = dag.get_task("ingest_stores.extract")
    assert extract.op_kwargs["earliest"] == "2013-01-01"
    assert "`start_date` in mallard.yml" in extract.op_kwargs["earliest_setting"]
    assert extract.op_kwargs["source_start"] == "2013-01-01"
    assert dag.get_task("ingest_shop.extract").op_kwargs["source_start"] == "2024-01-01"
    assert "No run loads before **2013-01-01**" in dag.doc_md
    later = build_elt_dag("elt_later", start_date=dt.date(2020, 1, 1), cron="0 6 * * *")
    assert later.get_task("ingest_stores.extract").op_kwargs["earliest"] == "2020-01-01"
    assert later.timetable.expression == "0 6 * * *"


def test_a_source_dag_of_its_own_starts_at_the_sources_start_date(tmp_path):
    from include.mallard.config.project import load_project_settings

    sources = tmp_path / "sources"
    shutil.copytree(SOURCES_DIR, sources)
    (sources / "hourly.yml").write_text("kind: synthetic\nschedule: '0 * * * *'\n")
    settings_file = tmp_path / "mallard.yml"
    settings_file.write_text("start_date: 2013-01-01\nsources:\n  hourly: {start_date: 2020-06-01}\n")
    [dag] = build_source_dags("elt", sources_dir=sources, settings=load_project_settings(settings_file))
    extract = dag.get_task("ingest_hourly.extract")
    assert (extract.op_kwargs["earliest"], extract.op_kwargs["source_start"]) == ("2020-06-01", "2020-06-01")
    assert "sources.hourly.start_date" in extract.op_kwargs["earliest_setting"]


def test_the_project_dag_folder_has_the_source_errors_file():
    # It must mention both words, or Airflow's safe mode skips it silently.
    text = (PROJECT_ROOT / "dags" / "mallard_source_errors.py").read_text()
    assert "airflow" in text.lower() and "dag" in text.lower()
    assert "raise_for_invalid_project_files()" in text


@pytest.mark.parametrize("name", ["mallard_elt.py", "mallard_source_errors.py"])
def test_the_dag_files_parse_in_a_fresh_dagbag_without_errors(name):
    bag = DagBag(str(PROJECT_ROOT / "dags" / name))
    assert bag.import_errors == {}
