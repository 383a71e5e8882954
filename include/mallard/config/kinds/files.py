"""`kind: files`: CSV, JSONL and Parquet files in a local folder or at an fsspec URL."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from include.mallard.config.base import Issue, TableBase, TablesSource, unique_names
from include.mallard.paths import resolve_project_path

# fsspec protocols dlt's filesystem source reads (local folders need no scheme).
FILE_URL_SCHEMES = ("file", "s3", "gs", "gcs", "az", "abfs", "abfss", "adl", "sftp", "memory")
FORMAT_EXTENSIONS = {
    "csv": (".csv", ".csv.gz", ".tsv"),
    "jsonl": (".jsonl", ".ndjson", ".json", ".jsonl.gz"),
    "parquet": (".parquet", ".pq"),
}
FileFormat = Literal["csv", "jsonl", "parquet"]


class FileTable(TableBase):
    """One table read from the files that match a glob."""

    glob: str = Field(description="Glob relative to the source's path, e.g. '*.csv' or '2024/**/*.parquet'.")
    format: FileFormat = Field("csv", description="File format: csv, jsonl (one JSON object per line) or parquet.")
    delimiter: str = Field(
        ",",
        min_length=1,
        max_length=1,
        description="CSV only: the character between fields, e.g. ';' or '\\t'. A CSV file starts with a header row.",
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
    def cursor_column(self) -> str | None:
        return self.cursor

    @property
    def is_incremental(self) -> bool:
        return self.cursor is not None or self.new_files_only


class FilesSource(TablesSource):
    """Files in a local folder or an fsspec URL, loaded with dlt's filesystem source."""

    kind: Literal["files"]
    path: str = Field(
        description=(
            "A folder (relative to the project root, or absolute) or an fsspec URL such as s3://bucket/prefix "
            "(credentials for remote storage come from dlt's usual config: env vars such as "
            "SOURCES__FILESYSTEM__CREDENTIALS__AWS_ACCESS_KEY_ID)."
        )
    )
    tables: list[FileTable] = Field(min_length=1, description="The tables to load from the files.")

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
