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
    NodeReports,
    ReportingParser,
    is_superseded_node_event,
    report_field,
)
from include.mallard.dbt_events import ReadEventsForwarder, is_read_by_cosmos

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


MODEL_KEY = MODEL.replace(".", "__")


def reports_of(ti: RecordingTaskInstance) -> list[tuple[str, dict]]:
    return [(key, value) for key, value in ti.pushes if key.endswith("_report")]


def test_a_node_is_reported_once_in_one_key_when_it_finishes(tmp_path):
    ti = RecordingTaskInstance()
    parser = ReportingParser(cosmos_parser(), {})
    relay = EventRelay(parser)
    extra = {"context": {"ti": ti}, "project_dir": str(tmp_path)}
    for event, status in [
        ("NodeStart", "started"),
        ("NodeCompiling", "compiling"),
        ("NodeExecuting", "executing"),
        ("NodeFinished", "success"),
    ]:
        relay.submit(dbt_line(event, status), extra)
    relay.close()
    parser.close()
    assert [key for key, _ in ti.pushes] == [f"{MODEL_KEY}_report"]
    report = ti.pushes[0][1]
    assert report["status"] == {"status": "success", "outlet_uris": []}
    event = report["dbt_event"]
    assert event["status"] == "success" and event["msg"] == "OK" and event["finish_time"]


def test_a_tested_model_is_reported_when_its_tests_are_over(tmp_path):
    ti = RecordingTaskInstance()
    parse = ReportingParser(cosmos_parser({MODEL: [TEST]}), {MODEL: [TEST]})
    extra = {"context": {"ti": ti}, "project_dir": str(tmp_path)}
    parse(dbt_line("NodeFinished", "success"), extra)
    assert ti.pushes == [], "the model's report waits for its tests"
    parse(dbt_line("NodeFinished", "pass", TEST), extra)
    assert [key for key, _ in ti.pushes] == [f"{MODEL_KEY}_report"]
    assert ti.pushes[0][1]["tests_status"] == "pass"
    assert ti.pushes[0][1]["status"]["status"] == "success"
    parse.close()
    assert len(ti.pushes) == 1, "nothing changed since: nothing more at the end"


def test_what_never_finished_is_pushed_when_the_build_ends(tmp_path):
    """dbt stopped before the tests ran: the model's result still reaches its watcher."""
    ti = RecordingTaskInstance()
    parse = ReportingParser(cosmos_parser({MODEL: [TEST]}), {MODEL: [TEST]})
    parse(dbt_line("NodeFinished", "error"), {"context": {"ti": ti}, "project_dir": str(tmp_path)})
    assert ti.pushes == []
    parse.close()
    assert reports_of(ti) == [(f"{MODEL_KEY}_report", ti.pushes[0][1])]
    assert ti.pushes[0][1]["status"]["status"] == "error" and "tests_status" not in ti.pushes[0][1]


def test_the_compiled_sql_of_both_final_events_is_reported_once(tmp_path):
    compiled = tmp_path / "target" / "compiled" / "demo" / "models" / "staging" / "shop"
    compiled.mkdir(parents=True)
    (compiled / "stg_shop__orders.sql").write_text("select 1 as order_id")
    ti = RecordingTaskInstance()
    parse = ReportingParser(cosmos_parser(), {})
    extra = {"context": {"ti": ti}, "project_dir": str(tmp_path)}
    parse(dbt_line("LogModelResult", "success"), extra)
    parse(dbt_line("NodeFinished", "success"), extra)
    parse.close()
    assert [key for key, _ in ti.pushes] == [f"{MODEL_KEY}_report"]
    assert ti.pushes[0][1]["compiled_sql"] == "select 1 as order_id"
    # Cosmos alone pushes the status and the compiled SQL for each of the two events.
    alone = RecordingTaskInstance()
    for event in ("LogModelResult", "NodeFinished"):
        cosmos_parser()(dbt_line(event, "success"), {"context": {"ti": alone}, "project_dir": str(tmp_path)})
    assert [key for key, _ in alone.pushes].count(f"{MODEL_KEY}_status") == 2


def test_a_changed_report_is_pushed_again(tmp_path):
    ti = RecordingTaskInstance()
    parse = ReportingParser(cosmos_parser(), {})
    extra = {"context": {"ti": ti}, "project_dir": str(tmp_path)}
    parse(dbt_line("NodeFinished", "success"), extra)
    parse(dbt_line("NodeFinished", "error"), extra)
    parse.close()
    assert [report["status"]["status"] for _, report in reports_of(ti)] == ["success", "error"]


def test_other_keys_pass_through_and_a_model_named_like_a_field_keeps_its_own_status():
    ti = RecordingTaskInstance()
    reports = NodeReports(ti, {"model.demo.orders": [TEST]})
    reports.xcom_push(key="task_status", value="completed")
    reports.xcom_push(key="dbt_startup_events", value=[{"name": "MainReportVersion"}])
    # `orders_tests` is a model of its own: its `_status` is a dict, `orders`' tests status a string.
    reports.xcom_push(key="model__demo__orders_tests_status", value={"status": "success", "outlet_uris": []})
    reports.xcom_push(key="model__demo__orders_tests_status", value="pass")
    reports.xcom_push(key=f"{TEST.replace('.', '__')}_status", value={"status": "pass"})
    reports.push_rest()
    assert ti.pushes == [
        ("task_status", "completed"),
        ("dbt_startup_events", [{"name": "MainReportVersion"}]),
        ("model__demo__orders_report", {"tests_status": "pass"}),
        ("model__demo__orders_tests_report", {"status": {"status": "success", "outlet_uris": []}}),
    ]


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("model__demo__orders_status", {"status": "success"}, ("model__demo__orders", "status")),
        ("model__demo__orders_tests_status", "fail", ("model__demo__orders", "tests_status")),
        ("model__demo__orders_tests_status", {"status": "success"}, ("model__demo__orders_tests", "status")),
        ("model__demo__orders_compiled_sql", "select 1", ("model__demo__orders", "compiled_sql")),
        ("seed__demo__stores_dbt_event", {"status": "success"}, ("seed__demo__stores", "dbt_event")),
        ("task_status", "completed", None),
        ("dbt_startup_events", [], None),
        ("return_value", None, None),
    ],
)
def test_report_field_names_the_node_and_field_of_cosmos_keys(key, value, field):
    assert report_field(key, value) == field


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

    relay = EventRelay(ReportingParser(parse, {}))
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


