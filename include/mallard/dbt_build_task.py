"""The one `dbt build` task: one XCom per dbt node, pushed off dbt's threads (its watchers: dbt_watchers.py).

Cosmos's producer turns dbt's events into XCom pushes from inside dbt's callback, so dbt's threads
wait for each push (a round trip through the execution API and a metadata-DB commit), one at a
time behind a lock: at 100 models, 1,824 pushes and 32 s of a 59 s task (docs/benchmarks.md,
`bench/dbt_overhead.py`). Its watchers then read four keys per node: `<node>_status`,
`<node>_compiled_sql`, `<node>_dbt_event` and, for a model's test task, `<node>_tests_status`.
Here, with the same results for every watcher:

- dbt's events go through a queue to one thread that runs Cosmos's own parser, in order, so dbt
  does not wait; the build returns only once every event is handled, and a failed push fails it.
- The four keys of a node are gathered into one value, `<node>_report`, pushed once the node is
  over (its `NodeFinished`, and its model's tests when it has some), and again only if it
  changes; what is left is pushed when the build ends (`NodeReports`). The watchers
  (`MallardDbtRunWatcherOperator` and co., dbt_watchers.py) answer Cosmos's pulls of those four
  keys from that one value, and pull the key itself when no report exists (a model left out of the
  build for a stale source, whose skip Cosmos pushes under its own key). Keys of a test node are not pushed at all:
  a test task watches its model's keys, never the test's own. A running node's events
  (`NodeStart`, `NodeCompiling`, `NodeExecuting`) are only logged: Cosmos wrote them to the same
  key its `NodeFinished` then overwrote unread. Every log line is still written.

That is one push per model (~104 at 100 models) instead of 1,824. Only the in-process dbt runner
(Mallard's `InvocationMode.DBT_RUNNER`) is relayed; a subprocess invocation keeps Cosmos's path,
and the watchers read its keys through the fallback.

Cosmos's callback also turns every dbt event into JSON on dbt's thread; the build task hands it
only the events its parser reads, and runs dbt without its own loggers (`dbt_events.py`).
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from cosmos.dbt import runner as dbt_runner
from cosmos.operators.watcher import DbtProducerWatcherOperator

from include.mallard.dbt_docs import keep_build_manifest, publish_docs_of_build, raise_for_failed_docs
from include.mallard.dbt_events import SUPERSEDED_NODE_EVENTS, ForwardsReadEvents, callback_only_logging

# Enough for a burst of events; when full, dbt waits rather than holding the whole log in memory.
QUEUE_SIZE = 10_000

# Cosmos's XCom keys start with the node's unique id, dots doubled to "__": "test.pkg.x" -> "test__pkg__x_...".
TEST_NODE_KEY_PREFIX = "test__"
# The per-node keys a watcher reads are "<node>_<field>".
REPORT_FIELDS = ("status", "compiled_sql", "dbt_event", "tests_status")
REPORT_KEY_SUFFIX = "_report"

ParseLine = Callable[[str, Any], None]

# The flags of the build's command that its `dbt docs generate` repeats: where the project and profile
# are, and what dbt hashes to keep its saved parse (profile, target, vars, static parser).
DOCS_VALUE_FLAGS = ("--project-dir", "--profiles-dir", "--profile", "--target", "--vars")
DOCS_SWITCH_FLAGS = ("--no-static-parser",)


def docs_command_of(build_command: list[str]) -> list[str]:
    """`dbt docs generate --no-compile` with the project, profile and parse flags of a `dbt build` command.

    The first item (dbt's executable, which Cosmos's runner drops) is kept.
    """
    kept: list[str] = []
    arguments = iter(build_command[1:])
    for argument in arguments:
        name = argument.split("=", 1)[0]
        if name in DOCS_SWITCH_FLAGS or (name in DOCS_VALUE_FLAGS and "=" in argument):
            kept.append(argument)
        elif name in DOCS_VALUE_FLAGS:
            kept += [argument, next(arguments, "")]
    return [build_command[0], "docs", "generate", "--no-compile", *kept]


def node_key(unique_id: str) -> str:
    """A dbt node's prefix in Cosmos's XCom keys: "model.demo.orders" -> "model__demo__orders"."""
    return unique_id.replace(".", "__")


def report_key(node: str) -> str:
    """The one XCom key holding every watched value of a node (`node` as `node_key` gives it)."""
    return f"{node}{REPORT_KEY_SUFFIX}"


def report_field(key: str, value: Any) -> tuple[str, str] | None:
    """(node, field) for a push of one of Cosmos's per-node watcher keys, else None.

    The value tells `<node>_status` (a dict) from `<model>_tests_status` (a string): by name alone,
    a model called `orders_tests` would read as the tests of `orders`.
    """
    if key.endswith("_status") and isinstance(value, dict):
        field = "status"
    else:
        field = next((name for name in ("tests_status", "compiled_sql", "dbt_event") if key.endswith(f"_{name}")), "")
    node = key.removesuffix(f"_{field}")
    return (node, field) if field and "__" in node else None


def is_superseded_node_event(line: str) -> bool:
    """True for a dbt JSON log line about a running node, which its `NodeFinished` replaces."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return False
    info = event.get("info") if isinstance(event, dict) else None
    return isinstance(info, dict) and info.get("name") in SUPERSEDED_NODE_EVENTS


