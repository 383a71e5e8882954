"""Cosmos's operators read their constructor signatures once per process, and come out the same."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from cosmos.operators import local as cosmos_local

from include.mallard.cosmos_signatures import REMEMBERING_INSPECT, remember_cosmos_signatures
from include.mallard.factory import build_elt_dag
from include.mallard.paths import DBT_PROJECT_DIR
from tests.task_description import described


def _render(dag_id: str) -> tuple[dict[str, dict[str, str]], int]:
    """Each task of the demo DAG described; and how many of them are Cosmos's local dbt operators."""
    dag = build_elt_dag(dag_id)
    cosmos_operators = sum(isinstance(task, cosmos_local.DbtLocalBaseOperator) for task in dag.tasks)
    return {task.task_id: described(task) for task in dag.tasks}, cosmos_operators


def _lookups() -> tuple[int, int]:
    info = REMEMBERING_INSPECT.signature.cache_info()
    return info.hits, info.misses


def test_the_dbt_group_renders_the_same_tasks_with_remembered_signatures(monkeypatch: pytest.MonkeyPatch) -> None:
    remember_cosmos_signatures()
    assert cosmos_local.inspect is REMEMBERING_INSPECT
    hits_before, misses_before = _lookups()
    remembered, cosmos_operators = _render("signatures_remembered")
    hits, misses = _lookups()
    # Every Cosmos operator asked; at most the first one read the signature itself.
    assert cosmos_operators > 10
    assert hits + misses - hits_before - misses_before == cosmos_operators
    assert misses - misses_before <= 1

    # The same DAG with Cosmos reading every signature itself, as it does without Mallard.
    monkeypatch.setattr("include.mallard.dbt_group.remember_cosmos_signatures", lambda: False)
    monkeypatch.setattr(cosmos_local, "inspect", inspect)
    lookups_before = _lookups()
    read_each_time, _ = _render("signatures_remembered")
    assert _lookups() == lookups_before

    assert remembered == read_each_time


def test_the_remembering_inspect_is_the_standard_module_for_everything_else() -> None:
    assert REMEMBERING_INSPECT.isclass is inspect.isclass
    assert REMEMBERING_INSPECT.Parameter is inspect.Parameter

    def sample(a: int, b: str = "x", *, c: float = 1.0) -> None:
        return None

    assert REMEMBERING_INSPECT.signature(sample) == inspect.signature(sample)
    assert REMEMBERING_INSPECT.signature(sample) is REMEMBERING_INSPECT.signature(sample)
    assert REMEMBERING_INSPECT.getfullargspec(sample) == inspect.getfullargspec(sample)


def test_a_cosmos_without_inspect_by_that_name_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(cosmos_local, "inspect")
    assert remember_cosmos_signatures() is False
    assert not hasattr(cosmos_local, "inspect")


def test_the_like_for_like_parse_baseline_is_cosmos_alone_with_the_workaround(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bench/parse.py's second baseline: without the workaround, its ratio would count Cosmos's cost as Mallard's.
    from airflow.dag_processing.dagbag import DagBag

    from bench.generate_large_project import write_cosmos_dag

    monkeypatch.setattr(cosmos_local, "inspect", inspect)
    plain = DagBag(dag_folder=str(write_cosmos_dag(tmp_path / "plain", DBT_PROJECT_DIR, "mallard")))
    assert plain.dag_ids == ["cosmos_only"]
    assert cosmos_local.inspect is inspect

    remembered = write_cosmos_dag(tmp_path / "remembered", DBT_PROJECT_DIR, "mallard", remember_signatures=True)
    bag = DagBag(dag_folder=str(remembered))
    assert bag.dag_ids == ["cosmos_remembered"] and not bag.import_errors
    assert cosmos_local.inspect is REMEMBERING_INSPECT
    assert len(bag.dags["cosmos_remembered"].tasks) == len(plain.dags["cosmos_only"].tasks)
