"""Check a cron expression with croniter, the library Airflow's cron timetables use.

Five fields (minute hour day-of-month month day-of-week) or a preset such as @daily, as Airflow
documents them. Beyond croniter's syntax check, an expression must fire at least once (croniter
accepts `0 0 31 2 *`, and Airflow's DAG processor then fails on it at every parse).
"""

from __future__ import annotations

import datetime as dt

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

CRON_FIX = "use 5 fields (minute hour day-of-month month day-of-week) such as '0 6 * * *', or a preset like @daily"
PRESETS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
# Leap years come every 4 years (and 2100 skips one): looking this far ahead finds Feb 29.
_SEARCH_START = dt.datetime(2024, 1, 1)


def _bad_field(fields: list[str]) -> str | None:
    """The first field that croniter rejects on its own (every other field `*`), for the message."""
    for index, value in enumerate(fields):
        alone = ["*"] * len(fields)
        alone[index] = value
        if not croniter.is_valid(" ".join(alone)):
            return f"{_FIELD_NAMES[index]} {value}"
    return None


def cron_problem(expression: str) -> str | None:
    """None if `expression` is a valid cron expression that fires, else what is wrong with it."""
    text = expression.strip().lower()
    if text.startswith("@"):
        return None if text in PRESETS else f"unknown preset {expression!r}; use one of {', '.join(PRESETS)}"
    fields = text.split()
    if len(fields) != 5:
        return (
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), {expression!r} has "
            f"{len(fields)}; e.g. '0 6 * * *' is every day at 06:00 UTC"
        )
    try:
        schedule = croniter(text, _SEARCH_START)
    except (CroniterBadCronError, ValueError) as error:
        where = _bad_field(fields) or "the combination of fields"
        return f"{where} is not valid cron syntax (Airflow's croniter says: {error})"
    try:
        schedule.get_next(dt.datetime)
    except CroniterBadDateError:
        return f"{expression!r} never fires (no date matches every field, e.g. February 31st)"
    return None
