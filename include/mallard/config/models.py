"""The typed schema of a source config file (`include/sources/<name>.yml`).

One model per source kind, chosen by the `kind` field. Unknown fields are errors, so a typo
never silently becomes a default. Checks that need several fields at once (a merge needs a
key, a child resource needs its parent) live in each model's `cross_checks()`, so that the
loader can name the exact field; checks that need the outside world (does the connection
exist, does the module import) live in `include/mallard/secrets.py` and run only on demand.

Nothing here imports dlt or Airflow: this module is read at DAG parse time.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from include.mallard.config.cron import cron_problem

SOURCE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,40}$"
TABLE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
CONNECTION_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
SQL_IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_$]*$"
FUNCTION_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
SECRET_REFERENCE_FIX = (
    "move the value to an environment variable or an Airflow connection and reference it, "
    "e.g. `{env: MY_API_TOKEN}` or `{connection: my_api}`"
)
# fsspec protocols dlt's filesystem source reads (local folders need no scheme).
FILE_URL_SCHEMES = ("file", "s3", "gs", "gcs", "az", "abfs", "abfss", "adl", "sftp", "memory")
FORMAT_EXTENSIONS = {"csv": (".csv", ".csv.gz", ".tsv"), "jsonl": (".jsonl", ".ndjson", ".json", ".jsonl.gz")}
FORMAT_EXTENSIONS["parquet"] = (".parquet", ".pq")

WriteDisposition = Literal["append", "replace", "merge"]
SchemaContract = Literal["evolve", "freeze", "discard_rows"]


CRON_FIX = "use 5 fields (minute hour day-of-month month day-of-week) such as '0 6 * * *', or a preset like @daily"


class ConfigValueError(ValueError):
    """A validation error that carries its own fix, and may keep the input out of the message."""

    def __init__(self, message: str, *, fix: str, hide_input: bool = False) -> None:
        super().__init__(message)
        self.fix = fix
        self.hide_input = hide_input


def literal_secret_error(what: str) -> ConfigValueError:
    """The error for a secret written into a config file; the value itself is never echoed."""
    return ConfigValueError(
        f"{what} must not be written in the file (value hidden)", fix=SECRET_REFERENCE_FIX, hide_input=True
    )


@dataclass(frozen=True)
class Issue:
    """A problem found by a cross-field check: the field path, what is wrong, how to fix it."""

    field: str
    message: str
    fix: str


class _StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _one_key_is_a_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


class SecretRef(_StrictModel):
    """Where a secret comes from at task run time: an env var or an Airflow connection."""

    env: str | None = Field(None, pattern=ENV_NAME_PATTERN, description="Name of an environment variable.")
    connection: str | None = Field(None, pattern=CONNECTION_ID_PATTERN, description="An Airflow connection id.")
    field: str = Field(
        "password",
        pattern=r"^(password|login|host|schema|extra\.[A-Za-z0-9_.-]+)$",
        description="With `connection`: which part holds the secret (password, login, host, schema, extra.<key>).",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_literals(cls, value: object) -> object:
        if isinstance(value, str | int | float):
            raise literal_secret_error("a secret")
        return value

    @model_validator(mode="after")
    def _exactly_one_place(self) -> SecretRef:
        if (self.env is None) == (self.connection is None):
            raise ValueError(
                "give exactly one of `env` (an environment variable) or `connection` (an Airflow connection)"
            )
        return self

    @property
    def where(self) -> str:
        """A human description, never the value."""
        return f"env var {self.env}" if self.env else f"Airflow connection {self.connection!r} ({self.field})"


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
    schedule: str | None = Field(
        None,
        description=(
            "Cron expression (UTC) for this source's own schedule, e.g. '0 */6 * * *'; each run loads its own "
            "data interval. Default: the ELT DAG's schedule."
        ),
    )
    schema_contract: SchemaContract = Field(
        "evolve",
        description=(
            "What a change in the data's shape does: evolve (new columns and types are added), freeze (a new column "
            "or a changed type fails the run before anything loads), discard_rows (rows that do not fit are dropped)."
        ),
    )

    @field_validator("schedule")
    @classmethod
    def _schedule_is_cron(cls, value: str | None) -> str | None:
        if value is not None and (problem := cron_problem(value)):
            raise ConfigValueError(problem, fix=CRON_FIX)
        return value

    @field_validator("tags")
    @classmethod
    def _tags_not_empty(cls, tags: list[str]) -> list[str]:
        if any(not tag.strip() for tag in tags):
            raise ValueError("tags must not be empty strings")
        return tags

    @property
    def dataset_name(self) -> str:
        """The warehouse schema the source loads into."""
        return f"raw_{self.name}"

    def cross_checks(self) -> list[Issue]:
        """Problems that involve several fields; empty when the config is consistent."""
        return []


class TableDefaults(_StrictModel):
    """Source-level defaults for the tables of a source; a table's own setting wins."""

    write_disposition: WriteDisposition | None = Field(
        None,
        description=(
            "Default for every table: append, replace (full refresh, swapped in one transaction) or merge "
            "(upsert on primary_key). Unset: merge for incremental tables, replace otherwise."
        ),
    )
    primary_key: list[str] = Field(default_factory=list, description="Default primary key column(s) of every table.")

    _normalize_key = field_validator("primary_key", mode="before")(_one_key_is_a_list)


