"""The dbt build task relays dbt's events to one thread, in order, and reports each node once."""

from __future__ import annotations

import functools
import json
import threading

import pytest
from cosmos.operators._watcher.base import store_dbt_resource_status_from_log

from include.mallard.dbt_build_task import (
    EventRelay,
    MallardDbtBuildOperator,
    is_superseded_node_event,
    watched_pushes_only,
)

MODEL = "model.demo.stg_shop__orders"
TEST = "test.demo.not_null_stg_shop__orders_order_id.1a2b3c"


def dbt_line(event: str, status: str, unique_id: str = MODEL) -> str:
    """One dbt `--log-format json` line about a node, shaped as dbt 1.11 writes it."""
    return json.dumps(
        {
            "info": {"name": event, "msg": f"{event} {unique_id}", "level": "debug", "ts": "2024-01-08T00:00:01Z"},
            "data": {
                "node_info": {
                    "unique_id": unique_id,
                    "node_status": status,
                    "resource_type": unique_id.split(".")[0],
                    "node_path": "staging/shop/stg_shop__orders.sql",
                    "node_started_at": "2024-01-08T00:00:00",
                    "node_finished_at": "2024-01-08T00:00:01" if status in ("success", "pass") else "",
                },
                "run_result": {"message": "OK" if status in ("success", "pass") else None},
            },
        }
    )


class RecordingTaskInstance:
    """Where Cosmos's parser pushes XComs: records them in order, as the execution API would store them."""

    def __init__(self) -> None:
        self.pushes: list[tuple[str, object]] = []

    def xcom_push(self, key: str, value: object) -> None:
        self.pushes.append((key, value))

    def xcom_pull(self, *args: object, **kwargs: object) -> None:
        return None


def cosmos_parser(tests_per_model: dict[str, list[str]] | None = None):
    """Cosmos's own parser of dbt's JSON log lines, bound as its producer binds it."""
    return functools.partial(
        store_dbt_resource_status_from_log,
        tests_per_model=tests_per_model or {},
        test_results_per_model={},
        model_outlet_uris={},
        dataset_namespace=None,
        should_generate_model_uris=False,
        upstream_failure_skipped_ids=set(),
    )


def test_a_node_is_reported_once_with_its_finished_event(tmp_path):
    ti = RecordingTaskInstance()
    relay = EventRelay(watched_pushes_only(cosmos_parser()))
    extra = {"context": {"ti": ti}, "project_dir": str(tmp_path)}
    for event, status in [
        ("NodeStart", "started"),
        ("NodeCompiling", "compiling"),
        ("NodeExecuting", "executing"),
        ("NodeFinished", "success"),
    ]:
        relay.submit(dbt_line(event, status), extra)
    relay.close()
    keys = [key for key, _ in ti.pushes]
    assert keys == [f"{MODEL.replace('.', '__')}_dbt_event", f"{MODEL.replace('.', '__')}_status"]
    event = ti.pushes[0][1]
    assert event["status"] == "success" and event["msg"] == "OK" and event["finish_time"]
    assert ti.pushes[1][1]["status"] == "success"


def test_a_test_node_reports_only_through_its_model(tmp_path):
    ti = RecordingTaskInstance()
    parse = watched_pushes_only(cosmos_parser({MODEL: [TEST]}))
    extra = {"context": {"ti": ti}, "project_dir": str(tmp_path)}
    parse(dbt_line("NodeFinished", "success"), extra)
    parse(dbt_line("NodeFinished", "pass", TEST), extra)
    model_key = MODEL.replace(".", "__")
    assert ti.pushes == [
        (f"{model_key}_dbt_event", ti.pushes[0][1]),
        (f"{model_key}_status", {"status": "success", "outlet_uris": []}),
        (f"{model_key}_tests_status", "pass"),
    ]


