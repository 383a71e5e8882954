"""`kind: sql_database`: tables of a SQL database (dlt's sql_database source)."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from include.mallard.config.base import (
    CONNECTION_ID_PATTERN,
    ENV_NAME_PATTERN,
    ExternalReference,
    Issue,
    literal_secret_error,
)
from include.mallard.config.tables import TableBase, TablesSource, unique_names

SQL_IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_$]*$"


class SqlCredentials(ExternalReference):
    """A SQLAlchemy URL: from an env var, an Airflow connection, or written out if it holds no password."""

    env: str | None = Field(None, pattern=ENV_NAME_PATTERN, description="Environment variable holding the URL.")
    connection: str | None = Field(
        None, pattern=CONNECTION_ID_PATTERN, description="Airflow connection id (postgres, mysql, sqlite, ...)."
    )
    url: str | None = Field(
        None, description="A URL without a password, e.g. sqlite:///include/data/app.db (relative to the project)."
    )

    @model_validator(mode="before")
    @classmethod
    def _text_is_a_url(cls, value: object) -> object:
        return {"url": value} if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
            raise ValueError("not a SQLAlchemy URL; use e.g. postgresql://host:5432/db or sqlite:///path/to.db")
        if urlsplit(value).password:
            raise literal_secret_error("a URL with a password")
        return value

    @model_validator(mode="after")
    def _exactly_one_place(self) -> SqlCredentials:
        if sum(value is not None for value in (self.env, self.connection, self.url)) != 1:
            raise ValueError("give exactly one of `connection`, `env` or `url`")
        return self

    @property
    def where(self) -> str:
        if self.env:
            return f"env var {self.env}"
        return f"Airflow connection {self.connection!r}" if self.connection else "the url in the file"


class SqlTable(TableBase):
    """One table (or view) of the database."""

    name: Annotated[str, Field(pattern=SQL_IDENTIFIER_PATTERN, description="Table or view name in the database.")]
    cursor: str | None = Field(
        None,
        description=(
            "Incremental: a date/timestamp column; each run selects interval start <= cursor < end in SQL "
            "(merged on primary_key by default). Without it the table is read in full."
        ),
    )
    columns: list[str] = Field(default_factory=list, description="Only these columns (default: all).")

    @property
    def cursor_column(self) -> str | None:
        return self.cursor


class SqlDatabaseSource(TablesSource):
    """Tables of a SQL database, loaded with dlt's sql_database source (SQLAlchemy, chunked reads)."""

    kind: Literal["sql_database"]
    credentials: SqlCredentials = Field(
        description="{connection: ID}, {env: NAME} holding a SQLAlchemy URL, or a URL without a password."
    )
    db_schema: str | None = Field(
        None, alias="schema", pattern=SQL_IDENTIFIER_PATTERN, description="Database schema (default: the default)."
    )
    backend: Literal["pyarrow", "sqlalchemy"] = Field(
        "pyarrow", description="pyarrow reads column batches (fast); sqlalchemy yields rows as dicts."
    )
    chunk_size: int = Field(50_000, ge=1, le=10_000_000, description="Rows per read.")
    tables: list[SqlTable] = Field(min_length=1, description="The tables to load.")

    @field_validator("tables")
    @classmethod
    def _table_names_unique(cls, tables: list[SqlTable]) -> list[SqlTable]:
        return unique_names(tables, "table", fold_case=True)

    def table_issues(self, where: str, table: TableBase) -> list[Issue]:
        assert isinstance(table, SqlTable)
        if table.columns and table.cursor and table.cursor not in table.columns:
            return [Issue(f"{where}.columns", "the cursor column is not selected", "add it to `columns`")]
        return []
