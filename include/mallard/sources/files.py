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

from collections.abc import Iterator
from typing import Any

import dlt
from dlt.extract import DltResource
from dlt.sources.filesystem import FileItemDict, filesystem

from include.mallard.config import FilesSource, FileTable
from include.mallard.config.kinds.files import CSV_COLUMN_TYPES
from include.mallard.interval import Interval
from include.mallard.paths import resolve_project_path
from include.mallard.sources.column_names import CollisionFinder
from include.mallard.sources.empty_input import apply_policy
from include.mallard.sources.file_readers import CsvLayout, MalformedFileError, csv_batches
from include.mallard.sources.hints import apply_table_hints, interval_incremental, typed_cursor
from include.mallard.sources.record_readers import jsonl_rows, parquet_batches

FILE_COLUMN = "_file_path"


def bucket_url(path: str) -> str:
    """fsspec URLs pass through; local folders are resolved against the project root."""
    return path if "://" in path else str(resolve_project_path(path))


def _read_one(item: FileItemDict, table: FileTable, layout: CsvLayout, source_name: str) -> Iterator[Any]:
    # Ours for every format: CSV is faster read by path, and each error names the file (and line).
    if table.format == "csv":
        return csv_batches(item, layout, source_name)
    if table.format == "jsonl":
        return jsonl_rows(item, source_name)
    return parquet_batches(item, source_name)


def _with_file_column(batch: Any, file_path: str, source_name: str) -> Any:
    has_it = any(FILE_COLUMN in row for row in batch) if isinstance(batch, list) else FILE_COLUMN in batch.schema.names
    if has_it:  # it would be overwritten with the file's path
        raise MalformedFileError(
            f"source {source_name!r}: file {file_path} has a column {FILE_COLUMN}, which new_files_only adds "
            "(the file each row came from). Fix: rename that column in the file, or drop new_files_only"
        )
    if isinstance(batch, list):
        return [{**row, FILE_COLUMN: file_path} for row in batch]
    from dlt.common.libs.pyarrow import pyarrow

    return batch.append_column(FILE_COLUMN, pyarrow.array([file_path] * batch.num_rows, pyarrow.string()))


def _columns_that_collide(finder: CollisionFinder, columns: list[str], file_path: str, source_name: str) -> None:
    """Fail on a file's column that meets another in one column, or one of dlt's own (its load or row id)."""
    if (collision := finder.find(dict.fromkeys(columns))) is not None:
        raise MalformedFileError(
            f"source {source_name!r}: file {file_path}: {collision}. Fix: rename the column in the file"
        )


class ColumnTypesSeen:
    """The Arrow type each column of a table had in the files read so far in a run.

    dlt cannot write one table from batches whose column types differ (its error names no file),
    and DuckDB types each CSV file from its own rows: `qty` with an `x` in one file is text there.
    """

    def __init__(self, table: FileTable, field: str, source_name: str) -> None:
        self.table, self.field, self.source_name = table, field, source_name
        self.seen: dict[str, tuple[Any, str]] = {}  # column -> (type, the file it was first seen in)

    def check(self, schema: Any, file_path: str) -> None:
        for column in schema:
            if str(column.type) == "null":  # an empty column: no type to agree on
                continue
            first_type, first_file = self.seen.setdefault(column.name, (column.type, file_path))
            if column.type != first_type:
                fix = (
                    f"set `{self.field}.column_types: {{{column.name}: text}}` (or the type you mean) so that "
                    "every file reads the column as one type"
                    if self.table.format == "csv"
                    else "write the column with one type in every file"
                )
                raise MalformedFileError(
                    f"source {self.source_name!r}: column {column.name!r} of table {self.table.name!r} is "
                    f"{column.type} in file {file_path} but {first_type} in {first_file} (each file's types come "
                    f"from its own values). Fix: {fix}, or correct the file"
                )


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
    # A cursor table's rows outside the interval are dropped after this, before dlt meets their types.
    column_types = ColumnTypesSeen(table, layout.field, config.name) if table.cursor is None else None
    column_names = CollisionFinder()  # one per table: a column set found clean is not walked again
    # Iterated here rather than piped into a transformer: a transformer is never called when the
    # glob matches nothing, so it could not tell an empty input from a finished one.
    for item in files:
        files_read += 1
        for batch in _read_one(item, table, layout, config.name):
            count = len(batch) if isinstance(batch, list) else batch.num_rows
            if count:  # an empty batch is no data
                if not isinstance(batch, list):
                    _columns_that_collide(column_names, batch.schema.names, item["relative_path"], config.name)
                    if column_types is not None:
                        column_types.check(batch.schema, item["relative_path"])
                rows += count
                yield _with_file_column(batch, item["relative_path"], config.name) if table.new_files_only else batch
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
    declared = tuple((column, CSV_COLUMN_TYPES[kind]) for column, kind in (table.column_types or {}).items())
    layout = CsvLayout(table.csv_delimiter, tuple(config.null_values_of(table)), f"tables[{index}]", declared)
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