def test_a_status_reported_by_two_dbt_events_is_pushed_once(tmp_path):
    compiled = tmp_path / "target" / "compiled" / "demo" / "models" / "staging" / "shop"
    compiled.mkdir(parents=True)
    (compiled / "stg_shop__orders.sql").write_text("select 1 as order_id")
    ti = RecordingTaskInstance()
    parse = watched_pushes_only(cosmos_parser())
    extra = {"context": {"ti": ti}, "project_dir": str(tmp_path)}
    parse(dbt_line("LogModelResult", "success"), extra)
    parse(dbt_line("NodeFinished", "success"), extra)
    model_key = MODEL.replace(".", "__")
    assert [key for key, _ in ti.pushes] == [
        f"{model_key}_status",
        f"{model_key}_compiled_sql",
        f"{model_key}_dbt_event",
    ]
    assert ti.pushes[1][1] == "select 1 as order_id"
    # Cosmos alone pushes the status and the compiled SQL for each of the two events.
    alone = RecordingTaskInstance()
    for event in ("LogModelResult", "NodeFinished"):
        cosmos_parser()(dbt_line(event, "success"), {"context": {"ti": alone}, "project_dir": str(tmp_path)})
    assert [key for key, _ in alone.pushes].count(f"{model_key}_status") == 2


def test_a_changed_value_is_pushed_again(tmp_path):
    ti = RecordingTaskInstance()
    parse = watched_pushes_only(cosmos_parser())
    extra = {"context": {"ti": ti}, "project_dir": str(tmp_path)}
    parse(dbt_line("NodeFinished", "success"), extra)
    parse(dbt_line("NodeFinished", "error"), extra)
    statuses = [value["status"] for key, value in ti.pushes if key.endswith("_status")]
    assert statuses == ["success", "error"]


def test_without_the_filter_cosmos_pushes_test_keys(tmp_path):
    """The claim above depends on Cosmos's key names: its parser alone pushes the test's keys."""
    ti = RecordingTaskInstance()
    cosmos_parser({MODEL: [TEST]})(dbt_line("NodeFinished", "pass", TEST), {"context": {"ti": ti}})
    assert any(key.startswith("test__demo__not_null") for key, _ in ti.pushes), ti.pushes


def test_superseded_events_are_still_parsed_without_a_context():
    seen: list[tuple[str, object]] = []

    def parse(line: str, extra: dict) -> None:
        name = json.loads(line)["info"]["name"] if line.startswith("{") else "text"
        task_instance = extra["context"] and extra["context"]["ti"]._task_instance
        seen.append((name, task_instance))

    relay = EventRelay(watched_pushes_only(parse))
    ti = RecordingTaskInstance()
    relay.submit(dbt_line("NodeStart", "started"), {"context": {"ti": ti}})
    relay.submit(dbt_line("NodeFinished", "success"), {"context": {"ti": ti}})
    relay.submit("not json: a line some library printed", {"context": {"ti": ti}})
    relay.close()
    assert seen == [("NodeStart", None), ("NodeFinished", ti), ("text", ti)]


@pytest.mark.parametrize(
    ("line", "superseded"),
    [
        (dbt_line("NodeStart", "started"), True),
        (dbt_line("NodeExecuting", "executing"), True),
        (dbt_line("NodeFinished", "success"), False),
        (json.dumps({"info": {"name": "RunResultError", "msg": "boom"}, "data": {}}), False),
        ("plain text", False),
        ("[1, 2]", False),
    ],
)
def test_only_running_node_events_are_superseded(line, superseded):
    assert is_superseded_node_event(line) is superseded


def test_lines_from_many_dbt_threads_are_parsed_in_each_threads_order():
    parsed: list[str] = []
    relay = EventRelay(lambda line, extra: parsed.append(line))

    def dbt_thread(name: str) -> None:
        for index in range(500):
            relay.submit(f"{name} {index}", None)

    threads = [threading.Thread(target=dbt_thread, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    relay.close()
    assert len(parsed) == 2000
    for n in range(4):
        mine = [int(line.split()[1]) for line in parsed if line.startswith(f"t{n} ")]
        assert mine == list(range(500))


def test_close_raises_the_first_push_error_after_parsing_everything():
    parsed: list[str] = []

    def parse(line: str, extra: object) -> None:
        if line.startswith("bad"):
            raise RuntimeError(f"push failed for {line}")
        parsed.append(line)

    relay = EventRelay(parse)
    for line in ["ok 1", "bad 1", "ok 2", "bad 2", "ok 3"]:
        relay.submit(line, None)
    with pytest.raises(RuntimeError, match="push failed for bad 1"):
        relay.close()
    assert parsed == ["ok 1", "ok 2", "ok 3"]


def test_use_for_accepts_only_cosmos_producer():
    with pytest.raises(TypeError, match="DbtProducerWatcherOperator"):
        MallardDbtBuildOperator.use_for(object())
