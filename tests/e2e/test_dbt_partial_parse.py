"""The `dbt build` task keeps dbt's partial parse from one DAG run to the next.

Each run has a new interval. Passed as `--vars`, it made dbt log "Unable to do partial parsing
because config vars, config profile, or config target have changed" and re-parse the whole project
on every run (7 s for the demo, ~30 s at 1,000 models). Passed as env vars read only inside
`is_incremental()` (macros/interval_filter.sql), the second run parses incrementally. Two real
`airflow dags test` runs of the ELT DAG, with their own Airflow home and Cosmos cache.

The first run re-uses the parse of `mallard manifest` (what `make demo` and the Dockerfile run):
that parse passes `--profile` as Cosmos does, since dbt's partial parse state hashes the flag.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from include.mallard.dbt_docs import BUILDS_DIR_NAME, DOCS_DIR_ENV, generate_dbt_docs, keep_build_manifest
from include.mallard.paths import DBT_PROJECT_DIR, PROJECT_ROOT, SOURCES_DIR
from tests.e2e.helpers import airflow_env, query, run_airflow

pytestmark = pytest.mark.e2e
FULL_PARSE = "Unable to do partial parsing"


def test_the_second_run_with_a_new_interval_parses_dbt_incrementally(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    env = airflow_env(tmp_path / "airflow", warehouse, tmp_path / "work")
    env["AIRFLOW__COSMOS__CACHE_DIR"] = str(tmp_path / "cosmos")  # no partial parse from another test
    run_airflow(["db", "migrate"], env, tmp_path / "migrate.log")
    run_airflow(["dags", "test", "mallard_elt", "2024-01-08"], env, tmp_path / "run1.log")
    run_airflow(["dags", "test", "mallard_elt", "2024-01-09"], env, tmp_path / "run2.log")

    second = (tmp_path / "run2.log").read_text()
    assert "Partial parse is enabled" in second  # Cosmos found the first run's saved parse
    assert FULL_PARSE not in second, [line for line in second.splitlines() if FULL_PARSE in line]
    # The interval still reached dbt: the incremental orders mart holds both days, each order once.
    [(raw, distinct_raw)] = query(warehouse, "select count(*), count(distinct id) from raw_shop.orders")
    [(mart, distinct_mart, days)] = query(
        warehouse,
        "select count(*), count(distinct order_id), count(distinct cast(ordered_at as date)) from marts.orders",
    )
    assert raw == distinct_raw == mart == distinct_mart and days == 2


DAG_FILE = """# An Airflow DAG: the demo sources over a copy of the demo dbt project.
from pathlib import Path

from include.mallard.factory import build_elt_dag