# --- which dbt events reach Cosmos's parser -----------------------------------------------------


def dbt_event(event_class: str, node_status: str | None = None, **fields: object):
    """A real dbt `EventMsg`, as dbt hands it to a callback: level and name as dbt 1.11 sets them."""
    import dbt.adapters.events.types as adapter_events
    import dbt.events.types as core_events
    import dbt_common.events.types as common_events
    from dbt_common.events.base_types import msg_from_base_event

    modules = (core_events, adapter_events, common_events)
    event_type = next(getattr(module, event_class) for module in modules if hasattr(module, event_class))
    if node_status is not None:
        fields["node_info"] = {"unique_id": MODEL, "node_status": node_status, "resource_type": "model"}
    return msg_from_base_event(event_type(**fields))


@pytest.mark.parametrize(
    ("event_class", "node_status", "fields", "read"),
    [
        # debug-level events of a running node or of no node: Cosmos's parser only logs them at debug level
        ("SQLQuery", "executing", {"conn_name": "c", "sql": "select 1"}, False),
        ("SQLQueryStatus", "executing", {"status": "OK", "elapsed": 0.1}, False),
        ("NodeStart", "started", {}, False),
        ("NodeExecuting", "executing", {}, False),
        ("CacheAction", None, {"action": "add_relation"}, False),
        ("ConnectionUsed", None, {"conn_type": "duckdb", "conn_name": "c"}, False),
        # what it reads: a final node, any debug event carrying a node in a final state, errors, skips, startup
        ("NodeFinished", "success", {}, True),
        ("SQLQueryStatus", "success", {"status": "OK", "elapsed": 0.1}, True),
        ("SkippingDetails", "skipped", {"node_name": "orders"}, True),
        ("LogSkipBecauseError", None, {"schema": "marts", "relation": "orders", "status": "error"}, True),
        ("MainReportVersion", None, {"version": "1.11.0", "log_version": 3}, True),
        ("AdapterRegistered", None, {"adapter_name": "duckdb", "adapter_version": "1.11.1"}, True),
        ("RunResultError", None, {"msg": "boom"}, True),
        # every event above debug level is logged in the task log
        ("LogModelResult", "success", {"description": "table model orders", "status": "OK"}, True),
        ("Formatting", None, {"msg": ""}, True),
    ],
)
def test_only_events_cosmos_parser_acts_on_are_read(event_class, node_status, fields, read):
    event = dbt_event(event_class, node_status, **fields)
    assert is_read_by_cosmos(event) is read, (event.info.level, event.info.name)


def test_the_forwarder_hands_on_only_read_events_and_counts_both():
    handed: list[str] = []
    forwarder = ReadEventsForwarder(lambda event: handed.append(event.info.name))
    events = [
        dbt_event("SQLQuery", "executing", conn_name="c", sql="select 1"),
        dbt_event("CacheAction", action="add_relation"),
        dbt_event("NodeFinished", "success"),
        dbt_event("LogModelResult", "success", description="table model orders", status="OK"),
    ]
    threads = [threading.Thread(target=lambda: [forwarder(event) for event in events]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(handed)) == ["LogModelResult", "NodeFinished"] and len(handed) == 8
    assert (forwarder.seen, forwarder.forwarded) == (16, 8)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            ["dbt", "build", "--log-format", "json", "--project-dir", "/tmp/p", "--target", "duckdb"],
            ["dbt", "build", "--project-dir", "/tmp/p", "--target", "duckdb", "--log-level", "none"],
        ),
        (
            ["dbt", "build", "--log-format=json", "--select", "orders"],
            ["dbt", "build", "--select", "orders", "--log-level", "none"],
        ),
        (["dbt", "source", "freshness"], ["dbt", "source", "freshness", "--log-level", "none"]),
    ],
)
def test_the_in_process_build_runs_dbt_without_its_own_loggers(command, expected):
    from include.mallard.dbt_events import callback_only_logging

    assert callback_only_logging(command) == expected


@pytest.mark.parametrize(
    ("build_command", "expected"),
    [
        (
            "dbt build --select tag:x --full-refresh --project-dir /tmp/copy --profiles-dir /tmp/profile "
            "--profile mallard --target duckdb --no-static-parser --log-format json",
            "dbt docs generate --no-compile --project-dir /tmp/copy --profiles-dir /tmp/profile "
            "--profile mallard --target duckdb --no-static-parser",
        ),
        (
            "/venv/bin/dbt build --exclude a --vars {x:1} --target=pg --project-dir /p",
            "/venv/bin/dbt docs generate --no-compile --vars {x:1} --target=pg --project-dir /p",
        ),
    ],
)
def test_the_builds_docs_repeat_its_project_profile_and_parse_flags_only(build_command, expected):
    from include.mallard.dbt_build_task import docs_command_of

    assert docs_command_of(build_command.split()) == expected.split()
