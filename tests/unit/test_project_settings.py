"""mallard.yml (the project's start date, schedule and per-source start dates) and the interval checks it drives."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest

from include.mallard.config import ConfigError
from include.mallard.config.project import (
    DEFAULT_START_DATE,
    PROJECT_SETTINGS_FILE,
    load_project_settings,
    read_source_files,
    settings_problems,
    unknown_source_problems,
)
from include.mallard.interval import Interval, IntervalError, check_not_before, interval_from_context
from include.mallard.paths import SOURCES_DIR

UTC = dt.UTC


def _settings_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mallard.yml"
    path.write_text(text)
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_project_settings(path)
    return [str(problem) for problem in caught.value.problems]


def test_the_shipped_settings_let_history_from_2013_load():
    settings = load_project_settings()
    assert settings.path == PROJECT_SETTINGS_FILE
    assert settings.start_date <= dt.date(2013, 1, 1)
    assert settings.schedule == "0 0 * * *"
    assert settings.source_start("shop") == dt.date(2024, 1, 1)  # its own start date
    assert settings.source_start("stores") == settings.start_date
    assert settings_problems() == []


def test_without_a_settings_file_the_defaults_apply_and_messages_say_so(tmp_path):
    settings = load_project_settings(tmp_path / "mallard.yml")
    assert (settings.start_date, settings.schedule) == (DEFAULT_START_DATE, "0 0 * * *")
    assert "does not exist" in settings.start_setting()


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        # pydantic alone would read 20130101 as seconds since 1970 (1970-08-22): a silent wrong date.
        ("start_date: 20130101\n", "start_date", "is not a date"),
        ("start_date: 2013-01-01 06:00:00\n", "start_date", "without a time"),
        ("start_date: yesterday\n", "start_date", "YYYY-MM-DD"),
        ("schedule: '0 0 * * *'\n", "start_date", "add the field"),
        ("start_date: 2013-01-01\nschedule: '0 0 31 2 *'\n", "schedule", "never fires"),
        ("start_date: 2013-01-01\nstart_dat: 2014-01-01\n", "start_dat", "spelling"),
        ("start_date: 2013-01-01\nsources:\n  Shop: {start_date: 2024-01-01}\n", "sources.Shop", "lowercase"),
        ("start_date: 2013-01-01\nsources:\n  shop: {start: 2024-01-01}\n", "sources.shop.start", "spelling"),
        ("start_date: 2013-01-01\nsources:\n  shop: {start_date: 2012-01-01}\n", "sources.shop.start_date", "back"),
        ("start_date: 2013-01-01\nstart_date: 2014-01-01\n", "(file)", "lines 1 and 2"),
        ("- start_date: 2013-01-01\n", "(file)", "mapping"),
        ("start_date: [2013\n", "(file)", "line 1"),
    ],
)
def test_a_bad_settings_file_names_the_file_the_field_and_the_fix(tmp_path, text, field, words):
    path = _settings_file(tmp_path, text)
    problems = _problems(path)
    assert problems, text
    assert any(str(path) in p and f"field `{field}`" in p and words in p and "Fix:" in p for p in problems), problems


def test_a_source_entry_that_names_no_source_is_reported(tmp_path):
    path = _settings_file(tmp_path, "start_date: 2013-01-01\nsources:\n  shpo: {start_date: 2024-01-01}\n")
    [problem] = unknown_source_problems(load_project_settings(path), read_source_files(SOURCES_DIR))
    assert problem.field == "sources.shpo" and "shop" in problem.message


def test_quoted_dates_are_dates(tmp_path):
    path = _settings_file(tmp_path, "start_date: '2013-01-01'\nsources: {shop: {start_date: '2024-01-01'}}\n")
    settings = load_project_settings(path)
    assert settings.start_date == dt.date(2013, 1, 1) and settings.source_start("shop") == dt.date(2024, 1, 1)


def _context(conf=None, start=dt.datetime(2014, 1, 1, tzinfo=UTC), end=dt.datetime(2014, 1, 2, tzinfo=UTC)):
    return {"dag_run": SimpleNamespace(conf=conf or {}), "data_interval_start": start, "data_interval_end": end}


def test_an_interval_before_the_start_date_is_an_error_naming_the_setting():
    interval = interval_from_context(_context({"start": "2012-12-31", "end": "2013-01-02"}))
    with pytest.raises(IntervalError, match=r"2013-01-01 \(`start_date` in mallard.yml\).*back to 2012-12-31"):
        check_not_before(interval, dt.date(2013, 1, 1), "`start_date` in mallard.yml")
    check_not_before(interval_from_context(_context()), dt.date(2013, 1, 1), "x")  # on or after: fine


def test_a_source_start_date_keeps_only_the_part_of_the_interval_from_it():
    day = dt.datetime(2024, 1, 1, tzinfo=UTC)
    straddling = Interval(day - dt.timedelta(days=3), day + dt.timedelta(days=2))
    assert straddling.not_before(day.date()) == Interval(day, day + dt.timedelta(days=2))
    before = Interval(dt.datetime(2013, 1, 1, tzinfo=UTC), dt.datetime(2014, 1, 2, tzinfo=UTC))
    assert before.not_before(day.date()) == Interval(day, day)  # empty: nothing to load
    after = Interval(day + dt.timedelta(days=5), day + dt.timedelta(days=6))
    assert after.not_before(day.date()) is after


def test_bad_run_conf_is_an_interval_error():
    # An IntervalError fails the task without retries (tasks.task_interval): it is the same on every try.
    for conf in (
        {"start": "yesterday", "end": "2024-01-02"},
        {"start": "2024-01-01"},
        {"start": "2024-01-02", "end": "2024-01-01"},
    ):
        with pytest.raises(IntervalError):
            interval_from_context(_context(conf))
