"""The time slice a DAG run loads.

A scheduled or backfill run loads its data interval. A manual run may name its own range in the
run conf (`{"start": "2024-01-01", "end": "2024-01-08"}`); without one it loads its data
interval too, which for a manual trigger is the last complete day.

No run loads before the project's start date (mallard.yml `start_date`): `check_not_before` makes
that an error naming the setting, because Airflow itself would silently run no task at all for a
logical date before a DAG's start_date. A source with a later start date of its own loads only the
part of the interval from that date on (`Interval.not_before`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
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

    def not_before(self, day: dt.date) -> Interval:
        """The part of the interval from `day` (UTC midnight) on; empty, at `day`, if it ends before."""
        first = midnight(day)
        if self.start >= first:
            return self
        return Interval(first, max(self.end, first))


class IntervalError(ValueError):
    """A run's interval cannot be loaded: a bad run conf, or a range before the start date."""


def midnight(day: dt.date) -> dt.datetime:
    """UTC midnight at the start of `day`."""
    return dt.datetime.combine(day, dt.time(), UTC)


def check_not_before(interval: Interval, earliest: dt.date, setting: str) -> None:
    """Raise IntervalError if `interval` begins before `earliest` (set by `setting`, named in the message)."""
    if interval.start < midnight(earliest):
        raise IntervalError(
            f"the run's interval {interval} begins before the start date {earliest} ({setting}), and no run loads "
            f"data before it. Fix: move that start date back to {interval.start.date()} or earlier (then rerun), or "
            "run an interval that begins on or after it"
        )


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
            raise IntervalError(
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
            raise IntervalError(f"run conf has {'end' if missing == ['start'] else 'start'} but not {missing[0]!r}")
        try:
            return Interval(parse_bound(conf["start"], "start"), parse_bound(conf["end"], "end"))
        except IntervalError:
            raise
        except ValueError as error:  # the end before the start
            raise IntervalError(f"run conf: {error}") from None
    if data_interval_start is None or data_interval_end is None:
        raise IntervalError("the DAG run has no data interval; give `start` and `end` in the run conf")
    return Interval(data_interval_start.astimezone(UTC), data_interval_end.astimezone(UTC))


def interval_from_context(context: Mapping[str, Any]) -> Interval:
    """The interval of the running task (see `interval_for_run`)."""
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None) if dag_run is not None else None
    return interval_for_run(conf, context.get("data_interval_start"), context.get("data_interval_end"))


def interval_bound(
    dag_run: Any,
    data_interval_start: Any,
    data_interval_end: Any,
    which: str,
    triggering_asset_events: Any = None,
    *,
    earliest: dt.date | None = None,
    setting: str = "the project's `start_date`",
) -> str:
    """Template macro: the run's interval `start` or `end` as ISO text, passed to dbt in an env var.

    With `earliest`, an interval before it fails the render (a DAG without sources runs dbt first).
    `triggering_asset_events` is for the asset-scheduled DAG's macro (`asset_run_bound`), unused here.
    """
    interval = interval_for_run(getattr(dag_run, "conf", None), data_interval_start, data_interval_end)
    if earliest is not None:
        check_not_before(interval, earliest, setting)
    return getattr(interval, which).isoformat()


def interval_of_events(triggering_asset_events: Mapping[Any, Sequence[Any]] | None) -> Interval | None:
    """The span of the intervals the triggering loads wrote (their Asset events' extra `interval`)."""
    spans = []
    for events in (triggering_asset_events or {}).values():
        for event in events:
            bounds = (getattr(event, "extra", None) or {}).get("interval")
            if bounds:
                spans.append((parse_bound(bounds[0], "start"), parse_bound(bounds[1], "end")))
    if not spans:
        return None
    return Interval(min(start for start, _ in spans), max(end for _, end in spans))


def asset_run_bound(
    dag_run: Any, data_interval_start: Any, data_interval_end: Any, which: str, triggering_asset_events: Any = None
) -> str:
    """Template macro of the asset-scheduled dbt DAG: the `start`/`end` its incremental models rebuild.

    The run conf's `start`/`end` when given; else the span of the intervals its triggering Asset
    events carry (raw data is never deleted, so rebuilding a wider span is still exact); else ''
    (a manual run without conf): the incremental models then rebuild from all raw data.
    """
    conf = getattr(dag_run, "conf", None) or {}
    if "start" in conf or "end" in conf:
        return getattr(interval_for_run(conf, None, None), which).isoformat()
    interval = interval_of_events(triggering_asset_events)
    return getattr(interval, which).isoformat() if interval else ""
