"""Keys of one record that dlt would load into one column (keeping one value) are found, with their names."""

from __future__ import annotations

import pytest

from include.mallard.sources.column_names import CollisionFinder, KeyCollision


@pytest.mark.parametrize(
    ("record", "collision"),
    [
        ({"id": 1, "a b": 1, "a_b": 2}, KeyCollision("a b", "a_b", "a_b")),
        ({"A": 1, "a": 2}, KeyCollision("A", "a", "a")),
        ({"userId": 1, "user_id": 2}, KeyCollision("userId", "user_id", "user_id")),
        ({"a": {"b c": 1, "b-c": 2}}, KeyCollision("a.b c", "a.b-c", "a__b_c")),
        ({"a": {"b": 1}, "A": {"b": 2}}, KeyCollision("a.b", "A.b", "a__b")),
        ({"lines": [{"sku": "x"}, {"x y": 1, "x_y": 2}]}, KeyCollision("lines[].x y", "lines[].x_y", "x_y")),
        # dlt's own columns: it overwrites them or takes the values for its row and load ids
        ({"id": 1, "_dlt_load_id": "x"}, KeyCollision("_dlt_load_id", "", "_dlt_load_id")),
        ({"id": 1, "_DLT_ID": "x"}, KeyCollision("_DLT_ID", "", "_dlt_id")),
        ({"lines": [{"_dlt_parent_id": "x"}]}, KeyCollision("lines[]._dlt_parent_id", "", "_dlt_parent_id")),
    ],
)
def test_keys_that_normalize_to_one_column_are_a_collision(record, collision):
    assert CollisionFinder().find(record) == collision


@pytest.mark.parametrize(
    "record",
    [
        {"id": 1, "name": "x", "address": {"city": "y", "zip": "z"}},
        {"a": {"b": 1}, "a__b": 2},  # a__b -> a_b, the nested b -> a__b: two columns
        {"a b": [1, 2], "a_b": 3},  # the list is a child table (<table>__a_b), not a column
        {"lines": [{"sku": "x"}], "sku": "y"},  # each list element is a row of its own table
        {"meta": {"_dlt_id": "x"}},  # flattened: meta___dlt_id, not dlt's column
    ],
)
def test_keys_of_distinct_columns_are_not_a_collision(record):
    assert CollisionFinder().find(record) is None


def test_a_flat_key_set_found_clean_is_remembered_and_a_new_one_still_checked():
    finder = CollisionFinder()
    assert finder.find({"id": 1, "name": "x"}) is None
    assert finder.find({"id": 2, "name": "y"}) is None
    assert finder.find({"id": 3, "name": "z", "Name": "w"}) == KeyCollision("name", "Name", "name")
