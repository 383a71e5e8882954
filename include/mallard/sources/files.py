"""`kind: files`: CSV, JSONL and Parquet from a folder or an fsspec URL, with dlt's filesystem source.

Two incremental modes, both stateless (each run starts from an empty dlt working folder):

- `cursor`: every matching file is read and the rows with start <= cursor < end are merged;
- `new_files_only`: only the files whose modification time falls in [start, end) are read. A
  file belongs to exactly one interval, so it is loaded once; rows carry `_file_path` and a rerun
  of the interval replaces the rows of the same files (merge on the file) instead of adding them.

A file that cannot be read as configured fails the extract, naming the source, the file, the line
and the config field to change, so nothing of the run is loaded. A table whose files are missing
or empty follows its `on_empty` (docs/sources.md).
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
import duckdb
from dlt.common import json
from dlt.extract import DltResource
from dlt.sources.filesystem import FileItemDict, filesystem

from include.mallard.config import FilesSource, FileTable
from include.mallard.interval import Interval
from include.mallard.paths import resolve_project_path
from include.mallard.sources.empty_input import apply_policy
from include.mallard.sources.hints import apply_table_hints, interval_incremental, typed_cursor

log = logging.getLogger(__name__)

FILE_COLUMN = "_file_path"
# Rows per Arrow batch handed to dlt. With dlt's 5,000, per-batch overhead made large files ~10%
# slower (docs/benchmarks.md); 100,000 rows of ten columns are about 10 MB.
CSV_BATCH_ROWS = 100_000
JSONL_CHUNK_ROWS = 5_000
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


def bucket_url(path: str) -> str:
    """fsspec URLs pass through; local folders are resolved against the project root."""
    return path if "://" in path else str(resolve_project_path(path))


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


def _ends_differ(item: FileItemDict, head: bytes) -> bool:
    """A cheap sample: the header and the last line of a local uncompressed file end differently."""
    first = head.find(b"\n")
    if first < 0 or not _is_local_file(item) or item.get("encoding") == "gzip":
        return False
    with Path(item.local_file_path).open("rb") as file:
        file.seek(max(0, item["size_in_bytes"] - SAMPLE_BYTES))
        tail = file.read()
    return _ending_at(head, first) != _ending_at(tail, tail.rfind(b"\n"))


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
        return f"fix the value, or add it to `{layout.field}.null_values` if it means a missing value"
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
        "na_values": list(layout.null_values),
    }
    mixed = _ends_differ(item, head)
    with duckdb.connect() as connection, ExitStack() as files:

        def read(mixed_endings: bool) -> Any:
            if not mixed_endings:
                return _relation(connection, item, options, files)
            if problem := _ragged_row(item, layout.delimiter):  # non-strict DuckDB would hide it
                raise _invalid(name, layout, problem, True)
            return _relation(connection, item, options | MIXED_ENDINGS, files)

        try:
            try:
                relation = read(mixed)
            except duckdb.Error:
                if mixed or not _mixes_endings(item):
                    raise
                mixed = True  # nothing was yielded yet: reading again is safe
                relation = read(mixed)
            yield from relation.to_arrow_reader(CSV_BATCH_ROWS)
        except (duckdb.Error, OSError) as error:  # errors while streaming arrive as OSError
            sniffed = options | MIXED_ENDINGS if mixed else options
            where = _where(error) or _line_of_sniff_error(connection, item, sniffed, header)
            if where is None or "fields, the header has" in where:  # DuckDB counts at most one extra field
                where = _ragged_row(item, layout.delimiter) or where
            mixed = mixed or _mixes_endings(item)
            said = "" if where else f" DuckDB said: {str(error).splitlines()[0][:300]}"
            raise _invalid(name, layout, where, mixed, said) from error


def jsonl_rows(item: FileItemDict, source_name: str = "?") -> Iterator[list[dict[str, Any]]]:
    """The objects of one JSON Lines file in chunks; blank lines are skipped.

    dlt's `read_jsonl` fails on a bad line with a bare decode error that names neither the file
    nor the line; here the error names the source, the file and the line.
    """
    chunk: list[dict[str, Any]] = []
    with item.open() as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                chunk.append(json.loadb(line))
            except ValueError as error:
                raise MalformedFileError(
                    f"source {source_name!r}: file {item['file_url']} line {number} is not a JSON object "
                    f"({error}); it starts with {line[:60]!r}. Fix or remove the file."
                ) from error
            if len(chunk) >= JSONL_CHUNK_ROWS:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def parquet_batches(item: FileItemDict, source_name: str = "?") -> Iterator[Any]:
    """The row groups of one Parquet file as Arrow record batches (pyarrow); a damaged file is named."""
    from pyarrow import ArrowException, parquet

    with item.open() as file:
        try:
            yield from parquet.ParquetFile(file, pre_buffer=False).iter_batches(batch_size=CSV_BATCH_ROWS)
        except (ArrowException, OSError) as error:
            raise MalformedFileError(
                f"source {source_name!r}: file {item['file_url']} is not a readable Parquet file ({error}). "
                "Fix or remove the file (a copy that was cut short is a common cause)."
            ) from error


def _read_one(item: FileItemDict, table: FileTable, layout: CsvLayout, source_name: str) -> Iterator[Any]:
    # Ours for every format: CSV is faster read by path, and each error names the file (and line).
    if table.format == "csv":
        return csv_batches(item, layout, source_name)
    if table.format == "jsonl":
        return jsonl_rows(item, source_name)
    return parquet_batches(item, source_name)


def _with_file_column(batch: Any, file_path: str) -> Any:
    if isinstance(batch, list):
        return [{**row, FILE_COLUMN: file_path} for row in batch]
    from dlt.common.libs.pyarrow import pyarrow

    return batch.append_column(FILE_COLUMN, pyarrow.array([file_path] * batch.num_rows, pyarrow.string()))


def _on_empty(config: FilesSource, table: FileTable, field: str, files_read: int) -> None:
    """What `on_empty` says for a table that got no rows: fail the extract, or keep the previous rows."""
    where = f"{config.path.rstrip('/')}/{table.glob}"
    if files_read:
        found = f"the {files_read} file(s) matching {where!r} have no rows"
    else:
        found = f"no file matches {where!r}" + (" in this interval" if table.new_files_only else "")
    fix = f"put the files back, check `path` and `{field}.glob`"
    apply_policy(config, table.name, found, config.empty_policy_of(table.name), f"{field}.on_empty", fix)


def _rows(files: DltResource, table: FileTable, layout: CsvLayout, config: FilesSource) -> Iterator[Any]:
    """The rows of every file the listing gives (its modification-time window applied), then `on_empty`."""
    files_read = rows = 0
    # Iterated here rather than piped into a transformer: a transformer is never called when the
    # glob matches nothing, so it could not tell an empty input from a finished one.
    for item in files:
        files_read += 1
        for batch in _read_one(item, table, layout, config.name):
            count = len(batch) if isinstance(batch, list) else batch.num_rows
            if count:  # an empty batch is no data
                rows += count
                yield _with_file_column(batch, item["relative_path"]) if table.new_files_only else batch
    if rows == 0:
        _on_empty(config, table, layout.field, files_read)
        # dlt empties a replace table that yields nothing once its schema knows the table (the
        # schema contract restores the last run's schema): loading as append loads nothing instead.
        current = dlt.current.resource()
        if current.write_disposition == "replace":
            current.apply_hints(write_disposition="append")


def _table_resource(config: FilesSource, index: int, interval: Interval) -> DltResource:
    table = config.tables[index]
    files = filesystem(bucket_url=bucket_url(config.path), file_glob=table.glob)
    settings = config.settings_of(table)
    layout = CsvLayout(table.csv_delimiter, tuple(config.null_values_of(table)), f"tables[{index}]")
    if not table.new_files_only:
        reader = dlt.resource(_rows(files, table, layout, config), name=table.name)
        apply_table_hints(reader, settings, cursor=table.cursor, interval=interval)
        if table.cursor and table.format == "jsonl":
            reader.add_map(typed_cursor(table.cursor), insert_at=1)  # JSON times are text
        return reader
    # Pick the files by modification time, the same [start, end) bounds as a row cursor.
    files.apply_hints(incremental=interval_incremental("modification_date", interval))
    reader = dlt.resource(_rows(files, table, layout, config), name=table.name)
    reader.apply_hints(
        write_disposition=settings.write_disposition,
        primary_key=settings.primary_key or None,
        # delete-insert on the file: rows of a re-read file replace that file's earlier rows.
        merge_key=FILE_COLUMN if settings.write_disposition == "merge" else None,
    )
    return reader


def build(config: FilesSource, interval: Interval) -> list[DltResource]:
    """One resource per table of a files source."""
    return [_table_resource(config, index, interval) for index in range(len(config.tables))]
