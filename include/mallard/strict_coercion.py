"""dlt's relational normalizer, with the type coercions that would change a value refused.

When a dict row's value does not have its column's type, dlt's normalizer coerces it, and some
coercions change what the value says without a word: `7` or `0.5` in a boolean column became
`true`, `"yes"` too; `12345` or `"12345"` in a timestamp column became 1970-01-01 03:25:45 (and
`"2024-01-02T10:30"` in a date column lost its time of day); `"00123"`,
`"0x10"` and `"1_000"` in an integer column became 123, 16 and 1000. Refused here, the value goes
where dlt puts a value it cannot coerce: a variant column beside the typed one (`flag__v_bigint`),
which Mallard reports as type drift (or refuses, under `schema_contract: freeze`). A coercion that
keeps the value (`5` into a double column, an ISO time string into a timestamp one) is dlt's.

Used as the pipelines' JSON normalizer (`dlt_steps.STRICT_NORMALIZER_ENV`). Arrow data (CSV,
Parquet, `pyarrow` backends) is not normalized row by row and never passes here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from dlt.common.normalizers.json import relational

from include.mallard.sources.csv_types import PLAIN_INTEGER

_PLAIN_INTEGER = re.compile(PLAIN_INTEGER)
_PLAIN_NUMBER = re.compile(r"\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*")
_BOOLEAN_TEXT = frozenset({"true", "false"})


def _refuse(value: Any) -> None:
    raise ValueError(value)


def _zero_or_one(value: Any) -> None:
    if value not in (0, 1):
        raise ValueError(value)


def _boolean_text(value: str) -> None:
    if value.strip().lower() not in _BOOLEAN_TEXT:
        raise ValueError(value)


def _matches(pattern: re.Pattern[str]) -> Callable[[str], None]:
    def check(value: str) -> None:
        if not pattern.fullmatch(value):
            raise ValueError(value)

    return check


def _number_as_time(value: str) -> None:
    # dlt reads a number it cannot read as ISO 8601 (20240101 it can) as seconds since 1970.
    if _PLAIN_NUMBER.fullmatch(value):
        dt.datetime.fromisoformat(value.strip())


def _midnight(value: dt.datetime) -> None:
    if value.time() != dt.time(0):  # a date column would drop the time of day
        raise ValueError(value)


def _text_as_date(value: str) -> None:
    _number_as_time(value)
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return  # not an ISO time: dlt's parser reads it as a date or refuses it
    _midnight(parsed)


# (column type, value type) -> a check that raises ValueError for a value the coercion would change.
CHECKS: dict[tuple[str, str], Callable[[Any], None]] = {
    **{("bool", numeric): _zero_or_one for numeric in ("bigint", "double", "decimal", "wei")},
    ("bool", "text"): _boolean_text,
    **{(time, number): _refuse for time in ("timestamp", "date") for number in ("bigint", "double")},
    ("timestamp", "text"): _number_as_time,
    ("date", "text"): _text_as_date,
    ("date", "timestamp"): _midnight,
    ("bigint", "text"): _matches(_PLAIN_INTEGER),
    ("double", "text"): _matches(_PLAIN_NUMBER),
    ("decimal", "text"): _matches(_PLAIN_NUMBER),
    ("binary", "bigint"): _refuse,
    ("json", "text"): _refuse,
}


class DataItemNormalizer(relational.DataItemNormalizer):  # the name dlt imports from a normalizer module
    """dlt's relational normalizer whose coercions never change what a value says."""

    def coerce_type(self, to_type: Any, from_type: Any, value: Any) -> Any:
        if (check := CHECKS.get((to_type, from_type))) is not None:
            check(value)
        return super().coerce_type(to_type, from_type, value)
