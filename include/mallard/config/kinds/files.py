"""`kind: files`: CSV, JSONL and Parquet files in a local folder or at an fsspec URL."""

from __future__ import annotations

import re
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from include.mallard.config.base import Issue, OnEmpty
from include.mallard.config.tables import TableBase, TablesSource, unique_names
from include.mallard.paths import resolve_project_path

# fsspec protocols dlt's filesystem source reads (local folders need no scheme).
FILE_URL_SCHEMES = ("file", "s3", "gs", "gcs", "az", "abfs", "abfss", "adl", "sftp", "memory")
FORMAT_EXTENSIONS = {
    "csv": (".csv", ".csv.gz", ".tsv", ".tsv.gz"),
    "jsonl": (".jsonl", ".ndjson", ".json", ".jsonl.gz"),
    "parquet": (".parquet", ".pq"),
}
TAB_EXTENSIONS = (".tsv", ".tsv.gz")
FileFormat = Literal["csv", "jsonl", "parquet"]
# DuckDB's own default: an empty field is null. A list replaces it, so "" must be listed to keep it.
DEFAULT_NULL_VALUES = ("",)
NULL_VALUES_HELP = (
    "CSV only: the field values that mean null (missing), quoted or not, e.g. ['', 'NA', 'n/a'] for R's write.csv. "
    "The list replaces the default [''] (an empty field is null): keep '' in it, or empty fields become empty text."
)

CsvColumnType = Literal["text", "integer", "double", "boolean", "date", "timestamp", "timestamptz"]
# The DuckDB type each `column_types` name reads a CSV column as.
CSV_COLUMN_TYPES: dict[str, str] = {
    "text": "VARCHAR",
    "integer": "BIGINT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
}


def check_null_markers(values: list[str] | None) -> list[str] | None:
    """A field validator: a marker is compared with one field, which never spans lines."""
    if values is None:
        return None
    if any("\n" in value or "\r" in value for value in values):
        raise ValueError("a null marker cannot contain a line break")
    return values


