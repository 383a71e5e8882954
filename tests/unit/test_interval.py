"""Which slice a run loads: the run conf's range if given, else the data interval."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from include.mallard.interval import Interval, interval_from_context

UTC = dt.UTC
START, END = dt.datetime(2024, 1, 7, tzinfo=UTC), dt.datetime(2024, 1, 8, tzinfo=UTC)


def _context(conf=None):
    return {"dag_run": SimpleNamespace(conf=conf or {}), "data_interval_start": START, "data_interval_end": END}


def test_data_interval_is_used_by_default():
    assert interval_from_context(_context()) == Interval(START, END)


def test_run_conf_range_wins_and_dates_mean_utc_midnight():
    interval = interval_from_context(_context({"start": "2024-01-01", "end": "2024-01-03T12:00:00+00:00"}))
    assert interval == Interval(dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 3, 12, tzinfo=UTC))


def test_half_a_range_is_an_error():
    with pytest.raises(ValueError, match="'end'"):
        interval_from_context(_context({"start": "2024-01-01"}))


def test_unparseable_bound_names_the_field():
    with pytest.raises(ValueError, match=r"'start'.*2024-01-01"):
        interval_from_context(_context({"start": "yesterday", "end": "2024-01-02"}))


def test_reversed_range_is_an_error():
    with pytest.raises(ValueError, match="before its start"):
        interval_from_context(_context({"start": "2024-01-05", "end": "2024-01-02"}))
