"""Source freshness as tasks: rendered when the dbt project has a freshness rule, run by the build.

The demo has no freshness rule, so its DAG has no source task and its build runs no
`dbt source freshness`. A project with a rule on `marketing.spend` gets a source task between the
build and `stg_marketing__spend`; the callback that decides which models to leave out stops on an
error only (a warning builds everything), and leaves out everything downstream of the source.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from include.mallard.dbt_group import BUILD_TASK_ID, skip_models_of_stale_sources
from include.mallard.dbt_project import FRESHNESS_SOURCES_RELATIVE_PATH, sources_with_freshness
from include.mallard.factory import build_elt_dag
from include.mallard.paths import DBT_PROJECT_DIR
from tests.e2e.helpers import demo_project_with_spend_freshness

SPEND = "source.mallard.marketing.spend"


@pytest.fixture(scope="module")
def fresh_project(tmp_path_factory) -> Path:
    return demo_project_with_spend_freshness(tmp_path_factory.mktemp("freshness") / "dbt")


def test_the_demo_has_no_freshness_rule_so_no_source_task_and_no_freshness_run():
    assert sources_with_freshness(DBT_PROJECT_DIR) == []
    dag = build_elt_dag("demo_freshness")
    assert not [t for t in dag.tasks if t.task_id.endswith("_source")]
    assert dag.get_task(BUILD_TASK_ID)._check_source_freshness is False


def test_a_freshness_rule_becomes_a_task_between_the_build_and_the_models_reading_it(fresh_project):
    assert sources_with_freshness(fresh_project) == [SPEND]
    # Recorded when the manifest was built; without the record, read from the manifest itself.
    (fresh_project / FRESHNESS_SOURCES_RELATIVE_PATH).rename(fresh_project / "recorded.json")
    assert sources_with_freshness(fresh_project) == [SPEND]
    (fresh_project / "recorded.json").rename(fresh_project / FRESHNESS_SOURCES_RELATIVE_PATH)
    dag = build_elt_dag("freshness_elt", dbt_project_dir=fresh_project)
    [source_task] = [t for t in dag.tasks if t.task_id.endswith("_source")]
    assert source_task.task_id == "dbt.marketing_spend_source"
    assert BUILD_TASK_ID in source_task.upstream_task_ids
    # Then the model reading it (and `publish`, downstream of every task).
    assert source_task.downstream_task_ids == {"dbt.stg_marketing__spend.run", "publish"}
    # A stale source stays stale on a retry minutes later: fail at once.
    assert source_task.retries == 0
    producer = dag.get_task(BUILD_TASK_ID)
    assert producer._check_source_freshness is True
    assert producer._freshness_callback is skip_models_of_stale_sources


@pytest.fixture(scope="module")
def graph(fresh_project) -> dict:
    """The dbt graph Cosmos read from the project's manifest, as the producer hands it to the callback."""
    dag = build_elt_dag("freshness_graph", dbt_project_dir=fresh_project)
    return dag.task_group.children["dbt"].dbt_graph.nodes


def _skipped(graph: dict, status: str) -> set[str]:
    sources_json = {"results": [{"unique_id": SPEND, "status": status}]}
    return {uid for uid, state in skip_models_of_stale_sources({}, None, None, graph, sources_json)}


@pytest.mark.parametrize("status", ["error", "runtime error"])
def test_a_stale_source_skips_what_reads_only_it(graph, status):
    # daily_activity also reads the shop's orders, but dbt would rebuild it from the stale spend.
    assert _skipped(graph, status) == {"model.mallard.stg_marketing__spend", "model.mallard.daily_activity"}


@pytest.mark.parametrize("status", ["warn", "pass"])
def test_a_warning_or_a_pass_skips_nothing(graph, status):
    assert _skipped(graph, status) == set()
