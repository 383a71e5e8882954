"""The `dbt build` task's watchers read their node's one report, and skip the API reads Cosmos would not use."""

from __future__ import annotations

import pytest

from include.mallard.dbt_watchers import NodeReportReader, read_node_reports

MODEL = "model.demo.stg_shop__orders"
MODEL_KEY = MODEL.replace(".", "__")


class PullingTaskInstance:
    """The watcher's task instance: answers pulls from what the producer left, and counts them."""

    def __init__(self, xcoms: dict[str, object]) -> None:
        self.xcoms = xcoms
        self.pulls: list[str] = []
        self.try_number = 1

    def xcom_pull(self, task_ids=None, key="return_value", **kwargs):
        self.pulls.append(key)
        return self.xcoms.get(key)


def test_a_watcher_reads_its_nodes_four_keys_from_one_pull_of_the_report():
    report = {"status": {"status": "success"}, "compiled_sql": "select 1", "dbt_event": {"msg": "OK"}}
    ti = PullingTaskInstance({f"{MODEL_KEY}_report": report, "dbt_startup_events": []})
    reader = NodeReportReader(ti, "dbt.dbt_producer_watcher", MODEL_KEY)
    assert reader.xcom_pull("dbt.dbt_producer_watcher", key=f"{MODEL_KEY}_status") == {"status": "success"}
    assert reader.xcom_pull("dbt.dbt_producer_watcher", key=f"{MODEL_KEY}_compiled_sql") == "select 1"
    assert reader.xcom_pull("dbt.dbt_producer_watcher", key=f"{MODEL_KEY}_dbt_event") == {"msg": "OK"}
    assert reader.xcom_pull("dbt.dbt_producer_watcher", key=f"{MODEL_KEY}_tests_status") is None
    assert reader.xcom_pull(task_ids="dbt.dbt_producer_watcher", key="dbt_startup_events") == []
    assert ti.pulls == [f"{MODEL_KEY}_report", "dbt_startup_events"]
    assert reader.try_number == 1


def test_without_a_report_a_watcher_pulls_cosmos_keys():
    """A node the build never reported in one key (a freshness skip, Cosmos's own producer)."""
    ti = PullingTaskInstance({f"{MODEL_KEY}_status": {"status": "skipped"}})
    reader = NodeReportReader(ti, "dbt.dbt_producer_watcher", MODEL_KEY)
    assert reader.xcom_pull("dbt.dbt_producer_watcher", key=f"{MODEL_KEY}_status") == {"status": "skipped"}
    assert reader.xcom_pull("dbt.other_task", key=f"{MODEL_KEY}_status") == {"status": "skipped"}
    assert ti.pulls == [f"{MODEL_KEY}_report", f"{MODEL_KEY}_status", f"{MODEL_KEY}_status"]


def test_read_node_reports_refuses_a_deferred_watcher():
    from cosmos.operators.watcher import DbtRunWatcherOperator

    def watcher(deferrable: bool) -> DbtRunWatcherOperator:
        node = {"dbt_node_config": {"unique_id": MODEL}}
        return DbtRunWatcherOperator(
            task_id="dbt.orders.run", project_dir="/tmp", deferrable=deferrable, extra_context=node
        )

    polled = watcher(deferrable=False)
    assert read_node_reports([polled, object()]) == 1
    assert type(polled).__name__ == "MallardDbtRunWatcherOperator" and polled.task_id == "dbt.orders.run"
    with pytest.raises(ValueError, match=r"dbt\.orders\.run: a deferred watcher"):
        read_node_reports([watcher(deferrable=True)])


def report_reading_watcher(kind: str = "run"):
    """A real Cosmos watcher of MODEL (its run or its tests), made Mallard's report-reading class."""
    from cosmos.operators.watcher import DbtRunWatcherOperator, DbtTestWatcherOperator

    operator = DbtTestWatcherOperator if kind == "test" else DbtRunWatcherOperator
    node = {"dbt_node_config": {"unique_id": MODEL}}
    watcher = operator(task_id=f"dbt.orders.{kind}", project_dir="/tmp", deferrable=False, extra_context=node)
    assert read_node_reports([watcher]) == 1
    return watcher


@pytest.fixture
def producer_state_reads(monkeypatch):
    """The build task's state as the execution API would answer (`running`); each read recorded."""
    import cosmos.operators._watcher.base as watcher_base

    reads: list[str] = []

    def fetcher(**kwargs):
        return lambda: reads.append(kwargs["producer_task_id"]) or "running"

    monkeypatch.setattr(watcher_base, "build_producer_state_fetcher", fetcher)
    return reads


@pytest.mark.parametrize(
    "kind, report",
    [
        ("run", {"status": {"status": "success"}, "compiled_sql": "select 1", "dbt_event": {"msg": "OK"}}),
        ("test", {"status": {"status": "success"}, "tests_status": "pass"}),
    ],
)
def test_a_watcher_whose_result_is_reported_does_not_ask_for_the_build_tasks_state(producer_state_reads, kind, report):
    ti = PullingTaskInstance({f"{MODEL_KEY}_report": report})
    ti.dag_id = "mallard_elt"
    assert report_reading_watcher(kind).poke({"ti": ti, "run_id": "manual__1"}) is True
    assert producer_state_reads == []
    assert ti.pulls == [f"{MODEL_KEY}_report"]


@pytest.mark.parametrize(
    "try_number, report",
    [
        (1, None),  # the build left no result: Cosmos reads the build's state to decide
        (1, {"status": {"status": None}}),
        (2, {"status": {"status": "success"}}),  # a retry: Cosmos reads it to decide whether to re-run the node
    ],
)
def test_a_watcher_asks_for_the_build_tasks_state_when_cosmos_reads_it(producer_state_reads, try_number, report):
    ti = PullingTaskInstance({f"{MODEL_KEY}_report": report})
    ti.dag_id, ti.try_number = "mallard_elt", try_number
    watcher = report_reading_watcher()
    succeeded = watcher.poke({"ti": ti, "run_id": "manual__1"})
    assert producer_state_reads == [watcher.producer_task_id]
    assert succeeded is (try_number == 2)  # no result: poke again (the build is still `running`)


@pytest.mark.parametrize("level, pulls", [("INFO", []), ("DEBUG", ["dbt_startup_events"])])
def test_a_model_watcher_pulls_the_startup_events_only_to_log_them_at_debug(level, pulls):
    from cosmos.operators._watcher.base import logger as watcher_log

    watcher = report_reading_watcher()
    ti = PullingTaskInstance({"dbt_startup_events": [{"msg": "Running with dbt=1.11"}]})
    saved = watcher_log.level
    watcher_log.setLevel(level)
    try:
        watcher._log_startup_events(ti)
    finally:
        watcher_log.setLevel(saved)
    assert ti.pulls == pulls
