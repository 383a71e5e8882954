"""Generated staging end to end: real dlt loads into DuckDB, generation, `dbt build`, the DAG.

- a `files` source (CSV, one incremental table, one with a compound key) and a nested dlt load
  (child and grandchild tables) get sources, staging models and tests that build and pass;
- `dbt source freshness` runs on the generated `loaded_at_field`;
- after a column is added to the data and reloaded, regeneration updates only generated files and
  leaves a hand-edited model alone;
- the DAG factory renders the generated models as tasks, their tests downstream, and the freshness
  rule of the incremental table as a task before its model.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from types import SimpleNamespace

import dlt
import pytest
from dbt.adapters.duckdb.connections import DuckDBConnectionManager
from dbt.cli.main import dbtRunner

from include.mallard import ingest
from include.mallard.config import get_source
from include.mallard.dbt_group import BUILD_TASK_ID
from include.mallard.interval import Interval
from include.mallard.paths import DBT_PROJECT_DIR
from include.mallard.staging import generate_and_rebuild
from include.mallard.tasks import generate_staging_task
from tests.e2e.helpers import query

pytestmark = pytest.mark.e2e
INTERVAL = Interval(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 2, 1, tzinfo=dt.UTC))
SELECT = ["--select", "path:models/staging/inventory", "path:models/staging/nest"]

INVENTORY_YML = """\
kind: files
description: Stock levels and movements from CSV exports.
path: {path}
tables:
  - name: stock_levels
    glob: "stock_*.csv"
    primary_key: [sku, warehouse_id]
  - name: movements
    glob: "movements_*.csv"
    primary_key: movement_id
    cursor: moved_at
"""
STOCK_CSV = "sku,warehouse_id,qty,counted_on\nA-1,1,10,2024-01-05\nA-1,2,0,2024-01-05\nB-2,1,7,2024-01-06\n"
MOVEMENTS_CSV = (
    "movement_id,sku,quantity,moved_at\n"
    "1,A-1,5,2024-01-03T10:00:00Z\n"
    "2,B-2,-2,2024-01-04T11:30:00Z\n"
    "3,A-1,1,2024-01-05T09:15:00Z\n"
)
NESTED_ORDERS = [
    {"id": 1, "customer": {"name": "Ada", "vip": True}, "items": [{"sku": "A-1", "tags": ["new", "sale"]}]},
    {"id": 2, "customer": {"name": "Bob", "vip": False}, "items": [{"sku": "B-2", "tags": []}, {"sku": "A-1"}]},
]


def _load_inventory(sources_dir: Path, run_id: str) -> None:
    source = get_source(sources_dir, "inventory")
    work_dir = ingest.run_work_dir("staging_e2e", run_id, source.name)
    ingest.extract(source, INTERVAL, work_dir)
    ingest.load(source, work_dir)


def _load_nested(root: Path, warehouse: Path) -> None:
    pipeline = dlt.pipeline(
        pipeline_name="nest",
        pipelines_dir=str(root / "pipelines"),
        destination=dlt.destinations.duckdb(str(warehouse)),
        dataset_name="raw_nest",
    )
    pipeline.run(NESTED_ORDERS, table_name="orders", primary_key="id", write_disposition="merge").raise_on_failed_jobs()


def _dbt(project: Path, *args: str):
    result = dbtRunner().invoke([*args, "--project-dir", str(project), "--profiles-dir", str(project)])
    # dbt-duckdb leaves its DuckDB instance open after an in-process run, and DuckDB refuses a
    # read-only open of that file in the same process. Close it, as the end of a task process would.
    # (Not by scanning gc.get_objects(): isinstance() on Airflow's lazy module proxies imports them.)
    environment = DuckDBConnectionManager._ENV
    if environment is not None:
        environment.close()
        DuckDBConnectionManager.close_all_connections()
    return result


def _build(project: Path) -> dict[str, str]:
    """`dbt build` of the generated models: status by node id; fails with the failures."""
    result = _dbt(project, "build", *SELECT)
    statuses = {r.node.unique_id: str(r.status) for r in result.result.results}
    assert result.success, f"dbt build failed: {result.exception} {statuses}"
    return statuses


def _view_columns(warehouse: Path) -> dict[str, list[str]]:
    rows = query(
        warehouse,
        "select table_name, column_name from information_schema.columns "
        "where table_schema = 'staging' order by table_name, ordinal_position",
    )
    columns: dict[str, list[str]] = {}
    for table, column in rows:
        columns.setdefault(table, []).append(column)
    return columns


def _files(project: Path) -> dict[str, str]:
    staging = project / "models" / "staging"
    return {
        str(p.relative_to(staging)): p.read_text()
        for source in ("inventory", "nest")
        for p in (staging / source).iterdir()
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Load, generate, build; then add a column, edit a model by hand, reload, regenerate, build."""
    root = tmp_path_factory.mktemp("staging")
    warehouse, data, sources_dir, project = root / "warehouse.duckdb", root / "data", root / "sources", root / "dbt"
    data.mkdir()
    sources_dir.mkdir()
    (data / "stock_2024_01.csv").write_text(STOCK_CSV)
    (data / "movements_2024_01.csv").write_text(MOVEMENTS_CSV)
    (sources_dir / "inventory.yml").write_text(INVENTORY_YML.format(path=data))
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))

    with pytest.MonkeyPatch.context() as env:
        env.setenv("MALLARD_WAREHOUSE_PATH", str(warehouse))
        env.setenv("MALLARD_WORK_DIR", str(root / "work"))
        _load_inventory(sources_dir, "first")
        _load_nested(root, warehouse)

        first = generate_and_rebuild(["inventory", "nest"], dbt_project_dir=project, sources_dir=sources_dir)
        first_files = _files(project)
        first_build = _build(project)
        first_views = _view_columns(warehouse)
        freshness = _dbt(project, "source", "freshness", "--select", "source:inventory")

        # A user takes over one model by editing it; the data grows a column in both tables.
        edited_file = project / "models" / "staging" / "inventory" / "stg_inventory__stock_levels.sql"
        edited = edited_file.read_text().replace("select * from renamed", "select *, qty > 0 as in_stock from renamed")
        edited_file.write_text(edited)
        (data / "stock_2024_01.csv").write_text(
            "\n".join(f"{line},{'bin' if i == 0 else 'X' + str(i)}" for i, line in enumerate(STOCK_CSV.splitlines()))
            + "\n"
        )
        (data / "movements_2024_01.csv").write_text(
            "\n".join(
                f"{line},{'note' if i == 0 else 'n' + str(i)}" for i, line in enumerate(MOVEMENTS_CSV.splitlines())
            )
            + "\n4,B-2,3,2024-01-06T08:00:00Z,restock\n"
        )
        _load_inventory(sources_dir, "second")
        second = generate_and_rebuild(None, dbt_project_dir=project, sources_dir=sources_dir)  # --all
        second_files = _files(project)
        second_build = _build(project)
        second_views = _view_columns(warehouse)

    return SimpleNamespace(
        root=root,
        warehouse=warehouse,
        project=project,
        sources_dir=sources_dir,
        first=first,
        first_files=first_files,
        first_build=first_build,
        first_views=first_views,
        freshness=freshness,
        edited=edited,
        second={r.source: r for r in second},
        second_files=second_files,
        second_build=second_build,
        second_views=second_views,
    )


