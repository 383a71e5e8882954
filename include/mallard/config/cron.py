"""Check a cron expression the way Airflow's cron timetables read it (croniter syntax), without importing them.

Five fields (minute hour day-of-month month day-of-week) or a preset such as @daily. Each field
is a comma list of `*`, `N`, `N-M`, with an optional `/step`; months and weekdays accept names
(jan, mon). tests/unit/test_sources_config.py checks that this agrees with croniter.
"""

from __future__ import annotations

import re

_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec"
_DAYS = "sun mon tue wed thu fri sat"
PRESETS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS.split())}),
    # croniter accepts 7 for Sunday, like Vixie cron.
    ("day of week", 0, 7, {d: i for i, d in enumerate(_DAYS.split())}),
)
_PART = re.compile(r"^(?P<range>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>[0-9]+))?$")


def _value(text: str, low: int, high: int, names: dict[str, int], field: str) -> tuple[int | None, str | None]:
    if text.isdigit():
        number = int(text)
        if not low <= number <= high:
            return None, f"{field} {number} is out of range {low}-{high}"
        return number, None
    if text in names:
        return names[text], None
    return None, f"{field} has {text!r}, which is not a number" + (" or a name" if names else "")


def cron_problem(expression: str) -> str | None:
    """None if `expression` is a valid cron expression, else what is wrong with it."""
    text = expression.strip().lower()
    if text.startswith("@"):
        return None if text in PRESETS else f"unknown preset {expression!r}; use one of {', '.join(PRESETS)}"
    fields = text.split()
    if len(fields) != 5:
        return (
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), {expression!r} has "
            f"{len(fields)}; e.g. '0 6 * * *' is every day at 06:00 UTC"
        )
    for value, (field, low, high, names) in zip(fields, _FIELDS, strict=True):
        for part in value.split(","):
            match = _PART.match(part)
            if not match:
                return f"{field} field {value!r} is not valid cron syntax"
            if match["step"] is not None and int(match["step"]) == 0:
                return f"{field} step must be at least 1"
            if match["range"] == "*":
                continue
            bounds = match["range"].split("-")
            numbers = []
            for bound in bounds:
                number, problem = _value(bound, low, high, names, field)
                if problem:
                    return problem
                numbers.append(number)
            if len(numbers) == 2 and numbers[0] > numbers[1]:
                return f"{field} range {match['range']!r} goes backwards"
    return None