class FileTable(TableBase):
    """One table read from the files that match a glob."""

    glob: str = Field(description="Glob relative to the source's path, e.g. '*.csv' or '2024/**/*.parquet'.")
    format: FileFormat = Field("csv", description="File format: csv, jsonl (one JSON object per line) or parquet.")
    delimiter: str | None = Field(
        None,
        min_length=1,
        max_length=1,
        description=(
            "CSV only: the character between fields, e.g. ';' or '\\t'. Unset: a tab when the glob ends in .tsv, "
            "else ','. A CSV file starts with a header row."
        ),
    )
    null_values: list[str] | None = Field(
        None, min_length=1, description=NULL_VALUES_HELP + " Unset: the source's `null_values`."
    )
    column_types: dict[str, CsvColumnType] | None = Field(
        None,
        description=(
            "CSV only: the type of some columns, instead of the one DuckDB guesses from the file's first rows, "
            "e.g. {zip_code: text, amount: double}. One of: " + ", ".join(CSV_COLUMN_TYPES) + ". A value that "
            "does not fit its column fails the run naming the line."
        ),
    )
    on_empty: OnEmpty | None = Field(
        None,
        description=(
            "What a run does when the glob matches no file, or only files without rows: fail (the extract fails "
            "and nothing of the run loads), warn (a warning in the task log; the table keeps its previous rows) or "
            "ok (the same, silently). Unset: ok for incremental tables (a cursor or new_files_only), else the "
            "source's `on_empty` (fail unless set). An empty input never empties a table."
        ),
    )
    cursor: str | None = Field(
        None,
        description=(
            "Incremental by row: a date/timestamp column; each run reads all matching files and loads the rows with "
            "interval start <= cursor < end (merged on primary_key by default)."
        ),
    )
    new_files_only: bool = Field(
        False,
        description=(
            "Incremental by file: each run reads only the files whose modification time falls in its interval. "
            "Rows get a `_file_path` column; a rerun replaces the rows of the same files (merge on the file)."
        ),
    )

    _null_markers = field_validator("null_values")(check_null_markers)

    @field_validator("delimiter", mode="before")
    @classmethod
    def _tab_written_as_backslash_t(cls, value: object) -> object:
        # YAML keeps '\t' in single quotes as two characters; only a tab can be meant.
        return "\t" if value == "\\t" else value

    @field_validator("delimiter")
    @classmethod
    def _delimiter_is_a_separator(cls, value: str | None) -> str | None:
        if value is not None and value in '"\r\n':
            raise ValueError("the delimiter cannot be a quote or a line break; use e.g. ',', ';', '|' or '\\t'")
        return value

    @field_validator("glob")
    @classmethod
    def _glob_is_relative(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the glob is empty; use e.g. '*.csv'")
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("the glob must stay inside the source's path (no leading '/' and no '..')")
        if value.count("[") != value.count("]") or value.count("{") != value.count("}"):
            raise ValueError("the glob has an unbalanced '[' or '{'; use e.g. 'orders_*.csv'")
        return value

    @model_validator(mode="after")
    def _one_incremental_mode(self) -> FileTable:
        if self.cursor and self.new_files_only:
            raise ValueError("choose one incremental mode: `cursor` (rows in the interval) or `new_files_only`")
        glob = self.glob.lower()
        known = {ext: fmt for fmt, exts in FORMAT_EXTENSIONS.items() for ext in exts}
        for extension, fmt in sorted(known.items(), key=lambda item: -len(item[0])):
            if glob.endswith(extension) and fmt != self.format:
                raise ValueError(
                    f"the glob selects {extension} files but the format is {self.format!r}; "
                    f"set `format: {fmt}` or change the glob"
                )
            if glob.endswith(extension):
                break
        return self

    @property
    def csv_delimiter(self) -> str:
        """The delimiter a CSV table is read with: its own, else a tab for a .tsv glob, else ','."""
        if self.delimiter is not None:
            return self.delimiter
        return "\t" if self.glob.lower().endswith(TAB_EXTENSIONS) else ","

    @property
    def cursor_column(self) -> str | None:
        return self.cursor

    @property
    def is_incremental(self) -> bool:
        return self.cursor is not None or self.new_files_only


class FilesSource(TablesSource):
    """Files in a local folder or an fsspec URL, loaded with dlt's filesystem source."""

    READER_APPLIES_ON_EMPTY: ClassVar[bool] = True  # it can say which files it found
    READER_CHECKS_RECORD_KEYS: ClassVar[bool] = True  # JSONL lines; Arrow files by their columns
    kind: Literal["files"]
    path: str = Field(
        description=(
            "A folder (relative to the project root, or absolute) or an fsspec URL such as s3://bucket/prefix "
            "(credentials for remote storage come from dlt's usual config: env vars such as "
            "SOURCES__FILESYSTEM__CREDENTIALS__AWS_ACCESS_KEY_ID)."
        )
    )
    tables: list[FileTable] = Field(min_length=1, description="The tables to load from the files.")
    null_values: list[str] = Field(
        list(DEFAULT_NULL_VALUES), min_length=1, description=NULL_VALUES_HELP + " Default of the source's CSV tables."
    )

    _null_markers = field_validator("null_values")(check_null_markers)

    @field_validator("path")
    @classmethod
    def _path_or_url(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the path is empty; use a folder such as include/data/inventory or s3://bucket/prefix")
        if "://" in value:
            parts = urlsplit(value)
            if parts.scheme not in FILE_URL_SCHEMES:
                raise ValueError(
                    f"unsupported URL scheme {parts.scheme!r}; use a local folder or one of: "
                    + ", ".join(f"{scheme}://" for scheme in FILE_URL_SCHEMES)
                )
            if parts.scheme not in ("file", "memory") and not parts.netloc:
                raise ValueError(f"the URL has no bucket or host; use e.g. {parts.scheme}://bucket/prefix")
        elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", value):
            raise ValueError("this looks like a URL with a missing '/'; use e.g. s3://bucket/prefix")
        return value

    @field_validator("tables")
    @classmethod
    def _table_names_unique(cls, tables: list[FileTable]) -> list[FileTable]:
        return unique_names(tables, "table")

    def null_values_of(self, table: FileTable) -> list[str]:
        """The null markers a CSV table is read with: its own, else the source's."""
        return table.null_values if table.null_values is not None else self.null_values

    def table_issues(self, where: str, table: TableBase) -> list[Issue]:
        if not isinstance(table, FileTable) or table.format == "csv":
            return []
        # Rejected rather than ignored: JSON has its own null and Parquet stores nulls, so a marker
        # would turn real text (a country code "NA") into null, and a delimiter means nothing there.
        return [
            Issue(
                f"{where}.{field}", f"`{field}` applies to CSV files only; this table reads {table.format}", "remove it"
            )
            for field in ("delimiter", "null_values", "column_types")
            if getattr(table, field) is not None
        ]

    def has_row_key_of_its_own(self, table: TableBase) -> bool:
        # new_files_only merges on the file the rows came from, so it needs no key of its own.
        return isinstance(table, FileTable) and table.new_files_only

    def external_issues(self) -> list[Issue]:
        if "://" in self.path:
            return []
        folder = resolve_project_path(self.path)
        if folder.is_dir():
            return []
        if folder.exists():
            return [Issue("path", f"{folder} is a file, not a folder", "set `path` to the folder that holds it")]
        return [Issue("path", f"folder {folder} does not exist", "create it or fix the path (relative to the project)")]