class NodeReports:
    """The producer's task instance for Cosmos's parser: a node's watched keys gathered into one report.

    Cosmos's pushes of `<node>_<field>` (fields: `REPORT_FIELDS`) land in the node's report;
    `push_finished` pushes the reports of nodes that are over and changed since their last push,
    `push_rest` every other changed report. Keys of a test node are dropped (no watcher reads
    them); any other push, every pull and attribute go to the task instance itself.
    """

    def __init__(self, task_instance: Any, tests_per_model: Mapping[str, list[str]]) -> None:
        self._task_instance = task_instance
        self._with_tests = {node_key(model) for model, tests in tests_per_model.items() if tests}
        self._reports: dict[str, dict[str, Any]] = {}
        self._pushed: dict[str, dict[str, Any]] = {}
        self._changed: set[str] = set()

    def xcom_push(self, key: str, value: Any, **kwargs: Any) -> None:
        if key.startswith(TEST_NODE_KEY_PREFIX):
            return
        parts = report_field(key, value)
        if parts is None:
            self._task_instance.xcom_push(key=key, value=value, **kwargs)
            return
        node, field = parts
        self._reports.setdefault(node, {})[field] = value
        self._changed.add(node)

    def push_finished(self) -> None:
        """Push each changed report whose node is over: its final event, and its tests' status if it has tests."""
        self._push(node for node in self._changed if self._is_finished(node))

    def push_rest(self) -> None:
        """Push every changed report, finished or not: the build is over."""
        self._push(self._changed)

    def _is_finished(self, node: str) -> bool:
        report = self._reports[node]
        has_result = "dbt_event" in report and "status" in report
        return has_result and (node not in self._with_tests or "tests_status" in report)

    def _push(self, nodes: Iterable[str]) -> None:
        for node in sorted(nodes):
            report = self._reports[node]
            if self._pushed.get(node) != report:
                self._task_instance.xcom_push(key=report_key(node), value=dict(report))
                self._pushed[node] = dict(report)
            self._changed.discard(node)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task_instance, name)


class ReportingParser:
    """Cosmos's parser pushing one report per node (`NodeReports`) instead of its per-node keys.

    A running node's event is parsed without a context (Cosmos's parser then logs it and pushes
    nothing); any other line with the task instance wrapped in one `NodeReports` per build, whose
    finished nodes are pushed after each line. `close` pushes what is left.
    """

    def __init__(self, parse: ParseLine, tests_per_model: Mapping[str, list[str]]) -> None:
        self._parse = parse
        self._tests_per_model = tests_per_model
        self._reports: dict[int, NodeReports] = {}

    def __call__(self, line: str, extra_kwargs: Any) -> None:
        if is_superseded_node_event(line):
            self._parse(line, {**(extra_kwargs or {}), "context": None})
            return
        context = (extra_kwargs or {}).get("context")
        if context is None or context.get("ti") is None:
            self._parse(line, extra_kwargs)
            return
        task_instance = context["ti"]
        reports = self._reports.get(id(task_instance))
        if reports is None:
            reports = self._reports[id(task_instance)] = NodeReports(task_instance, self._tests_per_model)
        self._parse(line, {**extra_kwargs, "context": {**context, "ti": reports}})
        reports.push_finished()

    def close(self) -> None:
        for reports in self._reports.values():
            reports.push_rest()


