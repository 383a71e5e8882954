"""The factory renders any dbt project in include/dbt: nothing in it names Mallard's models."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from include.mallard.dbt_project import DbtProjectError, build_manifest, record_fingerprint
from include.mallard.factory import build_elt_dag
from include.mallard.paths import PROJECT_ROOT

OTHER_PROJECT = Path(__file__).resolve().parents[1] / "fixtures" / "dbt_other"


def test_another_dbt_project_renders_its_own_models(tmp_path):
    project = tmp_path / "dbt"
    shutil.copytree(OTHER_PROJECT, project)
    assert build_manifest(project) == project / "target" / "manifest.json"
    dag = build_elt_dag("other_elt", dbt_project_dir=project)
    dbt_tasks = {t.task_id for t in dag.tasks if t.task_id.startswith("dbt.")}
    # A model with tests is a group (run, test); one without is a single task.
    assert {"dbt.order_counts.run", "dbt.order_counts.test", "dbt.big_customers_run"} <= dbt_tasks
    assert not any("stg_shop" in task_id or task_id.startswith("dbt.orders.") for task_id in dbt_tasks)
    assert "dbt.order_counts.test" in dag.get_task("dbt.big_customers_run").upstream_task_ids


def test_missing_manifest_says_how_to_build_it(tmp_path):
    project = tmp_path / "dbt"
    shutil.copytree(OTHER_PROJECT, project)
    with pytest.raises(DbtProjectError, match="make manifest"):
        build_elt_dag("no_manifest", dbt_project_dir=project)


def test_stale_manifest_is_reported_not_used(tmp_path):
    project = tmp_path / "dbt"
    shutil.copytree(OTHER_PROJECT, project)
    assert build_manifest(project) == project / "target" / "manifest.json"
    (project / "models" / "new_model.sql").write_text("select 1 as id\n")
    with pytest.raises(DbtProjectError, match="stale"):
        build_elt_dag("stale_manifest", dbt_project_dir=project)
    assert build_manifest(project) == project / "target" / "manifest.json"
    dag = build_elt_dag("fresh_manifest", dbt_project_dir=project)
    assert "dbt.new_model_run" in dag.task_ids


def _run_mallard(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "include.mallard.cli", *args]
    return subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_a_profile_reading_the_warehouse_path_without_a_default_builds_its_manifest(tmp_path):
    # The README's snippet: `mallard manifest` must not fail with "Env var required but not provided".
    project = tmp_path / "dbt"
    shutil.copytree(OTHER_PROJECT, project)
    profile = (project / "profiles.yml").read_text()
    (project / "profiles.yml").write_text(profile.replace(", 'other.duckdb'", ""))
    assert "env_var('MALLARD_WAREHOUSE_PATH') }}" in (project / "profiles.yml").read_text()
    env = {k: v for k, v in os.environ.items() if k != "MALLARD_WAREHOUSE_PATH"}
    env["MALLARD_ROOT"] = str(PROJECT_ROOT)  # env.sh already applied: it must not set the path either
    result = _run_mallard(["manifest", "--dbt-project-dir", str(project)], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / "target" / "manifest.json").is_file()


JAFFLE_PROFILE = """other_analytics:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: jaffle_shop.duckdb
"""


@pytest.mark.parametrize(
    ("profile", "words"),
    [
        (JAFFLE_PROFILE, "has no `duckdb` output (it has: dev)"),
        (JAFFLE_PROFILE.replace("dev", "duckdb"), "would not build the warehouse"),
        (JAFFLE_PROFILE.replace("dev", "duckdb").replace("type: duckdb", "type: postgres"), "Use `type: duckdb`"),
        ("someone_else:\n  outputs: {}\n", "has no profile 'other_analytics'"),
    ],
)
def test_a_profile_mallard_cannot_run_is_an_error_at_validate_and_parse_time(tmp_path, profile, words):
    # Before: validation and the DAG parse passed, then every model task failed and retried at run time.
    project = tmp_path / "dbt"
    shutil.copytree(OTHER_PROJECT, project)
    assert build_manifest(project)
    (project / "profiles.yml").write_text(profile)
    record_fingerprint(project)  # as if `dbt parse` had run with this profile (it does, with target dev)
    with pytest.raises(DbtProjectError, match=re.escape(words)) as caught:
        build_elt_dag("bad_profile", dbt_project_dir=project)
    assert "profiles.yml" in str(caught.value) and "env_var('MALLARD_WAREHOUSE_PATH')" in str(caught.value)
    result = _run_mallard(["validate", "--dbt-project-dir", str(project)], dict(os.environ))
    assert result.returncode == 1 and words in result.stderr, result.stdout + result.stderr


def _project_with_a_local_package(tmp_path: Path) -> tuple[Path, Path]:
    project, package = tmp_path / "dbt", tmp_path / "shared_macros"
    shutil.copytree(OTHER_PROJECT, project)
    (package / "macros").mkdir(parents=True)
    (package / "dbt_project.yml").write_text('name: shared_macros\nversion: "1.0.0"\nconfig-version: 2\n')
    (package / "macros" / "cents.sql").write_text("{% macro cents(column) %}({{ column }} * 100){% endmacro %}\n")
    (project / "packages.yml").write_text("packages:\n  - local: ../shared_macros\n")
    (project / "models" / "order_cents.sql").write_text(
        "select customer_id, {{ cents('order_count') }} as c from {{ ref('order_counts') }}\n"
    )
    return project, package


def test_a_local_package_is_installed_and_its_changes_make_the_manifest_stale(tmp_path):
    project, package = _project_with_a_local_package(tmp_path)
    # `mallard manifest` runs `dbt deps` first: dbt_packages/ is missing.
    assert build_manifest(project) == project / "target" / "manifest.json"
    assert (project / "dbt_packages" / "shared_macros").exists()
    assert "dbt.order_cents_run" in build_elt_dag("with_package", dbt_project_dir=project).task_ids
    # A change inside the package changes what `dbt parse` reads: the manifest is stale.
    (package / "macros" / "cents.sql").write_text("{% macro cents(column) %}({{ column }} * 1000){% endmacro %}\n")
    with pytest.raises(DbtProjectError, match="stale"):
        build_elt_dag("package_changed", dbt_project_dir=project)
    build_manifest(project)
    assert "dbt.order_cents_run" in build_elt_dag("package_rebuilt", dbt_project_dir=project).task_ids


def test_packages_that_need_the_network_fail_clearly_offline(tmp_path):
    # This machine has no network, as a locked-down build or CI may not: dbt deps cannot reach the hub.
    project = tmp_path / "dbt"
    shutil.copytree(OTHER_PROJECT, project)
    (project / "packages.yml").write_text("packages:\n  - package: dbt-labs/dbt_utils\n    version: 1.1.1\n")
    result = _run_mallard(["manifest", "--dbt-project-dir", str(project)], dict(os.environ))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "dbt deps failed" in result.stderr and "network" in result.stderr and "local:" in result.stderr
    assert not (project / "target" / "manifest.json").exists()
