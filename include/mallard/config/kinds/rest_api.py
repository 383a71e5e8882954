"""`kind: rest_api`: a declarative REST API (dlt's rest_api source), secrets by reference only."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, field_validator

from include.mallard.config.base import (
    ConfigValueError,
    Issue,
    SecretRef,
    StrictModel,
    literal_secret_error,
    value_or_reference,
)
from include.mallard.config.literal_secrets import (
    looks_like_token,
    secret_name,
    secret_query_params,
    url_secret_fix,
    url_secret_message,
)
from include.mallard.config.tables import TableBase, TablesSource, unique_names

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
HeaderValue = value_or_reference(str)
ParamValue = value_or_reference(str | int | float | bool)


def check_no_literal_secrets_in(mapping: dict[str, Any], what: str) -> None:
    """Headers and query parameters are written in the file: refuse literal values that carry credentials.

    A credential is recognised by its name (`X-Api-Key`, `sig`, `access_token`, ...) or by its shape
    (`Basic dXNlcjpwdw==`, one long random-looking word). Its place is a reference instead.
    """
    for key, value in mapping.items():
        if isinstance(value, SecretRef):
            continue
        named = secret_name(key)
        if named or (isinstance(value, str) and looks_like_token(value)):
            why = "is named like a credential" if named else "has a value that looks like a credential"
            raise ConfigValueError(
                f"{what} {key!r} {why}; a secret must not be written in the file (value hidden)",
                fix=f"write `{key}: {{env: MY_SECRET}}` or `{key}: {{connection: my_conn}}` (resolved when the "
                "task runs; add `field: extra.<key>` to read another part of the connection)",
                hide_input=True,
            )


def check_no_secrets_in_url(url: str) -> None:
    """A URL's query is written in the file too: refuse parameters named like credentials."""
    if names := secret_query_params(url):
        raise ConfigValueError(url_secret_message(names), fix=url_secret_fix(names[0]), hide_input=True)


class BearerAuth(StrictModel):
    """`Authorization: Bearer <token>`."""

    type: Literal["bearer"]
    token: SecretRef = Field(description="Where the token comes from: {env: NAME} or {connection: ID}.")


class ApiKeyAuth(StrictModel):
    """An API key sent in a header, a query parameter or a cookie."""

    type: Literal["api_key"]
    name: str = Field("X-API-Key", description="Header, query parameter or cookie name.")
    location: Literal["header", "query", "cookie"] = Field("header", description="Where the key is sent.")
    api_key: SecretRef = Field(description="Where the key comes from: {env: NAME} or {connection: ID}.")


class BasicAuth(StrictModel):
    """HTTP basic auth."""

    type: Literal["basic"]
    username: str | None = Field(
        None, description="User name; unset with `password: {connection: ID}` takes the connection's login."
    )
    password: SecretRef = Field(description="Where the password comes from: {env: NAME} or {connection: ID}.")


RestAuth = Annotated[BearerAuth | ApiKeyAuth | BasicAuth, Field(discriminator="type")]


class PageNumberPaginator(StrictModel):
    """?page=1, ?page=2, ... until an empty page, `total_path` pages or `maximum_page`."""

    type: Literal["page_number"]
    page_param: str = Field("page", description="Query parameter carrying the page number.")
    base_page: int = Field(1, ge=0, description="Number of the first page (0 or 1).")
    total_path: str | None = Field(None, description="JSON path of the total number of pages in a response.")
    maximum_page: int | None = Field(None, ge=1, description="Stop after this page.")


class OffsetPaginator(StrictModel):
    """?offset=0&limit=N, ?offset=N&limit=N, ... until an empty page or `total_path` items."""

    type: Literal["offset"]
    limit: int = Field(ge=1, description="Items per page.")
    offset_param: str = Field("offset", description="Query parameter carrying the offset.")
    limit_param: str = Field("limit", description="Query parameter carrying the page size.")
    total_path: str | None = Field(None, description="JSON path of the total number of items in a response.")
    maximum_offset: int | None = Field(None, ge=1, description="Stop at this offset.")


class CursorPaginator(StrictModel):
    """The response holds a cursor (`cursor_path`) that the next request sends as `cursor_param`."""

    type: Literal["cursor"]
    cursor_path: str = Field(description="JSON path of the next cursor in a response, e.g. meta.next_cursor.")
    cursor_param: str = Field(description="Query parameter that sends the cursor back, e.g. cursor.")


class NextLinkPaginator(StrictModel):
    """The response body holds the URL of the next page."""

    type: Literal["next_link"]
    next_url_path: str = Field(description="JSON path of the next page's URL, e.g. links.next.")


class HeaderLinkPaginator(StrictModel):
    """The next page's URL is in the `Link: <...>; rel="next"` response header."""

    type: Literal["header_link"]


class SinglePagePaginator(StrictModel):
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


class RestIncremental(StrictModel):
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