class EventRelay:
    """Hands dbt's log lines to one thread that parses them in arrival order.

    `submit` is safe from any number of dbt threads; `close` waits for every line and raises the
    first error the parser raised (the rest are still parsed, so the log stays whole).
    """

    def __init__(self, parse: ParseLine) -> None:
        self._parse = parse
        self._lines: queue.Queue[tuple[str, Any] | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mallard-dbt-events", daemon=True)
        self._thread.start()

    def submit(self, line: str, extra_kwargs: Any) -> None:
        self._lines.put((line, extra_kwargs))

    def close(self) -> None:
        self._lines.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (item := self._lines.get()) is not None:
            line, extra_kwargs = item
            try:
                self._parse(line, extra_kwargs)
            except BaseException as error:  # re-raised by close() in the task thread
                if self._error is None:
                    self._error = error


class MallardDbtBuildOperator(DbtProducerWatcherOperator, ForwardsReadEvents):
    """Cosmos's `dbt build` producer with its node events relayed and reported per node, and only the
    events its parser reads converted (module docstring).

    Cosmos 1.15 has no setting for the producer's class (it derives it from the execution mode),
    so `use_for(producer)` changes the class of the one producer it built; this class adds
    methods only, no state set at construction.
    """

    _relay: EventRelay | None = None
    # The last dbt invocation: (command, env, cwd, succeeded); the build's once it is over.
    _last_invocation: tuple[list[str], dict[str, str], str, bool] | None = None

    def _make_parse_callable(self) -> ParseLine:
        return self._relay.submit if self._relay is not None else super()._make_parse_callable()

    def run_dbt_runner(self, command: list[str], env: dict[str, str], cwd: str, **kwargs: Any) -> Any:
        parser = ReportingParser(super()._make_parse_callable(), self.tests_per_model)
        relay = self._relay = EventRelay(parser)
        self._callbacks_before_call = tuple(self._dbt_runner_callbacks or ())
        succeeded = False
        try:
            result = super().run_dbt_runner(callback_only_logging(command), env, cwd, **kwargs)
            succeeded = bool(getattr(result, "success", False))
            return result
        finally:
            self._last_invocation = (command, env, cwd, succeeded)
            self._relay = None
            self._callbacks_before_call = ()
            relay.close()
            parser.close()

    def _handle_post_execution(self, tmp_project_dir: str, context: Any, *args: Any, **kwargs: Any) -> None:
        super()._handle_post_execution(tmp_project_dir, context, *args, **kwargs)
        # Before Cosmos deletes its copy of the project: the docs are built from this manifest.
        kept = keep_build_manifest(Path(tmp_project_dir), self.dag_id, context["run_id"])
        if kept is None or self._last_invocation is None:
            return
        command, env, cwd, succeeded = self._last_invocation
        if not succeeded:
            return  # a failed build: the docs are left as they are (the docs task does not run)

        def generate_catalog() -> None:
            # Cosmos's runner, without the build's event callbacks: no watcher reads the docs' events.
            raise_for_failed_docs(dbt_runner.run_command(docs_command_of(command), env, cwd))

        publish_docs_of_build(kept, Path(tmp_project_dir), generate_catalog)

    @classmethod
    def use_for(cls, producer: DbtProducerWatcherOperator) -> None:
        """Make Cosmos's producer task this operator (the same task, id, arguments and links)."""
        if type(producer) is not DbtProducerWatcherOperator:
            raise TypeError(f"expected Cosmos's DbtProducerWatcherOperator, got {type(producer).__name__}")
        producer.__class__ = cls
