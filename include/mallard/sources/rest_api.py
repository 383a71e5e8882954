"""`kind: rest_api`: a declarative REST API, built with dlt's `rest_api_resources`.

The config maps onto dlt's RESTAPIConfig; Mallard adds secrets by reference (resolved here, at
task run time), the run's interval as query parameters (start_param/end_param, through
`bound_to_interval`) and retries on 429/5xx from dlt's requests client.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

from dlt.common import logger as dlt_logging
from dlt.extract import DltResource
from dlt.sources.helpers.requests import Client, Response
from dlt.sources.helpers.rest_client.auth import APIKeyAuth, AuthConfigBase, BearerTokenAuth, HttpBasicAuth
from dlt.sources.rest_api import rest_api_resources as dlt_rest_api_resources

from include.mallard.config import RestApiSource, RestResource, SecretRef
from include.mallard.config.kinds.rest_api import PLACEHOLDER, ApiKeyAuth, BasicAuth, BearerAuth, RestIncremental
from include.mallard.interval import Interval
from include.mallard.secrets import connection_login, resolve_secret
from include.mallard.sources.hints import apply_table_hints, typed_cursor

UTC = dt.UTC


def _auth(config: RestApiSource) -> AuthConfigBase | None:
    auth = config.auth
    if isinstance(auth, BearerAuth):
        return BearerTokenAuth(token=_secret(auth.token))
    if isinstance(auth, ApiKeyAuth):
        return APIKeyAuth(name=auth.name, api_key=_secret(auth.api_key), location=auth.location)
    if isinstance(auth, BasicAuth):
        username = auth.username or connection_login(auth.password)
        if not username:
            raise ValueError("basic auth needs `username`, or `password: {connection: ID}` with a login")
        return HttpBasicAuth(username=username, password=_secret(auth.password))
    return None


class NotJsonResponseError(ValueError):
    """A successful API response whose body is not JSON (a proxy's or a maintenance page, a wrong path)."""


def _secret_query_params(config: RestApiSource) -> set[str]:
    auth = config.auth
    names = {auth.name} if isinstance(auth, ApiKeyAuth) and auth.location == "query" else set()
    return names | {key for r in config.resources for key, value in r.params.items() if isinstance(value, SecretRef)}


class _RedactSecrets(logging.Filter):
    """Replaces resolved secret values (and their URL-encoded forms) in dlt's log records with ***.

    dlt logs each request's URL at INFO (redacting only its own list of names) and its headers at
    DEBUG: a header or parameter resolved from a reference must not reach them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.values: set[str] = set()

    def add(self, value: str) -> None:
        if len(value) >= 4:  # replacing a shorter value would garble every log line, not hide a secret
            self.values |= {value, quote(value, safe=""), quote_plus(value, safe="")}

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if any(value in text for value in self.values):
            for value in sorted(self.values, key=len, reverse=True):
                text = text.replace(value, "***")
            record.msg, record.args = text, None
        return True


_REDACT = _RedactSecrets()


def _resolved(values: dict[str, Any]) -> dict[str, Any]:
    """Headers or params with their {env: ...}/{connection: ...} values resolved, kept out of dlt's logs."""
    resolved = {}
    for key, value in values.items():
        if isinstance(value, SecretRef):
            value = _secret(value)
        resolved[key] = value
    return resolved


def _secret(ref: SecretRef) -> str:
    value = resolve_secret(ref)
    _REDACT.add(value)
    return value


def _redact_dlt_logs() -> None:
    # dlt's logger is named after its run context ("dlt" unless configured) and created lazily.
    for target in {logging.getLogger("dlt"), dlt_logging.LOGGER} - {None}:
        if _REDACT not in target.filters:
            target.addFilter(_REDACT)


def redacted_url(url: str, secret_params: set[str]) -> str:
    """`url` with the values of `secret_params` in its query replaced by ***."""
    parts = urlsplit(url)
    query = [(key, "***" if key in secret_params else value) for key, value in parse_qsl(parts.query, True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def require_json(source_name: str, secret_params: set[str]) -> Callable[[Response], Response]:
    """A dlt response action: fail a 2xx answer whose body is not JSON, naming the source and URL.

    Without it, dlt fails later with a bare `Expecting value: line 1 column 1 (char 0)`.
    """

    def check(response: Response, *args: Any, **kwargs: Any) -> Response:
        if response.ok and response.content:
            try:
                response.json()
            except ValueError as error:
                url = redacted_url(response.url, secret_params)
                raise NotJsonResponseError(
                    f"source {source_name!r}: {response.request.method} {url} answered {response.status_code} "
                    f"with a body that is not JSON (Content-Type {response.headers.get('Content-Type')!r}, "
                    f"starts with {response.text[:60]!r}). Check base_url and the resource path; the API may be "
                    "down for maintenance. Nothing of this run was loaded."
                ) from error
        return response

    return check


# Mallard's paginator names that differ from dlt's; the models' other fields are dlt's keys.
_DLT_PAGINATOR_TYPE = {"next_link": "json_link"}
# Numbered pages stop at the first empty page when the API gives no total.
_STOPS_AFTER_EMPTY_PAGE = {"page_number", "offset"}


def paginator_config(paginator: Any) -> dict[str, Any] | None:
    """dlt's paginator config for one of Mallard's paginator models (their fields are dlt's keys)."""
    if paginator is None:
        return None
    # None stays explicit: an unset `total_path` means "no total" to Mallard, while dlt's default is "total".
    config = paginator.model_dump()
    config["type"] = _DLT_PAGINATOR_TYPE.get(paginator.type, paginator.type)
    if paginator.type in _STOPS_AFTER_EMPTY_PAGE:
        config["stop_after_empty_page"] = True
    return config


def bound_formatter(param_format: str) -> Callable[[Any], Any]:
    """How an interval bound is written into a query parameter."""

    def convert(value: Any) -> Any:
        if not isinstance(value, dt.datetime):
            return value
        moment = value.astimezone(UTC)
        if param_format == "iso":
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if param_format == "date":
            return moment.date().isoformat()
        if param_format == "unix":
            return int(moment.timestamp())
        return moment.strftime(param_format)

    return convert


def _incremental_config(incremental: RestIncremental) -> dict[str, Any]:
    config: dict[str, Any] = {"cursor_path": incremental.cursor, "convert": bound_formatter(incremental.param_format)}
    if incremental.start_param:
        config["start_param"] = incremental.start_param
    if incremental.end_param:
        config["end_param"] = incremental.end_param
    return config


def _resource_config(
    resource: RestResource, default_key: list[str], response_check: Callable[[Response], Response]
) -> dict[str, Any]:
    path = resource.endpoint_path
    if resource.parent:
        # {field} of the parent record, in dlt's placeholder syntax.
        path = PLACEHOLDER.sub(lambda match: "{resources." + resource.parent + "." + match[1] + "}", path)
    endpoint: dict[str, Any] = {
        "path": path,
        "method": resource.method,
        "params": _resolved(resource.params),
        "response_actions": [response_check],
    }
    if resource.data_selector:
        endpoint["data_selector"] = resource.data_selector
    if resource.paginator is not None:
        endpoint["paginator"] = paginator_config(resource.paginator)
    if resource.incremental is not None:
        endpoint["incremental"] = _incremental_config(resource.incremental)
    config: dict[str, Any] = {"name": resource.name, "endpoint": endpoint}
    primary_key = resource.primary_key or default_key
    if primary_key:
        config["primary_key"] = primary_key
    if resource.include_from_parent:
        config["include_from_parent"] = resource.include_from_parent
    return config


def build(config: RestApiSource, interval: Interval) -> list[DltResource]:
    """One dlt resource per configured endpoint, bound to `interval` where incremental."""
    _redact_dlt_logs()
    client: dict[str, Any] = {
        "base_url": config.base_url,
        "headers": _resolved(config.headers),
        # dlt's requests client retries 429 and 5xx with exponential backoff (honouring Retry-After).
        "session": Client(
            raise_for_status=False,
            request_timeout=config.request_timeout,
            request_max_attempts=config.request_attempts,
        ).session,
    }
    if (auth := _auth(config)) is not None:
        client["auth"] = auth
    if (paginator := paginator_config(config.paginator)) is not None:
        client["paginator"] = paginator
    check = require_json(config.name, _secret_query_params(config))
    built = dlt_rest_api_resources(
        {"client": client, "resources": [_resource_config(r, config.primary_key, check) for r in config.resources]}
    )
    by_name = {resource.name: resource for resource in built}
    resources = []
    for resource in config.resources:
        dlt_resource = apply_table_hints(
            by_name[resource.name], config.settings_of(resource), cursor=resource.cursor_column, interval=interval
        )
        if resource.cursor_column:
            # Typed cursor values before the interval filter compares them with the bounds.
            dlt_resource.add_map(typed_cursor(resource.cursor_column), insert_at=1)
        resources.append(dlt_resource)
    return resources
