"""Keys of one record that dlt would load into the same column, keeping one value and dropping the rest.

dlt normalizes every key to snake_case (`a b`, `a-b`, `aB` and `A_B` all become `a_b`) and
flattens nested objects into `parent__child` columns. When two keys of a record meet in one
column, the loaded row keeps one of their values, and nothing says so. A key that becomes one of
dlt's own columns (`_dlt_id`, `_dlt_load_id`: the `_dlt_` prefix) is the same: dlt overwrites it
or, worse, keeps it as its row id or load id. Every kind's resources get the check as a map step
(registry.py), except the files kind's: its JSONL reader runs it to name the line, and its CSV and
Parquet files are checked by their columns (sources/files.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from dlt.common.normalizers.naming.snake_case import NamingConvention

DLT_PREFIX = "_dlt_"  # dlt's own columns: row id, parent id, load id
_NESTED = frozenset({dict, list})  # the value types dlt flattens or makes a child table of


class KeyCollision(NamedTuple):
    first: str  # the keys as written, nested ones as `parent.child`
    second: str  # "" when `first` meets one of dlt's own columns
    column: str  # the column both would load into

    def __str__(self) -> str:
        if not self.second:
            return (
                f"key {self.first!r} would load into {self.column!r}, a column dlt writes itself (its prefix "
                f"{DLT_PREFIX} is dlt's), so its values would be overwritten or taken for dlt's ids"
            )
        return (
            f"keys {self.first!r} and {self.second!r} would both load into column {self.column!r}, keeping one "
            "value and dropping the other"
        )


class CollisionFinder:
    """Finds a `KeyCollision` in a record; remembers the flat key sets it found none in (rows repeat them)."""

    def __init__(self) -> None:
        self._naming = NamingConvention()  # dlt's default, which Mallard's pipelines use
        self._clean_flat_shapes: set[tuple[str, ...]] = set()
        self._columns: dict[tuple[str, str], str] = {}  # (parent column, key) -> column, as dlt names it

    def find(self, record: dict[str, Any]) -> KeyCollision | None:
        shape = tuple(record)
        flat = _NESTED.isdisjoint(map(type, record.values()))  # faster than isinstance() per value
        if flat and shape in self._clean_flat_shapes:
            return None
        found = self._in_table(record, "", "", {})
        if found is None and flat:
            self._clean_flat_shapes.add(shape)
        return found

    def _column(self, column_prefix: str, key: str) -> str:
        column = self._naming.make_path(column_prefix, self._naming.normalize_identifier(key))
        self._columns[(column_prefix, key)] = column
        return column

    def _in_table(
        self, record: dict[str, Any], column_prefix: str, key_prefix: str, columns: dict[str, str]
    ) -> KeyCollision | None:
        """Walk one table's columns: nested objects flatten into it, lists are child tables of their own."""
        for key, value in record.items():
            column = self._columns.get((column_prefix, key)) or self._column(column_prefix, key)
            shown = f"{key_prefix}.{key}" if key_prefix else key
            if isinstance(value, dict):
                if found := self._in_table(value, column, shown, columns):
                    return found
                continue
            if not isinstance(value, list):
                if column.startswith(DLT_PREFIX) and not column_prefix:
                    return KeyCollision(shown, "", column)
                if (other := columns.setdefault(column, shown)) != shown:
                    return KeyCollision(other, shown, column)
                continue
            for element in value:  # a list is a child table of its own
                if isinstance(element, dict) and (found := self._in_table(element, "", f"{shown}[]", {})):
                    return found
        return None


class KeyCollisionError(ValueError):
    """A record with two keys that dlt would load into one column."""


def without_key_collisions(source_name: str, table: str) -> Callable[[Any], Any]:
    """A dlt map step that fails on a record whose keys would load into one column (any kind's dict rows)."""
    finder = CollisionFinder()

    def check(record: Any) -> Any:
        if isinstance(record, dict) and (collision := finder.find(record)) is not None:
            raise KeyCollisionError(
                f"source {source_name!r}, table {table!r}: in a record, {collision}. Fix: rename or drop the key "
                "before the load (in a python source's code; for an API or a database, where its data is made)"
            )
        return record

    return check
