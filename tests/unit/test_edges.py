"""`add_edges` leaves exactly the DAG Airflow's own `set_upstream` leaves, without its per-task DAG hash."""

from __future__ import annotations

import datetime as dt

import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, TaskGroup
from airflow.serialization.serialized_objects import DagSerialization

from include.mallard.edges import add_edges


def _dag(link) -> DAG:
    """Extract tasks in a group, a build, watchers, and a teardown after everything: Mallard's shapes."""
    with DAG("edges", schedule="0 2 * * *", start_date=dt.datetime(2024, 1, 1)) as dag:
        with TaskGroup("ingest"):
            extracts = [EmptyOperator(task_id=f"extract_{n}") for n in range(3)]
        build, gate = EmptyOperator(task_id="build"), EmptyOperator(task_id="build_done")
        watchers = [EmptyOperator(task_id=f"watch_{n}") for n in range(4)]
        extracts >> build >> gate
        link([build, gate], watchers)
        publish = EmptyOperator(task_id="publish").as_teardown()
        link([task for task in dag.tasks if task is not publish], [publish])
    return dag


def _airflow_link(upstream, downstream) -> None:
    for task in downstream:
        task.set_upstream(upstream)


def _edges(dag: DAG) -> dict[str, tuple[list[str], list[str]]]:
    return {t.task_id: (sorted(t.upstream_task_ids), sorted(t.downstream_task_ids)) for t in dag.tasks}


def test_the_same_edges_and_the_same_serialized_dag_as_airflows_own_call():
    ours, airflows = _dag(add_edges), _dag(_airflow_link)
    assert _edges(ours) == _edges(airflows)
    assert _edges(ours)["publish"][0] == sorted(t.task_id for t in ours.tasks if t.task_id != "publish")
    assert DagSerialization.to_dict(ours) == DagSerialization.to_dict(airflows)


def test_tasks_of_two_dags_still_fail_as_airflow_fails():
    with DAG("one", schedule=None, start_date=dt.datetime(2024, 1, 1)):
        first = EmptyOperator(task_id="a")
    with DAG("two", schedule=None, start_date=dt.datetime(2024, 1, 1)):
        second = EmptyOperator(task_id="b")
    with pytest.raises(RuntimeError, match="more than one Dag"):
        add_edges([first], [second])


def test_a_task_without_a_dag_joins_the_dag_of_its_relative():
    with DAG("one", schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:
        first = EmptyOperator(task_id="a")
    orphan = EmptyOperator(task_id="b")
    add_edges([first], [orphan])
    assert orphan.dag is dag and orphan.upstream_task_ids == {"a"}