def test_generation_writes_sources_models_and_yaml_for_every_loaded_table(run):
    inventory, nest = run.first
    assert {p.name for p in inventory.created} == {
        "_inventory__sources.yml",
        *(f"stg_inventory__{t}.{ext}" for t in ("stock_levels", "movements") for ext in ("sql", "yml")),
    }
    assert {p.name for p in nest.created} == {
        "_nest__sources.yml",
        *(f"stg_nest__{t}.{ext}" for t in ("orders", "orders__items", "orders__items__tags") for ext in ("sql", "yml")),
    }
    sources = run.first_files["inventory/_inventory__sources.yml"]
    assert "loaded_at_field: moved_at" in sources  # dlt marked the cursor as incremental
    assert "Stock levels and movements from CSV exports." in sources


def test_staging_views_exist_with_the_loaded_columns(run):
    views = run.first_views
    assert views["stg_inventory__stock_levels"] == ["sku", "warehouse_id", "qty", "counted_on"]
    assert views["stg_inventory__movements"] == ["movement_id", "sku", "quantity", "moved_at"]
    # Nested data: the parent keeps _dlt_id for its children, the children keep their join keys.
    assert views["stg_nest__orders"] == ["id", "customer__name", "customer__vip", "_dlt_load_id", "_dlt_id"]
    join_keys = ["_dlt_root_id", "_dlt_parent_id", "_dlt_list_idx", "_dlt_id"]
    assert views["stg_nest__orders__items"] == ["sku", *join_keys]
    assert views["stg_nest__orders__items__tags"] == ["value", *join_keys]
    items = query(
        run.warehouse,
        "select o.id, i.sku from staging.stg_nest__orders__items i "
        "join staging.stg_nest__orders o on i._dlt_parent_id = o._dlt_id order by o.id, i._dlt_list_idx",
    )
    assert items == [(1, "A-1"), (2, "B-2"), (2, "A-1")]
    assert query(run.warehouse, "select typeof(moved_at) from staging.stg_inventory__movements limit 1") == [
        ("TIMESTAMP WITH TIME ZONE",)
    ]


