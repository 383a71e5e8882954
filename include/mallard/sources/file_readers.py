"""The reader of one CSV file for `kind: files` (DuckDB); JSON Lines and Parquet are in record_readers.py.

It yields the rows in Arrow batches. A file that cannot be read as its table says fails with a
`MalformedFileError` naming the source, the file, the line and the config field to change.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from dlt.sources.filesystem import FileItemDict

from include.mallard.sources import csv_types

# Rows per Arrow batch handed to dlt. With dlt's 5,000, per-batch overhead made large files ~10%
# slower (docs/benchmarks.md); 100,000 rows of ten columns are about 10 MB.
CSV_BATCH_ROWS = 100_000
# DuckDB's CSV reader keeps a few buffers per thread in flight. At its default size (32 MiB) a 5M-row
# file's task peaked 1.5x higher than a 100k-row file's; at 3 MiB 1.2x, as fast (bench/scale.py).
# Not with `max_line_size` set too: that pair drops a long last line without an error (DuckDB 2.0).
CSV_BUFFER_BYTES = 3 << 20
# DuckDB's own line limit. It fails on a longer line, except the last line of a file, which it
# drops without an error when it is longer than its buffer: Mallard checks that line itself.
CSV_MAX_LINE_BYTES = 2 << 20
ISO_DATE = "%Y-%m-%d"  # the one date form a CSV column is typed DATE from; others load as text
SAMPLE_BYTES = 1 << 16
# The delimiters a header is tried with when the configured one leaves it in one piece, as YAML.
OTHER_DELIMITERS = {",": "','", ";": "';'", "\t": '"\\t"', "|": "'|'"}
# Mixed CRLF/LF endings fail DuckDB's strict mode; its non-strict mode reads them, but only with
# the escape set (or "" stays doubled) and lineterminator "\\n" (2 characters: backslash, n).
MIXED_ENDINGS = {"strict_mode": False, "escapechar": '"', "lineterminator": "\\n"}
_DUCKDB_LINE = re.compile(r"CSV Error on Line: (\d+)")
_DUCKDB_COLUMNS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")
_DUCKDB_REASON = re.compile(
    r"Value with unterminated quote found|Invalid unicode \(byte sequence mismatch\) detected|"
    r"Error when converting column \"[^\"]*\"\. Could not convert string \"[^\"]*\" to '[A-Z]+'|"
    r"The CSV Parser state machine reached an invalid state"
)


def _is_local_file(item: FileItemDict) -> bool:
    protocol = item.fsspec.protocol if item.fsspec is not None else ()
    return "file_content" not in item and "file" in protocol


class MalformedFileError(ValueError):
    """A source file that cannot be read as its table's format says; names the file and line."""


@dataclass(frozen=True)
class CsvLayout:
    """How a table's CSV files are read, and where in the config each setting lives (for errors)."""

    delimiter: str = ","
    null_values: tuple[str, ...] = ("",)
    field: str = "table"  # where the table is in its source file, e.g. "tables[0]"
    column_types: tuple[tuple[str, str], ...] = ()  # (column, DuckDB type) the config declares


def _head(item: FileItemDict) -> bytes:
    with item.open() as file:  # decompresses .gz
        return file.read(SAMPLE_BYTES)


def _header_line(head: bytes) -> str:
    return re.split(rb"\r\n|\n|\r", head, maxsplit=1)[0].decode("utf-8", errors="replace").lstrip("\ufeff")


def _delimiter_that_splits(header: str, delimiter: str) -> str | None:
    """Another common delimiter that splits a header the configured one leaves in one piece."""
    if len(next(csv.reader([header], delimiter=delimiter), [])) > 1:
        return None
    others = (other for other in OTHER_DELIMITERS if other != delimiter)
    return next((other for other in others if len(next(csv.reader([header], delimiter=other), [])) > 1), None)


def _ending_at(data: bytes, newline: int) -> bytes:
    return b"\r\n" if newline > 0 and data[newline - 1 : newline] == b"\r" else b"\n"


def _is_local_uncompressed(item: FileItemDict) -> bool:
    return _is_local_file(item) and item.get("encoding") != "gzip"