class RestResource(TableBase):
    """One endpoint, loaded as one table."""

    path: str | None = Field(
        None,
        description="Endpoint path relative to base_url (default: the name). A child uses {field} of its parent.",
    )
    method: Literal["GET", "POST"] = Field("GET", description="HTTP method.")
    params: dict[str, ParamValue] = Field(
        default_factory=dict,
        description="Fixed query parameters; a secret one as {env: NAME} or {connection: ID}, resolved at run time.",
    )
    data_selector: str | None = Field(None, description="JSON path of the records in a response (default: guessed).")
    paginator: RestPaginator | None = Field(None, description="Overrides the source's paginator.")
    incremental: RestIncremental | None = Field(None, description="Load only the records of the run's interval.")
    parent: str | None = Field(
        None, description="Name of another resource: this one is requested once per parent record."
    )
    include_from_parent: list[str] = Field(
        default_factory=list, description="Parent fields copied into each child record (as _<parent>_<field>)."
    )

    @field_validator("path")
    @classmethod
    def _relative_path(cls, value: str | None) -> str | None:
        if value is not None and "://" in value:
            raise ValueError("the path is relative to base_url; put the scheme and host in base_url")
        if value is not None:
            check_no_secrets_in_url(value)
        return value

    @field_validator("params")
    @classmethod
    def _no_literal_secret_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_no_literal_secrets_in(value, "query parameter")
        return value

    @property
    def endpoint_path(self) -> str:
        return self.path if self.path is not None else self.name

    @property
    def placeholders(self) -> list[str]:
        return PLACEHOLDER.findall(self.endpoint_path)

    @property
    def cursor_column(self) -> str | None:
        return self.incremental.cursor if self.incremental is not None else None


class RestApiSource(TablesSource):
    """A REST API, loaded with dlt's rest_api source (pagination, auth, retries on 429/5xx)."""

    TABLES_FIELD: ClassVar[str] = "resources"
    _incremental_ancestors: dict[str, str] | None = PrivateAttr(None)  # computed once: sources may hold 100k

    kind: Literal["rest_api"]
    base_url: str = Field(description="http(s) URL that resource paths are relative to.")
    auth: RestAuth | None = Field(None, description="bearer, api_key or basic; secrets by reference only.")
    headers: dict[str, HeaderValue] = Field(
        default_factory=dict,
        description="Extra request headers; a secret one as {env: NAME} or {connection: ID}, resolved at run time.",
    )
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
        check_no_secrets_in_url(value)
        return value

    @field_validator("headers")
    @classmethod
    def _no_credential_headers(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_no_literal_secrets_in(value, "header")
        return value

    @field_validator("resources")
    @classmethod
    def _resource_names_unique(cls, resources: list[RestResource]) -> list[RestResource]:
        return unique_names(resources, "resource")

    def incremental_through(self, table: TableBase) -> str | None:
        """The nearest incremental ancestor of a child resource: the child gets only its interval's share."""
        if self._incremental_ancestors is None:
            self._incremental_ancestors = _incremental_ancestors(self.resources)
        return self._incremental_ancestors.get(table.name)

    def table_issues(self, where: str, table: TableBase) -> list[Issue]:
        assert isinstance(table, RestResource)
        if table.parent is None and (table.placeholders or table.include_from_parent):
            return [
                Issue(
                    f"{where}.parent",
                    "the path has {placeholders} or include_from_parent but the resource has no parent",
                    "add `parent: <resource name>` or remove the placeholders",
                )
            ]
        return []

    def cross_checks(self) -> list[Issue]:
        return super().cross_checks() + _parent_issues(self.resources) + _parent_cycles(self.resources)


def _incremental_ancestors(resources: list[RestResource]) -> dict[str, str]:
    """Each child resource's nearest incremental ancestor, for the children that have one (linear)."""
    by_name = {resource.name: resource for resource in resources}
    found: dict[str, str | None] = {}
    for name in by_name:
        path: list[str] = []  # walked up from `name` until an answer is known
        on_path: set[str] = set()
        answer: str | None = None
        current = name
        while current not in found:
            path.append(current)
            on_path.add(current)
            parent = by_name[current].parent
            if parent not in by_name or parent in on_path:  # a cycle is a validation error of its own
                break
            if by_name[parent].is_incremental:
                answer = parent
                break
            current = parent
        else:
            answer = found[current]
        for walked in path:  # every resource on the way has the same nearest incremental ancestor
            found[walked] = answer
    return {name: through for name, through in found.items() if through is not None}


def _parent_issues(resources: list[RestResource]) -> list[Issue]:
    # One set of names for all resources: a per-resource list made this quadratic (34 s at 20,000).
    names = {resource.name for resource in resources}
    issues = []
    for index, resource in enumerate(resources):
        if resource.parent is None:
            continue
        where = f"resources[{index}]"
        if resource.parent == resource.name or resource.parent not in names:
            others = [r.name for r in resources[:11] if r.name != resource.name][:10]
            listed = ", ".join(others) + (", ..." if len(resources) > len(others) + 1 else "") or "(none)"
            issues.append(
                Issue(
                    f"{where}.parent",
                    f"{resource.parent!r} is not another resource of this source",
                    f"use one of: {listed}",
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
    return issues


def _parent_cycles(resources: list[RestResource]) -> list[Issue]:
    """The first resource whose parents lead into a cycle (each resource is walked once: linear)."""
    parent_of = {r.name: r.parent for r in resources if r.parent is not None and r.parent != r.name}
    finished: set[str] = set()
    for index, resource in enumerate(resources):
        path: list[str] = []
        on_path: set[str] = set()
        current: str | None = resource.name
        while current is not None and current not in finished:
            if current in on_path:
                return [
                    Issue(
                        f"resources[{index}].parent",
                        f"the parents form a cycle through {current!r}",
                        "make one resource of the cycle a top-level resource (no parent)",
                    )
                ]
            path.append(current)
            on_path.add(current)
            current = parent_of.get(current)
        finished.update(path)
    return []