def effective_disposition(
    table_disposition: str | None, source_disposition: str | None, incremental: bool
) -> WriteDisposition:
    """The write disposition a table gets: its own, else the source's, else merge/replace."""
    return table_disposition or source_disposition or ("merge" if incremental else "replace")  # type: ignore[return-value]


def _key_checks(
    where: str, *, disposition: str, primary_key: list[str], incremental: bool, has_other_key: bool = False
) -> list[Issue]:
    issues = []
    if disposition == "merge" and not primary_key and not has_other_key:
        issues.append(
            Issue(
                f"{where}.primary_key",
                "a merge (the default for incremental tables) needs a primary key to replace rows on",
                "add `primary_key: [<column>]` to the table or the source, or set `write_disposition: append`",
            )
        )
    if disposition == "replace" and incremental:
        issues.append(
            Issue(
                f"{where}.write_disposition",
                "an incremental table cannot use replace: each run would keep only its own interval",
                "use merge (with a primary_key) or append, or drop the incremental setting",
            )
        )
    return issues


def _duplicates(names: list[str]) -> list[str]:
    return sorted({name for name in names if names.count(name) > 1})


# --- synthetic ----------------------------------------------------------------------------------


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


# --- files --------------------------------------------------------------------------------------

FileFormat = Literal["csv", "jsonl", "parquet"]


class FileTable(_StrictModel):
    """One table read from the files that match a glob."""

    name: Annotated[str, Field(pattern=TABLE_NAME_PATTERN, description="Table name in raw_<source>.")]
    glob: str = Field(description="Glob relative to the source's path, e.g. '*.csv' or '2024/**/*.parquet'.")
    format: FileFormat = Field("csv", description="File format: csv, jsonl (one JSON object per line) or parquet.")
    delimiter: str = Field(
        ",",
        min_length=1,
        max_length=1,
        description="CSV only: the character between fields, e.g. ';' or '\\t'. A CSV file starts with a header row.",
    )
    primary_key: list[str] = Field(default_factory=list, description="Column(s) that identify a row.")
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
    write_disposition: WriteDisposition | None = Field(None, description="Overrides the source's default.")

    _normalize_key = field_validator("primary_key", mode="before")(_one_key_is_a_list)

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


class FilesSource(TableDefaults, SourceBase):
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
        duplicates = _duplicates([table.name for table in tables])
        if duplicates:
            raise ValueError(f"table names must be unique; repeated: {', '.join(duplicates)}")
        return tables

    def cross_checks(self) -> list[Issue]:
        issues = []
        for index, table in enumerate(self.tables):
            disposition = effective_disposition(
                table.write_disposition, self.write_disposition, bool(table.cursor or table.new_files_only)
            )
            issues += _key_checks(
                f"tables[{index}]",
                disposition=disposition,
                primary_key=table.primary_key or self.primary_key,
                incremental=bool(table.cursor or table.new_files_only),
                # new_files_only merges on the file the rows came from, so it needs no key of its own.
                has_other_key=table.new_files_only,
            )
        return issues


# --- rest_api -----------------------------------------------------------------------------------


class BearerAuth(_StrictModel):
    """`Authorization: Bearer <token>`."""

    type: Literal["bearer"]
    token: SecretRef = Field(description="Where the token comes from: {env: NAME} or {connection: ID}.")