def _tail(item: FileItemDict) -> bytes:
    """The file's last bytes, twice DuckDB's line limit: read from its end when it is local and
    uncompressed, else read through (one more pass)."""
    window = 2 * CSV_MAX_LINE_BYTES
    if _is_local_uncompressed(item):
        with Path(item.local_file_path).open("rb") as file:
            file.seek(max(0, item["size_in_bytes"] - window))
            return file.read()
    tail = b""
    with item.open() as file:
        while chunk := file.read(1 << 20):
            tail = (tail + chunk)[-window:]
    return tail


def _ends_differ(item: FileItemDict, head: bytes, tail: bytes) -> bool:
    """A cheap sample: the header and the last line of a local uncompressed file end differently."""
    first = head.find(b"\n")
    if first < 0 or not _is_local_uncompressed(item):
        return False
    sample = tail[-SAMPLE_BYTES:]
    return _ending_at(head, first) != _ending_at(sample, sample.rfind(b"\n"))


def _last_line_bytes(tail: bytes) -> int:
    """The length of the last line of `tail` that is not blank (all of `tail` when it holds no line end)."""
    content = tail.rstrip(b"\r\n\t ")
    return len(content) - content.rfind(b"\n") - 1


def _mixes_endings(item: FileItemDict) -> bool:
    """A full scan (only after a failed read): the file has both CRLF and bare LF line ends."""
    crlf = lf = 0
    last = b""
    with item.open() as file:
        while chunk := file.read(1 << 20):
            crlf += chunk.count(b"\r\n") + (last == b"\r" and chunk[:1] == b"\n")
            lf += chunk.count(b"\n")
            last = chunk[-1:]
    return 0 < crlf < lf


def _shown(delimiter: str) -> str:
    return "a tab" if delimiter == "\t" else repr(delimiter)


def _ragged_row(item: FileItemDict, delimiter: str) -> str | None:
    """Python's csv over the whole file: the first row whose field count differs from the header's.

    Run before DuckDB's non-strict mode, which reads mixed line endings but drops a row's extra
    fields without a word. Rows are counted as DuckDB counts its lines: a quoted value over several
    lines counts once.
    """
    with item.open(mode="rt", newline="", encoding="utf-8", errors="replace") as file:
        rows = csv.reader(file, delimiter=delimiter, strict=True)
        header = next(rows, [])
        number = 1
        try:
            for number, row in enumerate(rows, start=2):
                if len(row) != len(header):
                    return f"line {number} has {len(row)} fields, the header has {len(header)}"
        except csv.Error as error:
            return f"line {number + 1}: {error} (a quote that is never closed?)"
    return None


def _where(error: Exception) -> str | None:
    """DuckDB's line and reason, without the kilobytes of options it adds; None when it names no line."""
    text = str(error)
    line = _DUCKDB_LINE.search(text)
    if line is None:
        return None
    # DuckDB's "Original Line" is left out: it is sometimes the line before (the header for line 2).
    if columns := _DUCKDB_COLUMNS.search(text):
        return f"line {line.group(1)} has {columns.group(2)} fields, the header has {columns.group(1)}"
    reason = _DUCKDB_REASON.search(text)
    return f"line {line.group(1)}: {reason.group(0) if reason else text.splitlines()[0][:200]}"


def _fix(where: str, layout: CsvLayout, mixed_endings: bool) -> str:
    """What to change, in the file or in the config field that reads it."""
    if "fields, the header has" in where:
        return f"fix the row, or set `{layout.field}.delimiter` if the file uses another delimiter"
    if "unterminated quote" in where or "never closed" in where:
        return 'close the quote in the file: a value that starts with " must end with "'
    if "Invalid unicode" in where:
        return "re-save the file as UTF-8"
    if "Could not convert" in where:
        return (
            f"fix the value, give its column a type in `{layout.field}.column_types` (e.g. text), "
            f"or add it to `{layout.field}.null_values` if it means a missing value"
        )
    if mixed_endings:
        return "the file mixes CRLF and LF line endings: convert it to one (e.g. with dos2unix)"
    return f"fix or remove the file, or check `{layout.field}.delimiter`"


