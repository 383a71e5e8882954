"""The step that fails a table's extract on rows without a cursor value (`on_null_cursor: fail`)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from include.mallard.sources.hints import NullCursorRows, null_cursor_check


def test_dict_rows_fail_on_a_null_or_missing_cursor_at_a_dotted_path():
    check = null_cursor_check("orders", "meta.updated_at")
    good = [{"id": 1, "meta": {"updated_at": "2024-01-01"}}]
    assert check(good) is good
    with pytest.raises(NullCursorRows) as raised:
        check([*good, {"id": 2, "meta": {"updated_at": None}}, {"id": 3, "meta": {}}, {"id": 4}])
    assert (raised.value.table, raised.value.cursor, raised.value.count) == ("orders", "meta.updated_at", 3)
    with pytest.raises(NullCursorRows):
        check({"id": 5, "meta": None})  # a single item, not a list


def test_arrow_items_count_the_cursor_columns_nulls():
    check = null_cursor_check("t", "at")
    batch = pa.record_batch({"id": [1, 2], "at": pa.array([1, 2], pa.int64())})
    assert check(batch) is batch
    table = pa.table({"id": [1, 2, 3], "at": pa.array([1, None, None], pa.int64())})
    with pytest.raises(NullCursorRows) as raised:
        check(table)
    assert raised.value.count == 2
