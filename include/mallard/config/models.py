"""The typed schema of a source config file (`include/sources/<name>.yml`).

One model per source kind, chosen by the `kind` field. Unknown fields are errors, so a typo
never silently becomes a default.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

SOURCE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,40}$"
TABLE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


class _StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceBase(_StrictModel):
    """Fields every source kind accepts."""

    name: Annotated[
        str,
        Field(
            pattern=SOURCE_NAME_PATTERN,
            description="Source name; data lands in schema raw_<name>. Defaults to the file name.",
        ),
    ]
    description: str = Field("", description="Shown in the DAG docs.")
    enabled: bool = Field(True, description="Disabled sources get no task group.")
    tags: list[str] = Field(default_factory=list, description="Extra Airflow tags for the source's tasks.")
    retries: int = Field(2, ge=0, le=20, description="Airflow retries for the source's tasks.")

    @property
    def dataset_name(self) -> str:
        """The warehouse schema the source loads into."""
        return f"raw_{self.name}"


class SyntheticSource(SourceBase):
    """A seeded, deterministic shop: customers, orders and payments spread over days."""

    kind: Literal["synthetic"]
    seed: int = Field(42, description="Same seed, same rows.")
    customers: int = Field(200, ge=1, le=10_000_000, description="Number of customers.")
    stores: int = Field(5, ge=1, le=10_000, description="Orders pick a store_id in 1..stores.")
    orders_per_day: int = Field(40, ge=0, le=500_000, description="Average orders per day.")
    first_day: dt.date = Field(dt.date(2024, 1, 1), description="No orders exist before this day.")
    incremental: bool = Field(
        True,
        description=(
            "true: each run loads the orders and payments of its data interval and merges them on id. "
            "false: each run reloads everything from first_day to the end of its interval (full refresh)."
        ),
    )


FileFormat = Literal["csv"]


class FileTable(_StrictModel):
    """One table read from the files that match a glob."""

    name: Annotated[str, Field(pattern=TABLE_NAME_PATTERN, description="Table name in raw_<source>.")]
    glob: str = Field(description="Glob relative to the source's path, e.g. '*.csv' or '2024/**/*.csv'.")
    format: FileFormat = Field("csv", description="File format.")
    primary_key: list[str] = Field(default_factory=list, description="Column(s) that identify a row.")
    cursor: str | None = Field(
        None,
        description=(
            "Incremental: a date/timestamp column; each run loads the rows with interval start <= cursor < end "
            "and merges them on primary_key. Without a cursor the table is fully replaced each run."
        ),
    )

    @model_validator(mode="after")
    def _incremental_needs_a_key(self) -> FileTable:
        if self.cursor and not self.primary_key:
            raise ValueError(f"table {self.name!r} has a cursor but no primary_key; add primary_key to merge rows on")
        return self

    @field_validator("primary_key", mode="before")
    @classmethod
    def _one_key_is_a_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("glob")
    @classmethod
    def _glob_is_relative(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the glob is empty; use e.g. '*.csv'")
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("the glob must stay inside the source's path (no leading '/' and no '..')")
        return value


class FilesSource(SourceBase):
    """Files in a local folder or an fsspec URL, loaded with dlt's filesystem source."""

    kind: Literal["files"]
    path: str = Field(
        description="A folder (relative to the project root, or absolute) or an fsspec URL such as s3://bucket/prefix."
    )
    tables: list[FileTable] = Field(min_length=1, description="The tables to load from the files.")

    @field_validator("tables")
    @classmethod
    def _table_names_unique(cls, tables: list[FileTable]) -> list[FileTable]:
        names = [table.name for table in tables]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"table names must be unique; repeated: {', '.join(duplicates)}")
        return tables


SourceConfig = Annotated[SyntheticSource | FilesSource, Field(discriminator="kind")]
SOURCE_ADAPTER: TypeAdapter[SyntheticSource | FilesSource] = TypeAdapter(SourceConfig)
SOURCE_KINDS: tuple[str, ...] = ("synthetic", "files")