class ApiKeyAuth(_StrictModel):
    """An API key sent in a header, a query parameter or a cookie."""

    type: Literal["api_key"]
    name: str = Field("X-API-Key", description="Header, query parameter or cookie name.")
    location: Literal["header", "query", "cookie"] = Field("header", description="Where the key is sent.")
    api_key: SecretRef = Field(description="Where the key comes from: {env: NAME} or {connection: ID}.")


class BasicAuth(_StrictModel):
    """HTTP basic auth."""

    type: Literal["basic"]
    username: str | None = Field(
        None, description="User name; unset with `password: {connection: ID}` takes the connection's login."
    )
    password: SecretRef = Field(description="Where the password comes from: {env: NAME} or {connection: ID}.")


RestAuth = Annotated[BearerAuth | ApiKeyAuth | BasicAuth, Field(discriminator="type")]
AUTH_TYPES = ("bearer", "api_key", "basic")


class PageNumberPaginator(_StrictModel):
    """?page=1, ?page=2, ... until an empty page, `total_path` pages or `maximum_page`."""

    type: Literal["page_number"]
    page_param: str = Field("page", description="Query parameter carrying the page number.")
    base_page: int = Field(1, ge=0, description="Number of the first page (0 or 1).")
    total_path: str | None = Field(None, description="JSON path of the total number of pages in a response.")
    maximum_page: int | None = Field(None, ge=1, description="Stop after this page.")


class OffsetPaginator(_StrictModel):
    """?offset=0&limit=N, ?offset=N&limit=N, ... until an empty page or `total_path` items."""

    type: Literal["offset"]
    limit: int = Field(ge=1, description="Items per page.")
    offset_param: str = Field("offset", description="Query parameter carrying the offset.")
    limit_param: str = Field("limit", description="Query parameter carrying the page size.")
    total_path: str | None = Field(None, description="JSON path of the total number of items in a response.")
    maximum_offset: int | None = Field(None, ge=1, description="Stop at this offset.")


class CursorPaginator(_StrictModel):
    """The response holds a cursor (`cursor_path`) that the next request sends as `cursor_param`."""

    type: Literal["cursor"]
    cursor_path: str = Field(description="JSON path of the next cursor in a response, e.g. meta.next_cursor.")
    cursor_param: str = Field(description="Query parameter that sends the cursor back, e.g. cursor.")


class NextLinkPaginator(_StrictModel):
    """The response body holds the URL of the next page."""

    type: Literal["next_link"]
    next_url_path: str = Field(description="JSON path of the next page's URL, e.g. links.next.")


class HeaderLinkPaginator(_StrictModel):
    """The next page's URL is in the `Link: <...>; rel="next"` response header."""

    type: Literal["header_link"]


class SinglePagePaginator(_StrictModel):
    """One request, no pagination."""

    type: Literal["single_page"]


RestPaginator = Annotated[
    PageNumberPaginator
    | OffsetPaginator
    | CursorPaginator
    | NextLinkPaginator
    | HeaderLinkPaginator
    | SinglePagePaginator,
    Field(discriminator="type"),
]
PAGINATOR_TYPES = ("page_number", "offset", "cursor", "next_link", "header_link", "single_page")


