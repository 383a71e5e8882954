"""CSV columns typed so that every value loads as written, or the read fails naming it.

DuckDB types a CSV column from a sample (the first 20,480 rows) and casts every value to that
type, and some casts change a value without an error: in an integer column `00123` becomes 123,
`12.7` 13, `0x10` 16 and `1_000` 1000; in a column of times without an offset `10:00+05:00`
becomes 10:00. Such columns are read as text and typed in SQL, where a value that would not read
back as written raises an error that `refused_value` parses (file_readers.py words it).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Collection
from typing import Any, NamedTuple

from dlt.sources.filesystem import FileItemDict

INTEGER_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
)
# An integer as DuckDB writes one back: no leading zero, point, exponent, hex or underscore.
PLAIN_INTEGER = r"\s*[+-]?(0|[1-9][0-9]*)\s*"
UTC_OFFSET = r"([zZ]|[+-][0-9]{2}(:?[0-9]{2})?)\s*$"
UNREADABLE, OFFSET = "UNREADABLE", "OFFSET"  # problems besides a changed integer (whose problem is its type)
_MARK = "mallard-unfaithful-value"  # starts the message of the error a failed check raises in DuckDB
_REFUSAL = re.compile(_MARK + r"\x1f(.*?)\x1f(.*?)\x1f(.*)", re.DOTALL)
_UNDECLARED = re.compile(r"COLUMN_TYPES error: Columns with names: (.*?) do not exist")


class RefusedValue(NamedTuple):
    column: str
    problem: str  # UNREADABLE, OFFSET, or the integer type the value would have changed in
    value: str


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _refusal(column: str, problem_sql: str, value_sql: str) -> str:
    """A DuckDB `error(...)` call whose message `refused_value` parses back."""
    mark, separator = _sql_text(f"{_MARK}\x1f{column}\x1f"), _sql_text("\x1f")
    return f"error(concat({mark}, {problem_sql}, {separator}, {value_sql}))"


def _typed(column: str, duckdb_type: str, as_text: Any) -> str | None:
    """The SQL that types a column read as text as DuckDB's CSV reader would, refusing a value that
    would not keep its form; None for a column this cannot check. A value that is no number or time
    at all (`NA`) is refused as UNREADABLE, as DuckDB's own read would fail on it."""
    text = _quoted(column)
    typed = f"TRY_CAST({text} AS {duckdb_type})"
    readable = f"COALESCE({typed}, {_refusal(column, _sql_text(UNREADABLE), text)})"
    if duckdb_type in INTEGER_TYPES:
        fits = f"regexp_full_match({text}, {_sql_text(PLAIN_INTEGER)})"
        problem = f"CASE WHEN {typed} IS NULL THEN {_sql_text(UNREADABLE)} ELSE {_sql_text(duckdb_type)} END"
        return (
            f"CASE WHEN {text} IS NULL THEN NULL WHEN {fits} THEN {readable} ELSE {_refusal(column, problem, text)} END"
        )
    if duckdb_type == "TIMESTAMP":
        # Only an ISO column: its parse is CAST's. A form DuckDB sniffed (13/01/2024 10:00) stays as read.
        first = as_text.filter(f"{text} IS NOT NULL").project(f"{typed} IS NOT NULL").limit(1)
        if first.fetchall() == [(False,)]:
            return None
        offset = f"regexp_matches({text}, {_sql_text(UTC_OFFSET)})"
        return (
            f"CASE WHEN {text} IS NULL THEN NULL WHEN NOT {offset} THEN {readable} "
            f"ELSE {_refusal(column, _sql_text(OFFSET), text)} END"
        )
    return None


def faithful(relation: Any, reread: Callable[[dict[str, str]], Any], declared: Collection[str]) -> Any:
    """`relation` (read with the sniffer's types) with its integer and time columns checked.

    `reread(dtype)` reads the file again with the given columns as text. Columns in `declared`
    (the table's `column_types`) are read as declared and not checked.
    """
    suspects = {
        name: str(kind)
        for name, kind in zip(relation.columns, relation.types, strict=True)
        if name not in declared and (str(kind) in INTEGER_TYPES or str(kind) == "TIMESTAMP")
    }
    if not suspects:
        return relation
    as_text = reread({name: "VARCHAR" for name in suspects})
    checks = {name: _typed(name, kind, as_text) for name, kind in suspects.items()}
    if not any(checks.values()):
        return relation
    columns = (f"{checks[name]} AS {_quoted(name)}" if checks.get(name) else _quoted(name) for name in as_text.columns)
    return as_text.project(", ".join(columns))


def refused_value(error: Exception) -> RefusedValue | None:
    """The value a check in `faithful` refused, or None when `error` is another error."""
    found = _REFUSAL.search(str(error))
    if found is None:
        return None
    return RefusedValue(found.group(1), found.group(2), found.group(3).splitlines()[0])


def undeclared_columns(error: Exception) -> str | None:
    """The columns `column_types` names that the file lacks (DuckDB's words), or None."""
    found = _UNDECLARED.search(str(error))
    return found.group(1) if found else None


def line_of_value(item: FileItemDict, delimiter: str, column: str, value: str) -> int | None:
    """The line (DuckDB's count: the header is line 1) of the first row whose `column` is `value`."""
    with item.open(mode="rt", newline="", encoding="utf-8", errors="replace") as file:
        rows = csv.reader(file, delimiter=delimiter)
        header = next(rows, [])
        if column not in header:
            return None
        index = header.index(column)
        for number, row in enumerate(rows, start=2):
            if index < len(row) and row[index] == value:
                return number
    return None
