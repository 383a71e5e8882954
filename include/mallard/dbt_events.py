"""Which of dbt's events the build task hands to Cosmos's parser.

Cosmos's dbt callback turns every event into JSON on dbt's thread before its parser looks at it.
Most of a build's events (88% at 100 models: 6,697 of 7,624, ~25 per node) are debug-level SQL,
connection and cache events that the parser only logs at debug level, which the task log drops.
`ForwardsReadEvents` hands that callback only the events the parser acts on (`is_read_by_cosmos`),
and every event when debug logging is on for the parser.

dbt's own loggers are a larger cost: Cosmos runs the build with `--log-format json`, so dbt also
writes every event as JSON to stdout (which Cosmos's stdout filter then drops, the callback having
logged it) and to `logs/dbt.log` in Cosmos's temporary copy of the project (deleted when the task
ends). `callback_only_logging` turns both off for the in-process build: the task log, written by
Cosmos's callback, is unchanged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from cosmos.operators._watcher.base import _DBT_EVENT_ALLOWLIST
from cosmos.operators._watcher.base import logger as cosmos_parser_logger
from cosmos.operators._watcher.state import DBT_UPSTREAM_FAILURE_SKIP_EVENT_NAMES, is_dbt_node_status_terminal
from cosmos.operators.local import DbtLocalBaseOperator

# dbt's global flags for the in-process build: no stdout logger, no file logger (dbt's file level follows
# `--log-level` unless set). Events still reach the callbacks: dbt calls them whatever its loggers are.
NO_DBT_LOGGERS = ("--log-level", "none")
# dbt events about a node still running, superseded by its `NodeFinished`.
SUPERSEDED_NODE_EVENTS = frozenset({"NodeStart", "NodeCompiling", "NodeExecuting"})
# The debug-level dbt events Cosmos's parser acts on by name (cosmos/operators/_watcher/base.py): errors,
# a finished node, the startup report it keeps, a skip for an upstream failure. A running node's events
# are left out: the build task's `ReportingParser` only logs them.
COSMOS_READ_EVENTS = (
    (_DBT_EVENT_ALLOWLIST - SUPERSEDED_NODE_EVENTS)
    | {"MainReportVersion", "AdapterRegistered"}
    | DBT_UPSTREAM_FAILURE_SKIP_EVENT_NAMES
)


def callback_only_logging(command: list[str]) -> list[str]:
    """`command` (a dbt CLI invocation) without Cosmos's `--log-format json` and with dbt's loggers off."""
    kept: list[str] = []
    arguments = iter(command)
    for argument in arguments:
        if argument == "--log-format":
            next(arguments, None)
        elif not argument.startswith("--log-format="):
            kept.append(argument)
    return [*kept, *NO_DBT_LOGGERS]


def is_read_by_cosmos(event: Any) -> bool:
    """Whether Cosmos's parser does more with this dbt `EventMsg` than log it at debug level.

    Every event above debug level is logged; a debug one counts when named in `COSMOS_READ_EVENTS`
    or when it carries a node in a final state (Cosmos pushes a node's status from any such event).
    """
    info = event.info
    if info.level != "debug" or info.name in COSMOS_READ_EVENTS:
        return True
    node_info = getattr(event.data, "node_info", None)
    return node_info is not None and is_dbt_node_status_terminal(node_info.node_status)


class ReadEventsForwarder:
    """A dbt callback calling `callback` only for the events `is_read_by_cosmos` keeps, counting both."""

    def __init__(self, callback: Callable[[Any], None]) -> None:
        self.callback = callback
        self.seen = 0
        self.forwarded = 0
        self._lock = threading.Lock()  # dbt calls back from each of its threads

    def __call__(self, event: Any) -> None:
        read = is_read_by_cosmos(event)
        with self._lock:
            self.seen += 1
            self.forwarded += read
        if read:
            self.callback(event)


class ForwardsReadEvents(DbtLocalBaseOperator):
    """Gives the dbt callbacks registered during the current `run_dbt_runner` call only the events
    Cosmos's parser reads (`ReadEventsForwarder`); callbacks registered before it get every event.

    In `MallardDbtBuildOperator`'s method order this class comes after Cosmos's producer and before
    Cosmos's local operator, so it sees the callback the producer has just added (Cosmos 1.15 gives
    no other way in before that callback converts each event to JSON). With debug logging on for
    Cosmos's parser, nothing is filtered: the task log then shows every event, as with Cosmos alone.
    """

    _callbacks_before_call: tuple[Any, ...] = ()

    def run_dbt_runner(self, command: list[str], env: dict[str, str], cwd: str, **kwargs: Any) -> Any:
        callbacks = self._dbt_runner_callbacks
        if not callbacks or cosmos_parser_logger.isEnabledFor(logging.DEBUG):
            return super().run_dbt_runner(command, env, cwd, **kwargs)
        before = self._callbacks_before_call
        forwarders = []
        filtered = []
        for callback in callbacks:
            if not any(callback is earlier for earlier in before):
                callback = ReadEventsForwarder(callback)
                forwarders.append(callback)
            filtered.append(callback)
        self._dbt_runner_callbacks = filtered
        try:
            return super().run_dbt_runner(command, env, cwd, **kwargs)
        finally:
            self._dbt_runner_callbacks = callbacks
            for forwarder in forwarders:
                self.log.info(
                    "Cosmos's parser was handed %d of dbt's %d events; the others are debug-level events it "
                    "only logs at debug level (turn on debug logging for %s to have them all)",
                    forwarder.forwarded,
                    forwarder.seen,
                    cosmos_parser_logger.name,
                )