class RestIncremental(_StrictModel):
    """Bind a resource to the run's interval: send the bounds as query parameters, keep the rows inside them."""

    cursor: str = Field(description="Field of each record holding its time, e.g. updated_at (ISO text or epoch).")
    start_param: str | None = Field(None, description="Query parameter that receives the interval start.")
    end_param: str | None = Field(None, description="Query parameter that receives the interval end (exclusive).")
    param_format: str = Field(
        "iso",
        description=(
            "How the bounds are sent: iso (2024-01-02T00:00:00Z), date (2024-01-02), unix (epoch seconds) or a "
            "strftime pattern such as '%Y-%m-%d %H:%M:%S'."
        ),
    )

    @field_validator("param_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in ("iso", "date", "unix") and "%" not in value:
            raise ValueError("use iso, date, unix or a strftime pattern containing '%'")
        return value


PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class RestResource(_StrictModel):
    """One endpoint, loaded as one table."""

    name: Annotated[str, Field(pattern=TABLE_NAME_PATTERN, description="Table name in raw_<source>.")]
    path: str | None = Field(
        None,
        description="Endpoint path relative to base_url (default: the name). A child uses {field} of its parent.",
    )
    method: Literal["GET", "POST"] = Field("GET", description="HTTP method.")
    params: dict[str, str | int | float | bool] = Field(default_factory=dict, description="Fixed query parameters.")
    data_selector: str | None = Field(None, description="JSON path of the records in a response (default: guessed).")
    primary_key: list[str] = Field(default_factory=list, description="Field(s) that identify a record.")
    write_disposition: WriteDisposition | None = Field(None, description="Overrides the source's default.")
    paginator: RestPaginator | None = Field(None, description="Overrides the source's paginator.")
    incremental: RestIncremental | None = Field(None, description="Load only the records of the run's interval.")
    parent: str | None = Field(
        None, description="Name of another resource: this one is requested once per parent record."
    )
    include_from_parent: list[str] = Field(
        default_factory=list, description="Parent fields copied into each child record (as _<parent>_<field>)."
    )

    _normalize_key = field_validator("primary_key", mode="before")(_one_key_is_a_list)

    @field_validator("path")
    @classmethod
    def _relative_path(cls, value: str | None) -> str | None:
        if value is not None and "://" in value:
            raise ValueError("the path is relative to base_url; put the scheme and host in base_url")
        return value

    @property
    def endpoint_path(self) -> str:
        return self.path if self.path is not None else self.name

    @property
    def placeholders(self) -> list[str]:
        return PLACEHOLDER.findall(self.endpoint_path)


def check_no_literal_secrets_in(mapping: dict[str, Any], what: str) -> None:
    """Headers and query parameters are written in the file: refuse the ones that carry credentials."""
    for key in mapping:
        if SECRET_KEY.search(key):
            raise literal_secret_error(f"{what} {key!r} looks like a credential; it")


SECRET_KEY = re.compile(
    r"(?i)(^authorization$|^cookie$|password|passwd|secret|token|api[-_]?key|apikey|access[-_]?key|signature)"
)


class RestApiSource(TableDefaults, SourceBase):
    """A REST API, loaded with dlt's rest_api source (pagination, auth, retries on 429/5xx)."""

    kind: Literal["rest_api"]
    base_url: str = Field(description="http(s) URL that resource paths are relative to.")
    auth: RestAuth | None = Field(None, description="bearer, api_key or basic; secrets by reference only.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers (no credentials).")
    paginator: RestPaginator | None = Field(None, description="Default paginator (unset: dlt detects it).")
    request_attempts: int = Field(
        5, ge=1, le=20, description="Attempts per request; 429 and 5xx answers are retried with backoff."
    )
    request_timeout: float = Field(60, gt=0, le=3600, description="Seconds to wait for each response.")
    resources: list[RestResource] = Field(min_length=1, description="The endpoints to load.")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("use an http(s) URL with a host, e.g. https://api.example.com/v1/")
        if parts.username or parts.password:
            raise literal_secret_error("a user or password in the URL")
        return value

    @field_validator("headers")
    @classmethod
    def _no_credential_headers(cls, value: dict[str, str]) -> dict[str, str]:
        check_no_literal_secrets_in(value, "header")
        return value

    @field_validator("resources")
    @classmethod
    def _resource_names_unique(cls, resources: list[RestResource]) -> list[RestResource]:
        duplicates = _duplicates([resource.name for resource in resources])
        if duplicates:
            raise ValueError(f"resource names must be unique; repeated: {', '.join(duplicates)}")
        for resource in resources:
            check_no_literal_secrets_in(resource.params, f"query parameter of {resource.name!r}")
        return resources

    def cross_checks(self) -> list[Issue]:
        issues = []
        names = [resource.name for resource in self.resources]
        for index, resource in enumerate(self.resources):
            where = f"resources[{index}]"
            if resource.parent is not None:
                if resource.parent == resource.name or resource.parent not in names:
                    others = ", ".join(n for n in names if n != resource.name) or "(none)"
                    issues.append(
                        Issue(
                            f"{where}.parent",
                            f"{resource.parent!r} is not another resource of this source",
                            f"use one of: {others}",
                        )
                    )
                elif not resource.placeholders:
                    issues.append(
                        Issue(
                            f"{where}.path",
                            "a child resource's path must use a field of its parent, e.g. orders/{id}/items",
                            "add a {field} placeholder naming a field of the parent's records",
                        )
                    )
            elif resource.placeholders or resource.include_from_parent:
                issues.append(
                    Issue(
                        f"{where}.parent",
                        "the path has {placeholders} or include_from_parent but the resource has no parent",
                        "add `parent: <resource name>` or remove the placeholders",
                    )
                )
            disposition = effective_disposition(
                resource.write_disposition, self.write_disposition, resource.incremental is not None
            )
            issues += _key_checks(
                where,
                disposition=disposition,
                primary_key=resource.primary_key or self.primary_key,
                incremental=resource.incremental is not None,
            )
        issues += _parent_cycles(self.resources)
        return issues


def _parent_cycles(resources: list[RestResource]) -> list[Issue]:
    parent_of = {resource.name: resource.parent for resource in resources}
    for index, resource in enumerate(resources):
        seen, current = {resource.name}, resource.parent
        while current in parent_of:
            if current in seen:
                return [
                    Issue(
                        f"resources[{index}].parent",
                        f"the parents form a cycle through {current!r}",
                        "make one resource of the cycle a top-level resource (no parent)",
                    )
                ]
            seen.add(current)
            current = parent_of[current]
    return []


# --- sql_database -------------------------------------------------------------------------------


class SqlCredentials(_StrictModel):
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


class SqlTable(_StrictModel):
    """One table (or view) of the database."""

    name: Annotated[str, Field(pattern=SQL_IDENTIFIER_PATTERN, description="Table or view name in the database.")]
    primary_key: list[str] = Field(default_factory=list, description="Column(s) that identify a row.")
    cursor: str | None = Field(
        None,
        description=(
            "Incremental: a date/timestamp column; each run selects interval start <= cursor < end in SQL "
            "(merged on primary_key by default). Without it the table is read in full."
        ),
    )
    write_disposition: WriteDisposition | None = Field(None, description="Overrides the source's default.")
    columns: list[str] = Field(default_factory=list, description="Only these columns (default: all).")

    _normalize_key = field_validator("primary_key", mode="before")(_one_key_is_a_list)


class SqlDatabaseSource(TableDefaults, SourceBase):
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
        duplicates = _duplicates([table.name.lower() for table in tables])
        if duplicates:
            raise ValueError(f"table names must be unique; repeated: {', '.join(duplicates)}")
        return tables

    def cross_checks(self) -> list[Issue]:
        issues = []
        for index, table in enumerate(self.tables):
            disposition = effective_disposition(table.write_disposition, self.write_disposition, bool(table.cursor))
            issues += _key_checks(
                f"tables[{index}]",
                disposition=disposition,
                primary_key=table.primary_key or self.primary_key,
                incremental=bool(table.cursor),
            )
            if table.columns and table.cursor and table.cursor not in table.columns:
                issues.append(
                    Issue(f"tables[{index}].columns", "the cursor column is not selected", "add it to `columns`")
                )
        return issues


# --- python -------------------------------------------------------------------------------------


class PythonSource(TableDefaults, SourceBase):
    """Your own dlt code: a function that returns a dlt source or resource(s)."""

    kind: Literal["python"]
    function: str = Field(
        description=(
            "'package.module:function' importable from the project root, e.g. include.examples.custom_source:calendar. "
            "It is called with `start` and `end` (the run's interval, UTC datetimes) if it accepts them."
        )
    )
    args: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Keyword arguments for the function; a value {env: NAME} or {connection: ID} is resolved at run time."
        ),
    )

    @field_validator("function")
    @classmethod
    def _module_colon_function(cls, value: str) -> str:
        if not re.match(FUNCTION_PATTERN, value):
            raise ValueError("use 'package.module:function', e.g. include.examples.custom_source:calendar")
        return value

    @field_validator("args")
    @classmethod
    def _secret_references(cls, args: dict[str, Any]) -> dict[str, Any]:
        for key, value in args.items():
            if isinstance(value, dict) and ({"env", "connection"} & value.keys()):
                SecretRef.model_validate(value)
            elif SECRET_KEY.search(key) and isinstance(value, str):
                raise literal_secret_error(f"argument {key!r} looks like a credential; it")
        return args


SourceModel = SyntheticSource | FilesSource | RestApiSource | SqlDatabaseSource | PythonSource
SourceConfig = Annotated[SourceModel, Field(discriminator="kind")]
SOURCE_ADAPTER: TypeAdapter[SourceModel] = TypeAdapter(SourceConfig)
SOURCE_KINDS: tuple[str, ...] = ("synthetic", "files", "rest_api", "sql_database", "python")