def test_generated_tests_ran_and_passed(run):
    tests = {node: status for node, status in run.first_build.items() if node.startswith("test.")}
    models = {node: status for node, status in run.first_build.items() if node.startswith("model.")}
    assert len(models) == 5 and set(models.values()) == {"success"}
    assert set(tests.values()) == {"pass"}
    names = {node.split(".")[2] for node in tests}
    assert {
        "unique_stg_inventory__movements_movement_id",
        "not_null_stg_inventory__movements_movement_id",
        "unique_stg_inventory__stock_levels_row_sku_warehouse_id_",
        "unique_stg_nest__orders_id",
        "unique_stg_nest__orders__dlt_id",
        "relationships_stg_nest__orders__items__dlt_parent_id___dlt_id__ref_stg_nest__orders_",
        "relationships_stg_nest__orders__items__tags__dlt_parent_id___dlt_id__ref_stg_nest__orders__items_",
    } <= names


def test_source_freshness_runs_on_the_generated_loaded_at_field(run):
    (result,) = run.freshness.result.results
    assert result.node.unique_id == "source.mallard.inventory.movements"
    # The rows are from 2024: stale, but measured (not a runtime error of the generated config).
    assert str(result.status) in ("pass", "warn", "error")
    assert result.max_loaded_at == dt.datetime(2024, 1, 5, 9, 15, tzinfo=dt.UTC)


def test_regeneration_updates_only_generated_files_and_keeps_the_hand_edit(run):
    inventory, nest = run.second["inventory"], run.second["nest"]
    changed = {name for name in run.second_files if run.second_files[name] != run.first_files.get(name)}
    assert changed == {
        "inventory/_inventory__sources.yml",
        "inventory/stg_inventory__movements.sql",
        "inventory/stg_inventory__movements.yml",
        "inventory/stg_inventory__stock_levels.sql",  # the user's edit, before regeneration
    }
    assert {p.name for p in inventory.updated} == {
        "_inventory__sources.yml",
        "stg_inventory__movements.sql",
        "stg_inventory__movements.yml",
    }
    assert run.second_files["inventory/stg_inventory__stock_levels.sql"] == run.edited
    assert inventory.skipped_models == ["stg_inventory__stock_levels"]
    assert any(p.name == "stg_inventory__stock_levels.sql" for p in inventory.user_owned)
    assert not nest.changed and len(nest.unchanged) == 7
    # The new columns: in the generated model and the sources; not in the user's model.
    assert run.second_views["stg_inventory__movements"] == ["movement_id", "sku", "note", "quantity", "moved_at"]
    assert run.second_views["stg_inventory__stock_levels"] == ["sku", "warehouse_id", "qty", "counted_on", "in_stock"]
    assert "- name: bin" in run.second_files["inventory/_inventory__sources.yml"]
    assert set(run.second_build.values()) <= {"success", "pass"}
    assert query(run.warehouse, "select count(*) from staging.stg_inventory__movements where note is not null") == [
        (4,)
    ]


def test_the_dag_renders_generated_models_with_their_tests_downstream(run):
    from include.mallard.factory import build_elt_dag

    dag = build_elt_dag("staging_e2e", sources_dir=run.sources_dir, dbt_project_dir=run.project)
    for model in (
        "stg_inventory__movements",
        "stg_inventory__stock_levels",
        "stg_nest__orders",
        "stg_nest__orders__items",
        "stg_nest__orders__items__tags",
    ):
        assert f"dbt.{model}.run" in dag.get_task(f"dbt.{model}.test").upstream_task_ids
    assert "ingestion_done" in dag.get_task(BUILD_TASK_ID).upstream_task_ids
    # The incremental table's generated freshness rule is a task between the build and its model.
    assert BUILD_TASK_ID in dag.get_task("dbt.inventory_movements_source").upstream_task_ids
    assert "dbt.inventory_movements_source" in dag.get_task("dbt.stg_inventory__movements.run").upstream_task_ids
    assert BUILD_TASK_ID in dag.get_task("dbt.stg_inventory__stock_levels.run").upstream_task_ids
    assert "ingest_inventory.load" in dag.get_task("ingestion_done").upstream_task_ids
    # The parent-child relationship test (two models) is watched by the test task of each model.
    tests_per_model = dag.get_task(BUILD_TASK_ID).tests_per_model
    for model in ("stg_nest__orders", "stg_nest__orders__items"):
        [watched] = [tests for unique_id, tests in tests_per_model.items() if unique_id.endswith(f".{model}")]
        assert [t for t in watched if ".relationships_stg_nest__orders__items__dlt" in t], (model, watched)


def test_the_dag_task_callable_skips_unloaded_sources_and_rewrites_nothing(run, monkeypatch):
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(run.warehouse))
    before = _files(run.project)
    results = generate_staging_task(["inventory", "nest", "not_loaded_yet"], str(run.sources_dir), str(run.project))
    assert [r["source"] for r in results] == ["inventory", "nest"]
    assert not any(r["created"] or r["updated"] or r["removed"] for r in results)
    assert results[0]["skipped_models"] == ["stg_inventory__stock_levels"]
    assert _files(run.project) == before