def _invalid(name: str, layout: CsvLayout, where: str | None, mixed_endings: bool, said: str = "") -> Exception:
    return MalformedFileError(
        f"{name} is not a valid CSV file with delimiter {_shown(layout.delimiter)} and a header row "
        f"({where or 'no line named'}). Fix: {_fix(where or '', layout, mixed_endings)}.{said}"
    )


def _relation(connection: Any, item: FileItemDict, options: dict[str, Any], files: ExitStack) -> Any:
    # A local file is read by path, DuckDB's own reader: faster and leaner than a Python file object.
    target = item.local_file_path if _is_local_file(item) else files.enter_context(item.open())
    return connection.read_csv(target, **options)


def _line_of_sniff_error(connection: Any, item: FileItemDict, options: dict[str, Any], header: str) -> str | None:
    """DuckDB's sniffer fails without a line: read again without sniffing, all text, to get one."""
    width = len(next(csv.reader([header], delimiter=options["sep"]), []))
    columns = {f"c{index}": "VARCHAR" for index in range(width)}
    with ExitStack() as files:
        try:
            plain = options | {"auto_detect": False, "escapechar": '"', "columns": columns}
            _relation(connection, item, plain, files).aggregate("count(*)").fetchall()
        except (duckdb.Error, OSError) as error:
            return _where(error)
    return None


def _empty_columns_untyped(batch: Any, declared: list[str]) -> Any:
    """`batch` with each column that has no value typed null rather than DuckDB's guess (VARCHAR).

    A day's export with an empty column is no evidence of its type: typed VARCHAR it failed the run
    as type drift against the table's BIGINT, or against another file's. dlt loads a null column
    into the table's type, and adds no column for it to a new table until it has values.
    """
    empty = [
        index
        for index, column in enumerate(batch.columns)
        if batch.num_rows and column.null_count == batch.num_rows and batch.schema.names[index] not in declared
    ]
    if not empty:
        return batch
    from dlt.common.libs.pyarrow import pyarrow

    arrays = [pyarrow.nulls(batch.num_rows) if index in empty else column for index, column in enumerate(batch.columns)]
    return pyarrow.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _refused(name: str, item: FileItemDict, layout: CsvLayout, error: Exception) -> Exception | None:
    """The error for a value csv_types refused or a column `column_types` names that the file lacks; else None."""
    if (missing := csv_types.undeclared_columns(error)) is not None:
        return MalformedFileError(
            f"{name} has no column {missing}, which `{layout.field}.column_types` names. "
            f"Fix: use the header's names in `{layout.field}.column_types`, or remove the entry"
        )
    if (refused := csv_types.refused_value(error)) is None:
        return None
    column, problem, value = refused
    line = csv_types.line_of_value(item, layout.delimiter, column, value)
    where = f"line {line}" if line else "a line"
    declare = f"`{layout.field}.column_types: {{{column}: "
    if problem == csv_types.UNREADABLE:  # as DuckDB's own read reports it
        return _invalid(
            name,
            layout,
            f'{where}: Error when converting column "{column}". Could not convert string "{value}"',
            mixed_endings=False,
        )
    if problem == csv_types.OFFSET:
        return MalformedFileError(
            f"{name}: {where}, column {column!r}: {value!r} has a UTC offset, but the column's first rows have "
            "none, so DuckDB would load it without the offset (hours off). "
            f"Fix: set {declare}timestamptz}}` to keep each offset, or write every time in one form"
        )
    return MalformedFileError(
        f"{name}: {where}, column {column!r}: {value!r} is not a plain integer, but DuckDB typed the column "
        f"{problem} (from a sample of the file's first rows) and would load it changed (a leading zero, "
        f"a fraction, a hex or 1_000 form lost). Fix: set {declare}text}}` to keep the values as written "
        "(`double` for numbers with a fraction), or fix the value"
    )


