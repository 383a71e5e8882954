"""`kind: files`: CSV, JSONL and Parquet from a folder or an fsspec URL, with dlt's filesystem source.

Two incremental modes, both stateless (each run starts from an empty dlt working folder):

- `cursor`: every matching file is read and the rows with start <= cursor < end are merged;
- `new_files_only`: only the files whose modification time falls in [start, end) are read. A
  file belongs to exactly one interval, so it is loaded once; rows carry `_file_path` and a rerun
  of the interval replaces the rows of the same files (merge on the file) instead of adding them.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
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
from include.mallard.sources.hints import apply_table_hints, interval_incremental, typed_cursor

FILE_COLUMN = "_file_path"
# Rows per Arrow batch handed to dlt. With dlt's 5,000, per-batch overhead made large files ~10%
# slower (docs/benchmarks.md); 100,000 rows of ten columns are about 10 MB.
CSV_BATCH_ROWS = 100_000
JSONL_CHUNK_ROWS = 5_000


def bucket_url(path: str) -> str:
    """fsspec URLs pass through; local folders are resolved against the project root."""
    return path if "://" in path else str(resolve_project_path(path))


def _is_local_file(item: FileItemDict) -> bool:
    protocol = item.fsspec.protocol if item.fsspec is not None else ()
    return "file_content" not in item and "file" in protocol


class MalformedFileError(ValueError):
    """A source file that cannot be read as its table's format says; names the file and line."""


def _first_ragged_line(path: str, delimiter: str) -> str:
    """Where a local CSV first has a different number of fields than its header (for the error)."""
    with Path(path).open(newline="", encoding="utf-8", errors="replace") as file:
        rows = csv.reader(file, delimiter=delimiter)
        header = next(rows, [])
        for row in rows:
            if len(row) != len(header):
                return f"line {rows.line_num} has {len(row)} fields, the header has {len(header)}"
    return "no ragged line found; check the quoting and the encoding (UTF-8)"


def csv_batches(item: FileItemDict, delimiter: str = ",", source_name: str = "?") -> Iterator[Any]:
    """The rows of one CSV file (header row required) as Arrow record batches, typed by DuckDB.

    DuckDB runs in memory, so no warehouse lock is taken. A local file is read by path, with
    DuckDB's own file reader: through a Python file object (as dlt's `read_csv_duckdb` does) the
    same read was slower and needed more memory (docs/benchmarks.md). Remote files
    (fsspec URLs) still go through the file object. The delimiter and header are fixed rather than
    sniffed: a sniffer that meets a ragged row may settle on "one column per line" and load
    garbage; here such a file fails and the error names it and the line.
    """
    name = f"source {source_name!r}: file {item['file_url']}"
    if item["size_in_bytes"] == 0:
        raise MalformedFileError(f"{name} is empty: a CSV file needs at least its header row; remove or fill it")
    options = {"sep": delimiter, "header": True}
    try:
        # One connection per file: the extractor may interleave readers, and a connection holds
        # a single pending result.
        with duckdb.connect() as connection:
            if _is_local_file(item):
                yield from connection.read_csv(item.local_file_path, **options).to_arrow_reader(CSV_BATCH_ROWS)
                return
            with item.open() as file:
                yield from connection.read_csv(file, **options).to_arrow_reader(CSV_BATCH_ROWS)
    except duckdb.Error as error:
        where = _first_ragged_line(item.local_file_path, delimiter) if _is_local_file(item) else "see below"
        raise MalformedFileError(
            f"{name} is not a valid CSV file with delimiter {delimiter!r} and a header row ({where}). "
            f"Fix or remove the file, or set the table's `delimiter`. DuckDB said: {error}"
        ) from error


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
            yield from parquet.ParquetFile(file).iter_batches(batch_size=CSV_BATCH_ROWS)
        except (ArrowException, OSError) as error:
            raise MalformedFileError(
                f"source {source_name!r}: file {item['file_url']} is not a readable Parquet file ({error}). "
                "Fix or remove the file (a copy that was cut short is a common cause)."
            ) from error


def _read_one(item: FileItemDict, table: FileTable, source_name: str) -> Iterator[Any]:
    # Ours for every format: CSV is faster read by path, and each error names the file (and line).
    if table.format == "csv":
        return csv_batches(item, table.delimiter, source_name)
    if table.format == "jsonl":
        return jsonl_rows(item, source_name)
    return parquet_batches(item, source_name)


def _with_file_column(batch: Any, file_path: str) -> Any:
    if isinstance(batch, list):
        return [{**row, FILE_COLUMN: file_path} for row in batch]
    from dlt.common.libs.pyarrow import pyarrow

    return batch.append_column(FILE_COLUMN, pyarrow.array([file_path] * batch.num_rows, pyarrow.string()))


@dlt.transformer(name="files")
def read_files(items: Iterable[FileItemDict], table: FileTable, source_name: str) -> Iterator[Any]:
    """The rows of every file in `items`, read as the table's format says."""
    for item in items:
        yield from _read_one(item, table, source_name)


@dlt.transformer(name="tagged_files")
def read_tagged(items: Iterable[FileItemDict], table: FileTable, source_name: str) -> Iterator[Any]:
    """The reader for the table's format, one file at a time, adding the file's path to every row."""
    for item in items:
        for batch in _read_one(item, table, source_name):
            yield _with_file_column(batch, item["relative_path"])


def _table_resource(config: FilesSource, table: FileTable, interval: Interval) -> DltResource:
    files = filesystem(bucket_url=bucket_url(config.path), file_glob=table.glob)
    settings = config.settings_of(table)
    if not table.new_files_only:
        reader = (files | read_files(table=table, source_name=config.name)).with_name(table.name)
        apply_table_hints(reader, settings, cursor=table.cursor, interval=interval)
        if table.cursor and table.format == "jsonl":
            reader.add_map(typed_cursor(table.cursor), insert_at=1)  # JSON times are text
        return reader
    # Pick the files by modification time, the same [start, end) bounds as a row cursor.
    files.apply_hints(incremental=interval_incremental("modification_date", interval))
    reader = (files | read_tagged(table=table, source_name=config.name)).with_name(table.name)
    reader.apply_hints(
        write_disposition=settings.write_disposition,
        primary_key=settings.primary_key or None,
        # delete-insert on the file: rows of a re-read file replace that file's earlier rows.
        merge_key=FILE_COLUMN if settings.write_disposition == "merge" else None,
    )
    return reader


def build(config: FilesSource, interval: Interval) -> list[DltResource]:
    """One resource per table of a files source."""
    return [_table_resource(config, table, interval) for table in config.tables]