dag = build_elt_dag("first_parse", sources_dir=Path({sources!r}), dbt_project_dir=Path({dbt!r}))
"""


@dataclass(frozen=True)
class FirstRun:
    """One `airflow dags test` of the demo over a copy of its dbt project, right after `mallard manifest`."""

    dbt: Path
    warehouse: Path
    docs: Path
    env: dict[str, str]
    log: str


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    tmp_path = tmp_path_factory.mktemp("first_run")
    dbt = tmp_path / "dbt"
    shutil.copytree(DBT_PROJECT_DIR, dbt, ignore=shutil.ignore_patterns("target", "logs"))
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "first_parse.py").write_text(DAG_FILE.format(sources=str(SOURCES_DIR), dbt=str(dbt)))
    warehouse = tmp_path / "warehouse.duckdb"
    env = airflow_env(tmp_path / "airflow", warehouse, tmp_path / "work")
    env |= {
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__COSMOS__CACHE_DIR": str(tmp_path / "cosmos"),
        DOCS_DIR_ENV: str(tmp_path / "docs"),
    }
    command = [sys.executable, "-m", "include.mallard.cli", "manifest", "--dbt-project-dir", str(dbt)]
    subprocess.run(command, cwd=PROJECT_ROOT, env=env, check=True, capture_output=True)
    run_airflow(["db", "migrate"], env, tmp_path / "migrate.log")
    run_airflow(["dags", "test", "first_parse", "2024-01-08"], env, tmp_path / "run1.log")
    return FirstRun(dbt, warehouse, tmp_path / "docs", env, (tmp_path / "run1.log").read_text())


def test_the_first_run_after_mallard_manifest_reuses_its_parse(first_run: FirstRun):
    """Before: `mallard manifest` parsed without `--profile`, so the first run re-parsed everything."""
    log = first_run.log
    assert f"latest partial parse file is {first_run.dbt / 'target' / 'partial_parse.msgpack'}" in log
    assert FULL_PARSE not in log, [line for line in log.splitlines() if FULL_PARSE in line]
    [(raw,)] = query(first_run.warehouse, "select count(*) from raw_shop.orders")
    assert raw > 0 and query(first_run.warehouse, "select count(*) from marts.orders") == [(raw,)]


def _absolute_paths(value: object) -> set[str]:
    if isinstance(value, str):
        return {value} if value.startswith("/") else set()
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return set().union(*(_absolute_paths(item) for item in items))


def _catalog_columns(catalog: dict) -> dict[str, list[tuple[str, str]]]:
    return {
        unique_id: sorted((name, column["type"]) for name, column in entry["columns"].items())
        for section in ("nodes", "sources")
        for unique_id, entry in catalog[section].items()
    }


def test_the_build_publishes_its_docs_as_a_full_docs_generate_would(first_run: FirstRun, monkeypatch):
    """The `dbt build` task ran `dbt docs generate --no-compile` in its own process and published the
    manifest its build wrote; the `dbt_docs` task then had nothing to do. Every node's compiled SQL and
    the catalog are those a full `dbt docs generate` gives, with no path of the build's temporary
    project copy left in them. The docs task's own path when the build could not publish (`--no-compile`
    with the build's kept manifest) gives the same docs."""
    assert "dbt docs published from this build" in first_run.log
    assert "dbt docs were published by this run's dbt build" in first_run.log
    assert not list((first_run.docs / BUILDS_DIR_NAME).iterdir())  # taken by the run's docs task
    published = json.loads((first_run.docs / "manifest.json").read_text())
    published_catalog = _catalog_columns(json.loads((first_run.docs / "catalog.json").read_text()))
    assert (first_run.docs / "index.html").stat().st_size > 1000

    for name in ("MALLARD_WAREHOUSE_PATH", "MALLARD_WORK_DIR", "AIRFLOW__COSMOS__CACHE_DIR"):
        monkeypatch.setenv(name, first_run.env[name])
    # The same task's callable without a build of its run: it compiles the project itself.
    full = first_run.docs.parent / "docs_full"
    monkeypatch.setenv(DOCS_DIR_ENV, str(full))
    generate_dbt_docs(str(first_run.dbt), dag_run=SimpleNamespace(dag_id="first_parse", run_id="no build kept"))
    compiled = json.loads((full / "manifest.json").read_text())

    assert published["metadata"]["invocation_id"] != compiled["metadata"]["invocation_id"]
    assert set(published["nodes"]) == set(compiled["nodes"]) and len(published["nodes"]) > 20
    for unique_id, node in compiled["nodes"].items():
        assert node["compiled"] and node["compiled_code"], unique_id
        assert published["nodes"][unique_id]["compiled_code"] == node["compiled_code"], unique_id
    assert published_catalog == _catalog_columns(json.loads((full / "catalog.json").read_text()))
    assert len(published_catalog) > 10
    # Paths name the project, as the full run's do, never Cosmos's deleted temporary copy of it.
    for unique_id, node in compiled["nodes"].items():
        for field in ("original_file_path", "path", "patch_path"):
            assert published["nodes"][unique_id][field] == node[field], (unique_id, field)
    only_in_published = _absolute_paths(published) - _absolute_paths(compiled)
    assert all(path.startswith(f"{first_run.dbt}/") for path in only_in_published), only_in_published

    # The docs task with a kept build it must finish itself: the catalog only, the build's manifest.
    fallback = first_run.docs.parent / "docs_fallback"
    monkeypatch.setenv(DOCS_DIR_ENV, str(fallback))
    build_copy = first_run.docs.parent / "build_copy"
    (build_copy / "target").mkdir(parents=True)
    (build_copy / "target" / "manifest.json").write_text(json.dumps(published))
    kept = keep_build_manifest(build_copy, "first_parse", "unpublished run")
    generate_dbt_docs(str(first_run.dbt), dag_run=SimpleNamespace(dag_id="first_parse", run_id="unpublished run"))
    fallback_manifest = json.loads((fallback / "manifest.json").read_text())
    # The build's manifest (its invocation), not one compiled by the docs task; the kept copy is taken.
    assert fallback_manifest["metadata"]["invocation_id"] == published["metadata"]["invocation_id"]
    assert fallback_manifest["nodes"] == published["nodes"] and not kept.exists()
    assert _catalog_columns(json.loads((fallback / "catalog.json").read_text())) == published_catalog
