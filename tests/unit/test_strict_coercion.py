"""dlt's coercions of a dict row's value into its column's type: those that change the value are refused."""

from __future__ import annotations

import datetime as dt

import pytest
from dlt.common.schema import Schema

from include.mallard.strict_coercion import DataItemNormalizer


@pytest.fixture(scope="module")
def normalizer() -> DataItemNormalizer:
    return DataItemNormalizer(Schema("strict"))


@pytest.mark.parametrize(
    ("to_type", "from_type", "value"),
    [
        ("bool", "bigint", 7),  # dlt: true
        ("bool", "double", 0.5),  # dlt: true
        ("bool", "text", "yes"),  # dlt: true
        ("timestamp", "bigint", 12345),  # dlt: 1970-01-01 03:25:45
        ("timestamp", "double", 1.5),
        ("timestamp", "text", "12345"),  # dlt: 1970-01-01 03:25:45
        ("date", "bigint", 20240101),
        ("date", "text", "12345"),  # dlt: 1970-01-01
        ("date", "text", "2024-01-02T10:30:00"),  # dlt: 2024-01-02, the time of day dropped
        ("date", "timestamp", dt.datetime(2024, 1, 2, 10, 30)),  # dlt dropped the time of day
        ("bigint", "text", "00123"),  # dlt: 123
        ("bigint", "text", "0x10"),  # dlt: 16
        ("bigint", "text", "1_000"),  # dlt: 1000
        ("double", "text", "1_000.5"),
        ("double", "text", "nan"),
        ("json", "text", "12"),  # dlt: the number 12
    ],
)
def test_a_coercion_that_changes_the_value_is_refused(normalizer, to_type, from_type, value):
    with pytest.raises(ValueError):
        normalizer.coerce_type(to_type, from_type, value)


@pytest.mark.parametrize(
    ("to_type", "from_type", "value", "expected"),
    [
        ("bool", "bigint", 1, True),
        ("bool", "bigint", 0, False),
        ("bool", "text", "False", False),
        ("double", "bigint", 5, 5.0),
        ("double", "text", "-1.5e3", -1500.0),
        ("bigint", "text", "-42", -42),
        ("bigint", "double", 5.0, 5),
        ("text", "bigint", 7, "7"),
        ("date", "text", "2024-01-02", dt.date(2024, 1, 2)),
        ("date", "timestamp", dt.datetime(2024, 1, 2), dt.date(2024, 1, 2)),
        ("timestamp", "text", "2024-01-02T10:00:00+05:00", dt.datetime(2024, 1, 2, 5, tzinfo=dt.UTC)),
        ("timestamp", "text", "2024-01-02T10:00:00Z", dt.datetime(2024, 1, 2, 10, tzinfo=dt.UTC)),
        ("timestamp", "text", "20240102", dt.datetime(2024, 1, 2)),  # ISO 8601's basic form, not a number
        (
            "timestamp",
            "text",
            "2024-01-02T10:00:00.123456789Z",
            dt.datetime(2024, 1, 2, 10, 0, 0, 123456, tzinfo=dt.UTC),
        ),
        ("date", "text", "20240102", dt.date(2024, 1, 2)),
        ("date", "text", "2024-01-02T00:00:00", dt.date(2024, 1, 2)),
    ],
)
def test_a_coercion_that_keeps_the_value_is_dlts(normalizer, to_type, from_type, value, expected):
    assert normalizer.coerce_type(to_type, from_type, value) == expected