def csv_batches(item: FileItemDict, layout: CsvLayout | None = None, source_name: str = "?") -> Iterator[Any]:
    """The rows of one CSV file (header row required) as Arrow record batches, typed by DuckDB.

    DuckDB runs in memory, so no warehouse lock is taken. The delimiter, the header and the quote
    are fixed rather than sniffed: a sniffer that meets a ragged row may settle on "one column per
    line", and one that meets an unclosed quote on "no quoting", and load garbage; here such a file
    fails and the error names it, the line and the config field to change.
    """
    layout = layout or CsvLayout()
    name = f"source {source_name!r}: file {item['file_url']}"
    if item["size_in_bytes"] == 0:
        raise MalformedFileError(f"{name} is empty: a CSV file needs at least its header row; remove or fill it")
    head = _head(item)
    header = _header_line(head)
    if not header.strip():
        raise MalformedFileError(f"{name}: line 1 is blank; the first line must be the header row. Remove it")
    if (other := _delimiter_that_splits(header, layout.delimiter)) is not None:
        raise MalformedFileError(
            f"{name}: the header {header[:80]!r} is one column with delimiter {_shown(layout.delimiter)} but splits "
            f"on {_shown(other)}. Fix: set `{layout.field}.delimiter: {OTHER_DELIMITERS[other]}` (or fix the file)"
        )
    options: dict[str, Any] = {
        "sep": layout.delimiter,
        "header": True,
        "quotechar": '"',  # else the sniffer may pick "no quote" and load an unclosed quote as text
        # Else the sniffer may pick "#" as a comment and drop every row starting with it...
        "comment": "",
        # ...or skip the header as a preamble when each row has one field more, taking row 1 as the header.
        "skiprows": 0,
        # Dates only in ISO form: else DuckDB guesses the day/month order per file, and reads
        # 01/02/2024 as 1 February in one file and 2 January beside 02/13/2024 in the next.
        "date_format": ISO_DATE,
        "na_values": list(layout.null_values),
        "buffer_size": CSV_BUFFER_BYTES,
    }
    if layout.column_types:
        options["dtype"] = dict(layout.column_types)
    tail = _tail(item)
    if (last_line := _last_line_bytes(tail)) > CSV_MAX_LINE_BYTES:
        raise MalformedFileError(
            f"{name}: the last line is at least {last_line:,} bytes long, over DuckDB's line limit "
            f"({CSV_MAX_LINE_BYTES:,} bytes), and DuckDB would leave it out without an error. "
            "Fix: shorten or split that line, or remove the file"
        )
    mixed = _ends_differ(item, head, tail)
    with duckdb.connect() as connection, ExitStack() as files:
        # A time without an offset beside ones with offsets is read in the session's zone: UTC,
        # as everywhere in Mallard, not the worker's local zone.
        connection.execute("SET TimeZone = 'UTC'")

        def read(mixed_endings: bool, as_text: dict[str, str] | None = None) -> Any:
            chosen = options | {"dtype": options.get("dtype", {}) | as_text} if as_text else options
            if not mixed_endings:
                return _relation(connection, item, chosen, files)
            if problem := _ragged_row(item, layout.delimiter):  # non-strict DuckDB would hide it
                raise _invalid(name, layout, problem, True)
            return _relation(connection, item, chosen | MIXED_ENDINGS, files)

        try:
            try:
                relation = read(mixed)
            except duckdb.Error:
                if mixed or not _mixes_endings(item):
                    raise
                mixed = True  # nothing was yielded yet: reading again is safe
                relation = read(mixed)
            declared = [column for column, _ in layout.column_types]
            relation = csv_types.faithful(relation, lambda as_text: read(mixed, as_text), declared)
            for batch in relation.to_arrow_reader(CSV_BATCH_ROWS):
                yield _empty_columns_untyped(batch, declared)
        except (duckdb.Error, OSError) as error:  # errors while streaming arrive as OSError
            if refused := _refused(name, item, layout, error):
                raise refused from error
            sniffed = options | MIXED_ENDINGS if mixed else options
            where = _where(error) or _line_of_sniff_error(connection, item, sniffed, header)
            if where is None or "fields, the header has" in where:  # DuckDB counts at most one extra field
                where = _ragged_row(item, layout.delimiter) or where
            mixed = mixed or _mixes_endings(item)
            said = "" if where else f" DuckDB said: {str(error).splitlines()[0][:300]}"
            raise _invalid(name, layout, where, mixed, said) from error
