"""The events the build task holds back from Cosmos's parser change nothing it pushes or logs (a real dbt build).

A small project whose build has every kind of outcome: models that succeed, a passing and a failing
test, and a model dbt skips because of that failure. Every event dbt emits goes through the build
task's parser (Cosmos's own, reporting per node) twice: all of them, and only those
`is_read_by_cosmos` keeps. The XComs pushed and the log records at INFO and above (what the task
log shows) must be the same.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import pytest

from include.mallard.dbt_build_task import ReportingParser
from include.mallard.dbt_events import is_read_by_cosmos
from tests.unit.test_dbt_build_task import RecordingTaskInstance, cosmos_parser

pytestmark = pytest.mark.e2e

PROJECT_FILES = {
    "dbt_project.yml": "name: event_filter\nversion: '1.0'\nprofile: event_filter\n",
    "profiles.yml": (
        "event_filter:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: '{warehouse}'\n      threads: 2\n"
    ),
    "models/orders.sql": "select 1 as order_id, 'placed' as status union all select 2, 'shipped'\n",
    "models/shipped_orders.sql": "select * from {{ ref('orders') }} where status = 'shipped'\n",
    "models/order_report.sql": "select count(*) as orders from {{ ref('shipped_orders') }}\n",
    "models/schema.yml": """version: 2
models:
  - name: orders
    columns:
      - name: order_id
        data_tests: [not_null, unique]
  - name: shipped_orders
    columns:
      - name: status
        data_tests:
          - accepted_values:
              arguments:
                values: ['delivered']
""",
}


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> tuple[Path, list, dict[str, list[str]]]:
    """The project folder, every event of its `dbt build`, and Cosmos's tests per model."""
    from dbt.cli.main import dbtRunner

    project = tmp_path_factory.mktemp("event-filter")
    for name, text in PROJECT_FILES.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text.replace("{warehouse}", str(project / "warehouse.duckdb")))
    events: list = []
    command = ["build", "--project-dir", str(project), "--profiles-dir", str(project), "--log-format", "json"]
    with contextlib.redirect_stdout(io.StringIO()):
        result = dbtRunner(callbacks=[events.append]).invoke(command)
    assert not result.success, "the accepted_values test is meant to fail"
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    tests_per_model: dict[str, list[str]] = {}
    for unique_id, node in manifest["nodes"].items():
        if node["resource_type"] == "test":
            for model in node["depends_on"]["nodes"]:
                tests_per_model.setdefault(model, []).append(unique_id)
    return project, events, tests_per_model


def parse(events: list, project: Path, tests_per_model: dict[str, list[str]], caplog) -> tuple[list, list]:
    """What the build task's parser pushes and logs at INFO and above for these events, converted as
    Cosmos's callback converts them."""
    from google.protobuf.json_format import MessageToJson

    task_instance = RecordingTaskInstance()
    parse_line = ReportingParser(cosmos_parser(tests_per_model), tests_per_model)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cosmos"):
        for event in events:
            line = MessageToJson(event, preserving_proto_field_name=True)
            parse_line(line, {"context": {"ti": task_instance}, "project_dir": str(project)})
        parse_line.close()
    logged = [(record.levelno, record.getMessage()) for record in caplog.records if record.levelno >= logging.INFO]
    return task_instance.pushes, logged


def test_held_back_events_change_no_push_and_no_log_line(build, caplog):
    project, events, tests_per_model = build
    read = [event for event in events if is_read_by_cosmos(event)]
    all_pushes, all_logged = parse(events, project, tests_per_model, caplog)
    read_pushes, read_logged = parse(read, project, tests_per_model, caplog)
    assert read_pushes == all_pushes
    assert read_logged == all_logged
    # The build had each outcome, and its reports say so.
    reports = dict(all_pushes)
    assert reports["model__event_filter__orders_report"]["status"]["status"] == "success"
    assert reports["model__event_filter__orders_report"]["tests_status"] == "pass"
    assert reports["model__event_filter__shipped_orders_report"]["tests_status"] == "fail"
    # dbt skipped it for the failed test; Cosmos reports that as failed so the task can be retried.
    assert reports["model__event_filter__order_report_report"]["status"]["status"] == "failed"
    # Most events are held back.
    assert len(read) < len(events) / 2, (len(read), len(events))
