"""The `dbt build` task's watchers: Cosmos's model, test, seed and snapshot sensors, reading one report per node.

The build task (dbt_build_task.py) pushes one XCom per node, `<node>_report`, holding the four keys
Cosmos's watchers read (`<node>_status`, `_compiled_sql`, `_dbt_event`, a model's `_tests_status`).
Each watcher here is Cosmos's own class with its pulls of those keys answered from one pull of the
report (`NodeReportReader`); a node with no report (a model skipped for a stale source before the
build, a build by Cosmos's own producer) is read from Cosmos's keys.

Two of Cosmos's execution API reads per watcher are skipped where Cosmos does not use what they
return: the build task's state on a first try whose result is in the report, and the build's
dbt startup events unless Cosmos's watcher logs at debug level.
"""

from __future__ import annotations

import logging
from typing import Any

from cosmos.operators._watcher.base import BaseConsumerSensor
from cosmos.operators._watcher.base import logger as watcher_log
from cosmos.operators.watcher import (
    DbtRunWatcherOperator,
    DbtSeedWatcherOperator,
    DbtSnapshotWatcherOperator,
    DbtTestWatcherOperator,
)

from include.mallard.dbt_build_task import REPORT_FIELDS, node_key, report_key
from include.mallard.warehouse import active_warehouse, resolve_warehouse_path, writer_turn


class NodeReportReader:
    """A watcher's task instance: pulls of its node's keys from the producer answered from the node's report.

    The report is pulled once; without one (Cosmos's own keys were pushed), the key itself is pulled.
    """

    _NOT_PULLED = object()

    def __init__(self, task_instance: Any, producer_task_id: str, node: str) -> None:
        self.task_instance = task_instance
        self._producer_task_id = producer_task_id
        self._node = node
        self._fields = {f"{node}_{field}": field for field in REPORT_FIELDS}
        self._report: Any = self._NOT_PULLED

    def xcom_pull(self, task_ids: Any = None, *args: Any, key: str = "return_value", **kwargs: Any) -> Any:
        field = self._fields.get(key)
        if field and task_ids == self._producer_task_id and not args and not kwargs:
            report = self.report()
            if report is not None:
                return report.get(field)
        return self.task_instance.xcom_pull(task_ids, *args, key=key, **kwargs)

    def report(self) -> dict[str, Any] | None:
        """The node's report, pulled once; None when the build pushed none."""
        if self._report is self._NOT_PULLED:
            self._report = self.task_instance.xcom_pull(self._producer_task_id, key=report_key(self._node))
        return self._report if isinstance(self._report, dict) else None

    def result(self, of_tests: bool) -> Any:
        """The node's result as Cosmos's watcher reads it (its tests' status for a test task); None if unknown."""
        report = self.report() or {}
        if of_tests:
            return report.get("tests_status")
        status = report.get("status")
        return status.get("status") if isinstance(status, dict) else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.task_instance, name)


class ReadsNodeReport(BaseConsumerSensor):
    """A Cosmos watcher that reads its node's one report (`NodeReportReader`); poke only, never deferred.

    Cosmos asks the execution API for the build task's state at every poke, but reads it only on a
    retry or when the build left no result for the node. On a first try whose node result is in its
    report (every watcher of a build that ran), that round trip is skipped.
    """

    def poke(self, context: Any) -> bool:
        reader = NodeReportReader(context["ti"], self.producer_task_id, node_key(self.model_unique_id))
        return super().poke({**context, "ti": reader})

    def _get_producer_task_status(self, context: Any) -> str | None:
        reader = context["ti"]  # Cosmos's poke passes on the context `poke` gave it
        first_try = isinstance(reader, NodeReportReader) and reader.try_number == 1
        if first_try and reader.result(of_tests=self.is_test_sensor) is not None:
            return None  # not read by Cosmos: no retry, and the node's result is known
        return super()._get_producer_task_status(context)

    def _log_startup_events(self, ti: Any) -> None:
        # Cosmos pulls the build's dbt startup events only to log them at DEBUG: an execution API
        # round trip per model task, for lines the build task's own log already holds.
        if watcher_log.isEnabledFor(logging.DEBUG):
            super()._log_startup_events(ti)

    def _fallback_to_non_watcher_run(self, try_number: int, context: Any) -> bool:
        # Running the node with dbt itself needs the real task instance.
        task_instance = context["ti"]
        if isinstance(task_instance, NodeReportReader):
            context = {**context, "ti": task_instance.task_instance}
        if not active_warehouse().is_embedded:
            return super()._fallback_to_non_watcher_run(try_number, context)
        # Outside the warehouse pool: take turns with the other tasks re-running their node.
        with writer_turn(resolve_warehouse_path()):
            return super()._fallback_to_non_watcher_run(try_number, context)


class MallardDbtRunWatcherOperator(ReadsNodeReport, DbtRunWatcherOperator):
    """Cosmos's model watcher, reading its node's report."""


class MallardDbtTestWatcherOperator(ReadsNodeReport, DbtTestWatcherOperator):
    """Cosmos's watcher of a model's tests, reading its model's report."""


class MallardDbtSeedWatcherOperator(ReadsNodeReport, DbtSeedWatcherOperator):
    """Cosmos's seed watcher, reading its node's report."""


class MallardDbtSnapshotWatcherOperator(ReadsNodeReport, DbtSnapshotWatcherOperator):
    """Cosmos's snapshot watcher, reading its node's report."""


REPORT_READING_WATCHERS: dict[type, type] = {
    DbtRunWatcherOperator: MallardDbtRunWatcherOperator,
    DbtTestWatcherOperator: MallardDbtTestWatcherOperator,
    DbtSeedWatcherOperator: MallardDbtSeedWatcherOperator,
    DbtSnapshotWatcherOperator: MallardDbtSnapshotWatcherOperator,
}


def read_node_reports(tasks: Any) -> int:
    """Make each of Cosmos's model, test, seed and snapshot watchers its report-reading class; returns how many.

    A deferred watcher is polled by Cosmos's trigger, which reads Cosmos's own keys: refused.
    """
    changed = 0
    for task in tasks:
        reading_class = REPORT_READING_WATCHERS.get(type(task))
        if reading_class is None:
            continue
        if task.deferrable:
            raise ValueError(f"{task.task_id}: a deferred watcher cannot read Mallard's node reports")
        task.__class__ = reading_class
        changed += 1
    return changed
