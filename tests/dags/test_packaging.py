"""Dockerfile and requirements agree with the Airflow the tests run on (checked without Docker)."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

from include.mallard.paths import PROJECT_ROOT


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            [specifier] = list(requirement.specifier)
            assert specifier.operator == "==", f"{path.name}: pin {line} exactly"
            pins[requirement.name.lower()] = specifier.version
    return pins


def test_runtime_image_matches_the_airflow_under_test():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    match = re.search(r"^FROM astrocrpublic\.azurecr\.io/runtime:(\d+)\.(\d+)-(\d+)\s*$", dockerfile, re.M)
    assert match, "Dockerfile must start FROM a pinned Astro Runtime 3.x image"
    airflow_major, airflow_minor, _ = version("apache-airflow").split(".")
    assert (match[1], match[2]) == (airflow_major, airflow_minor)
    assert _pins(PROJECT_ROOT / "requirements-local.txt")["apache-airflow"] == version("apache-airflow")


def test_requirements_do_not_reinstall_airflow_and_match_the_installed_versions():
    pins = _pins(PROJECT_ROOT / "requirements.txt")
    assert "apache-airflow" not in pins, "the Runtime image ships Airflow; do not reinstall it"
    for name, pinned in pins.items():
        assert version(name) == pinned, f"requirements.txt pins {name}=={pinned}, tests run {version(name)}"


def _top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_everything_the_project_imports_is_installed_by_the_image():
    code = [*(PROJECT_ROOT / "dags").rglob("*.py"), *(PROJECT_ROOT / "include").rglob("*.py")]
    code += list((PROJECT_ROOT / "plugins").rglob("*.py"))
    imported = set().union(*(_top_level_imports(path) for path in code))
    # Import name -> the distribution in requirements.txt (or the Runtime image) that provides it.
    provided_by = {
        "airflow": "apache-airflow",
        "cosmos": "astronomer-cosmos",
        "dlt": "dlt",
        "dbt": "dbt-core",
        "duckdb": "duckdb",
        "pendulum": "pendulum",
        "pydantic": "pydantic",
        "yaml": "pyyaml",
        "include": None,  # the project itself
        "fastapi": "apache-airflow",
        "croniter": "apache-airflow",  # Airflow's cron timetables use it
        "pyarrow": "dlt",  # dlt[parquet]
        "typer": "typer",
        "click": "typer",
        "rich": "rich",
        "sqlalchemy": "apache-airflow",  # Airflow's own ORM
        "starlette": "apache-airflow",  # under FastAPI, which the api-server runs on
        "psycopg2": "psycopg2-binary",  # dlt's postgres destination and the server warehouse
        "celery": "celery",  # the Celery worker's preload (celery_worker.py); the provider needs it too
    }
    third_party = {name for name in imported if name not in sys.stdlib_module_names and name != "__future__"}
    unknown = third_party - provided_by.keys()
    assert not unknown, f"imports with no known provider in requirements.txt: {sorted(unknown)}"
    pins = _pins(PROJECT_ROOT / "requirements.txt")
    for name in third_party:
        distribution = provided_by[name]
        assert distribution in (None, "apache-airflow") or distribution in pins, f"{distribution} is not pinned"


def test_dockerfile_builds_the_manifest_and_sets_the_import_path():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "include.mallard.cli manifest" in dockerfile
    assert "PYTHONPATH=/usr/local/airflow" in dockerfile


def test_the_image_sets_the_same_fixed_environment_as_the_local_stack():
    """A setting of scripts/env.sh that is not a local path must reach the Astro image as well."""
    env_sh = (PROJECT_ROOT / "scripts" / "env.sh").read_text()
    local = dict(re.findall(r"^export (\w+)=([^$\n]+)$", env_sh, re.M))
    # `export NAME="${NAME:-value}"`: a default the shell may override; the image gets the default.
    local |= dict(re.findall(r'^export (\w+)="\$\{\1:-([^$}\n]+)\}"$', env_sh, re.M))
    fixed = {name: value for name, value in local.items() if not name.startswith("AIRFLOW__CORE__")}
    assert "PROVIDERS__ENABLE_AIRFLOW_SECRETS" in fixed and "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME" in fixed
    assert "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL" in fixed
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    missing = [f"{name}={value}" for name, value in fixed.items() if f"{name}={value}" not in dockerfile]
    assert not missing, f"set these in the Dockerfile's ENV too: {missing}"


def test_the_image_serves_the_docs_where_the_docs_task_writes_them():
    # Without MALLARD_DBT_DOCS_DIR the docs task writes under the dbt project, which
    # MALLARD_DBT_PROJECT_DIR may move away from the folder Cosmos's docs view serves.
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    written = re.search(r"MALLARD_DBT_DOCS_DIR=(\S+) ", dockerfile)
    served = re.search(r'"dir": "([^"]+)"', dockerfile)
    assert written and served, "the Dockerfile must set MALLARD_DBT_DOCS_DIR and Cosmos's docs project dir"
    assert written.group(1) == served.group(1)


def test_the_astro_project_files_are_there_as_astro_dev_init_writes_them():
    # The Astro CLI's DAG-integrity test (`astro dev parse`) reads this file: without it, UnboundLocalError.
    exceptions = (PROJECT_ROOT / ".astro" / "dag_integrity_exceptions.txt").read_text()
    assert exceptions.startswith("# Add dag files to exempt from parse test below. ex: dags/<test-file>")
    assert not [line for line in exceptions.splitlines() if line.strip() and not line.startswith("#")]
    assert (PROJECT_ROOT / ".astro" / "config.yaml").is_file()
    assert (PROJECT_ROOT / "tests" / "dags" / "test_dag_example.py").is_file()  # the CLI's example test


def test_the_project_settings_file_reaches_the_image():
    # mallard.yml (start date, schedule) is read at parse time: it must not be left out of the image.
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert (PROJECT_ROOT / "mallard.yml").is_file()
    assert not {"mallard.yml", "*.yml", "/mallard.yml"} & set(ignored)


def test_the_image_installs_every_warehouse_adapter_and_the_celery_executor():
    """What the DAGs need but never import by name: dbt loads its adapter by the profile's type, and
    Airflow its executor by the setting; the image installs requirements.txt (Astro's ONBUILD)."""
    from typing import get_args

    from include.mallard.config.environments import WarehouseKind

    pins = _pins(PROJECT_ROOT / "requirements.txt")
    for kind in get_args(WarehouseKind):
        assert f"dbt-{kind}" in pins, f"requirements.txt does not install dbt's {kind} adapter"
    assert "psycopg2-binary" in pins  # dlt's postgres destination
    assert "apache-airflow-providers-celery" in pins  # AIRFLOW__CORE__EXECUTOR=CeleryExecutor
    from airflow.providers.celery.executors.celery_executor import CeleryExecutor  # the pinned pair imports

    assert CeleryExecutor.__name__ == "CeleryExecutor"
