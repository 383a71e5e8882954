"""The time slice a DAG run loads.

A scheduled or backfill run loads its data interval. A manual run may name its own range in the
run conf (`{"start": "2024-01-01", "end": "2024-01-08"}`); without one it loads its data
interval too, which for a manual trigger is the last complete day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

UTC = dt.UTC


@dataclass(frozen=True)
class Interval:
    """A half-open time range [start, end) in UTC."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("interval bounds must be timezone-aware")
        if self.end < self.start:
            raise ValueError(f"interval end {self.end.isoformat()} is before its start {self.start.isoformat()}")

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def parse_bound(value: Any, field: str) -> dt.datetime:
    """Parse a conf bound: a date or an ISO datetime; naive values are UTC."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime.combine(value, dt.time())
    else:
        try:
            parsed = dt.datetime.fromisoformat(str(value))
        except ValueError as error:
            raise ValueError(
                f"run conf field {field!r} = {value!r} is not a date or ISO datetime; use e.g. 2024-01-01"
            ) from error
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def interval_for_run(
    conf: Mapping[str, Any] | None, data_interval_start: dt.datetime | None, data_interval_end: dt.datetime | None
) -> Interval:
    """The run conf's `start`/`end` if given, else the data interval."""
    conf = conf or {}
    if "start" in conf or "end" in conf:
        missing = [key for key in ("start", "end") if key not in conf]
        if missing:
            raise ValueError(f"run conf has {'end' if missing == ['start'] else 'start'} but not {missing[0]!r}")
        return Interval(parse_bound(conf["start"], "start"), parse_bound(conf["end"], "end"))
    if data_interval_start is None or data_interval_end is None:
        raise ValueError("the DAG run has no data interval; give `start` and `end` in the run conf")
    return Interval(data_interval_start.astimezone(UTC), data_interval_end.astimezone(UTC))


def interval_from_context(context: Mapping[str, Any]) -> Interval:
    """The interval of the running task (see `interval_for_run`)."""
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None) if dag_run is not None else None
    return interval_for_run(conf, context.get("data_interval_start"), context.get("data_interval_end"))


def interval_bound(dag_run: Any, data_interval_start: Any, data_interval_end: Any, which: str) -> str:
    """Template macro: the run's interval `start` or `end` as ISO text, passed to dbt as a var."""
    interval = interval_for_run(getattr(dag_run, "conf", None), data_interval_start, data_interval_end)
    return getattr(interval, which).isoformat()
