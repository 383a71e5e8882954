"""The one `dbt build` task: Cosmos's watcher producer, reporting each node once and off dbt's threads.

Cosmos's producer turns dbt's events into XCom pushes from inside dbt's callback, so dbt's threads
wait for each push (a round trip through the execution API), one at a time behind a lock: at 100
models, 1,824 pushes and 32 s of a 59 s task (docs/benchmarks.md, `bench/dbt_overhead.py`). Two
changes, same results for every watcher:

- dbt's events go through a queue to one thread that runs Cosmos's own parser, in order, so dbt
  does not wait; the build returns only once every event is handled, and a failed push fails it.
- Only what a watcher reads is pushed, once (`watched_pushes_only`). The `<node>_dbt_event` XCom
  goes out for a node's `NodeFinished` only: Cosmos pushed it for `NodeStart`, `NodeCompiling`
  and `NodeExecuting` too, under the same key, and its watcher reads it once, when the node is
  over, so the earlier three were always overwritten unread (and Mallard's watchers start after
  the build). Keys of a test node are not pushed at all: a test task watches its model's keys
  (`<model>_tests_status`, `<model>_dbt_event`), never the test's own. A key is not pushed again
  with the value it holds. Every log line is still written.

That is 404 pushes at 100 models instead of 1,824. Only the in-process dbt runner (Mallard's
`InvocationMode.DBT_RUNNER`) is relayed; a subprocess invocation keeps Cosmos's own path.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from typing import Any

from cosmos.operators.watcher import DbtProducerWatcherOperator

# dbt events about a node still running, superseded by its `NodeFinished`.
SUPERSEDED_NODE_EVENTS = frozenset({"NodeStart", "NodeCompiling", "NodeExecuting"})
# Enough for a burst of events; when full, dbt waits rather than holding the whole log in memory.
QUEUE_SIZE = 10_000

# Cosmos's XCom keys start with the node's unique id, dots doubled to "__": "test.pkg.x" -> "test__pkg__x_...".
TEST_NODE_KEY_PREFIX = "test__"

ParseLine = Callable[[str, Any], None]


def is_superseded_node_event(line: str) -> bool:
    """True for a dbt JSON log line about a running node, which its `NodeFinished` replaces."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return False
    info = event.get("info") if isinstance(event, dict) else None
    return isinstance(info, dict) and info.get("name") in SUPERSEDED_NODE_EVENTS


class WatchedPushesOnly:
    """The producer's task instance for Cosmos's parser, without the pushes no watcher needs.

    Dropped: keys of a test node, and a value the key already holds (Cosmos pushes a node's
    `_status`, `_compiled_sql` and its model's `_tests_status` for each of the two dbt events that
    carry its final status: `LogModelResult`/`LogTestResult` and `NodeFinished`). Everything else
    (pulls, other pushes, attributes) goes to the task instance itself.
    """

    def __init__(self, task_instance: Any) -> None:
        self._task_instance = task_instance
        self._pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any, **kwargs: Any) -> None:
        if key.startswith(TEST_NODE_KEY_PREFIX):
            return
        if key in self._pushed and self._pushed[key] == value:
            return
        self._task_instance.xcom_push(key=key, value=value, **kwargs)
        self._pushed[key] = value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task_instance, name)


def watched_pushes_only(parse: ParseLine) -> ParseLine:
    """`parse` (Cosmos's parser) pushing only what a watcher reads: see the module docstring.

    A running node's event is parsed without a context (Cosmos's parser then logs it and pushes
    nothing); any other line with the task instance wrapped in one `WatchedPushesOnly` per build.
    """
    wrapped: dict[int, WatchedPushesOnly] = {}

    def parse_line(line: str, extra_kwargs: Any) -> None:
        if is_superseded_node_event(line):
            parse(line, {**(extra_kwargs or {}), "context": None})
            return
        context = (extra_kwargs or {}).get("context")
        if context is not None and context.get("ti") is not None:
            task_instance = context["ti"]
            if id(task_instance) not in wrapped:
                wrapped[id(task_instance)] = WatchedPushesOnly(task_instance)
            extra_kwargs = {**extra_kwargs, "context": {**context, "ti": wrapped[id(task_instance)]}}
        parse(line, extra_kwargs)

    return parse_line


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


class MallardDbtBuildOperator(DbtProducerWatcherOperator):
    """Cosmos's `dbt build` producer with its node events relayed (module docstring).

    Cosmos 1.15 has no setting for the producer's class (it derives it from the execution mode),
    so `use_for(producer)` changes the class of the one producer it built; this class adds
    methods only, no state set at construction.
    """

    _relay: EventRelay | None = None

    def _make_parse_callable(self) -> ParseLine:
        return self._relay.submit if self._relay is not None else super()._make_parse_callable()

    def run_dbt_runner(self, command: list[str], env: dict[str, str], cwd: str, **kwargs: Any) -> Any:
        relay = self._relay = EventRelay(watched_pushes_only(super()._make_parse_callable()))
        try:
            return super().run_dbt_runner(command, env, cwd, **kwargs)
        finally:
            self._relay = None
            relay.close()

    @classmethod
    def use_for(cls, producer: DbtProducerWatcherOperator) -> None:
        """Make Cosmos's producer task this operator (the same task, id, arguments and links)."""
        if type(producer) is not DbtProducerWatcherOperator:
            raise TypeError(f"expected Cosmos's DbtProducerWatcherOperator, got {type(producer).__name__}")
        producer.__class__ = cls
