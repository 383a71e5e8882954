"""Environments in mallard.yml: which warehouse MALLARD_ENV selects, and the errors a bad section gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from include.mallard.config import ConfigError
from include.mallard.config.project import load_project_settings
from include.mallard.warehouse import active_warehouse

TWO_ENVIRONMENTS = """
start_date: 2024-01-01
environments:
  dev:
    warehouse: duckdb
  prod:
    warehouse: postgres
    connection: warehouse_prod
"""


def _settings(tmp_path: Path, text: str):
    path = tmp_path / "mallard.yml"
    path.write_text(text)
    return load_project_settings(path)


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _settings(tmp_path, text)
    return [str(problem) for problem in caught.value.problems]


def test_without_environments_dev_is_the_embedded_duckdb_file(tmp_path, monkeypatch):
    monkeypatch.delenv("MALLARD_ENV", raising=False)
    warehouse = active_warehouse(_settings(tmp_path, "start_date: 2024-01-01\n"))
    assert (warehouse.environment, warehouse.kind, warehouse.is_embedded) == ("dev", "duckdb", True)
    assert (warehouse.pool, warehouse.dbt_target) == ("mallard_duckdb", "duckdb")
    assert warehouse.connection_id == "mallard_warehouse"


def test_mallard_env_selects_the_server_warehouse_with_its_connection_target_and_pool(tmp_path, monkeypatch):
    settings = _settings(tmp_path, TWO_ENVIRONMENTS)
    monkeypatch.setenv("MALLARD_ENV", "prod")
    prod = active_warehouse(settings)
    assert (prod.environment, prod.kind, prod.is_embedded, prod.connection_id) == (
        "prod",
        "postgres",
        False,
        "warehouse_prod",
    )
    assert (prod.pool, prod.dbt_target) == ("mallard_postgres", "postgres")
    monkeypatch.setenv("MALLARD_ENV", "dev")
    assert active_warehouse(settings).kind == "duckdb"


def test_an_environment_that_is_not_defined_names_the_file_the_field_and_the_choices(tmp_path, monkeypatch):
    settings = _settings(tmp_path, TWO_ENVIRONMENTS)
    monkeypatch.setenv("MALLARD_ENV", "staging")
    with pytest.raises(ConfigError) as caught:
        active_warehouse(settings)
    [problem] = caught.value.problems
    assert problem.file == tmp_path / "mallard.yml" and problem.field == "environments"
    assert "'staging'" in problem.message and "dev, prod" in problem.message
    assert "MALLARD_ENV" in problem.fix


@pytest.mark.parametrize(
    ("section", "field", "words"),
    [
        ("dev: {warehouse: duckdb, pool_slots: 3}", "environments.dev.pool_slots", "Extra inputs"),
        ("prod: {warehouse: snowflake}", "environments.prod.warehouse", "'duckdb' or 'postgres'"),
        ("prod: {warehouse: postgres, connection: 'my conn'}", "environments.prod.connection", "pattern"),
        ("prod: {warehouse: postgres, dbt_target: ''}", "environments.prod.dbt_target", "at least 1"),
        ("prod: {warehouse: postgres, password: hunter2}", "environments.prod.password", "Extra inputs"),
    ],
)
def test_a_bad_environment_names_its_field(tmp_path, section, field, words):
    problems = _problems(tmp_path, f"start_date: 2024-01-01\nenvironments:\n  {section}\n")
    assert any(f"field `{field}`" in p and words in p for p in problems), problems


def test_the_shipped_settings_define_dev_on_duckdb_and_prod_on_postgres(monkeypatch):
    settings = load_project_settings()
    monkeypatch.delenv("MALLARD_ENV", raising=False)
    assert active_warehouse(settings).kind == "duckdb"
    monkeypatch.setenv("MALLARD_ENV", "prod")
    assert (active_warehouse(settings).kind, active_warehouse(settings).connection_id) == (
        "postgres",
        "mallard_warehouse_prod",
    )
