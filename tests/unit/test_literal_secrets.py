"""Literal secrets in headers, query parameters and URLs are refused; references there are resolved at run time.

The run-time test serves a local API on 127.0.0.1 and runs the real rest_api source through
Mallard's extract and load into a DuckDB file, with dlt logging at DEBUG (which prints every
request's URL and headers): the resolved values reach the API and nothing else.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest

from include.mallard.config import ConfigError, RestApiSource, SecretRef
from include.mallard.config.literal_secrets import looks_like_token, secret_name, secret_query_params
from include.mallard.config.loader import parse_source_file
from include.mallard.interval import Interval
from include.mallard.secrets import reference_issues

UTC = dt.UTC

SECRET_NAMES = [
    "token",
    "access_token",
    "X-Auth-Token",
    "apitoken",
    "api_key",
    "apiKey",
    "X-API-KEY",
    "key",
    "Ocp-Apim-Subscription-Key",
    "client_secret",
    "sig",
    "signature",
    "X-Amz-Signature",
    "password",
    "db_passwd",
    "pwd",
    "auth",
    "Authorization",
    "credentials",
    "session",
    "session_id",
    "sessionid",
    "access",
    "X-Access",
    "Cookie",
]
PLAIN_NAMES = [
    "page_key",
    "sort_key",
    "primary_key",
    "idempotency_key",
    "pageToken",
    "next_token",
    "continuation_token",
    "access_type",
    "access_level",
    "session_length",
    "author",
    "keyword",
    "tokenizer",
    "client_id",
    "page",
    "limit",
    "Accept",
    "X-Request-Id",
    "fields",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_names_users_give_secrets_are_recognised(name):
    assert secret_name(name)


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_names_that_only_resemble_secrets_are_not(name):
    assert not secret_name(name)


def test_token_shaped_values():
    assert looks_like_token("Zk3q9XvB7mW2pL8rT5yN4cJ6")
    assert looks_like_token("Basic dXNlcjpwYXNzd29yZA==")
    assert looks_like_token("0123456789abcdef0123456789abcdef")
    for plain in ("application/json", "mallard/1.0 (+https://example.com)", "2024-01-01", "en-US,en;q=0.9"):
        assert not looks_like_token(plain), plain
    assert not looks_like_token("0f8fad5b-d9cb-469f-a165-70867728950e")  # a request id (UUID)
    assert not looks_like_token("created_at_descending_order")


def test_query_strings_of_urls_and_paths():
    assert secret_query_params("https://api.example.com/v1/?access=abc&page=2") == ["access"]
    assert secret_query_params("items?page_size=100&token=abc") == ["token"]
    assert secret_query_params("orders/{id}/items?sig={sig}") == []  # a parent's field, not a literal
    assert secret_query_params("items?page_key=3&sort_key=id") == []
    assert secret_query_params("What is this? It keeps token=abc") == []  # prose, not a query


def _source(tmp_path: Path, text: str) -> RestApiSource:
    path = tmp_path / "api.yml"
    path.write_text("kind: rest_api\nbase_url: https://api.example.com/v1/\n" + text)
    source = parse_source_file(path)
    assert isinstance(source, RestApiSource)
    return source


def test_headers_and_params_that_only_resemble_secrets_are_accepted(tmp_path):
    source = _source(
        tmp_path,
        "headers: {Accept: application/json, X-Request-Id: 0f8fad5b-d9cb-469f-a165-70867728950e}\n"
        "resources:\n  - name: items\n    path: items?page_size=100\n"
        "    params: {page_key: '3', sort_key: id, access_type: offline, pageToken: start}\n",
    )
    assert source.resources[0].params["access_type"] == "offline"


def test_references_are_accepted_where_literals_are_refused(tmp_path):
    source = _source(
        tmp_path,
        "headers:\n  X-Api-Key: {env: PARTNER_API_KEY}\n"
        "resources:\n  - name: exports\n    params:\n      sig: {connection: partner_files, field: extra.sig}\n",
    )
    assert source.headers["X-Api-Key"] == SecretRef(env="PARTNER_API_KEY")
    assert source.resources[0].params["sig"] == SecretRef(connection="partner_files", field="extra.sig")


def test_validate_checks_the_references_of_headers_and_params(tmp_path, monkeypatch):
    monkeypatch.delenv("MALLARD_TEST_UNSET_HEADER", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_MALLARD_TEST_NO_SUCH_CONNECTION", raising=False)
    source = _source(
        tmp_path,
        "headers: {X-Api-Key: {env: MALLARD_TEST_UNSET_HEADER}}\n"
        "resources: [{name: a, params: {sig: {connection: mallard_test_no_such_connection}}}]\n",
    )
    fields = {issue.field for issue in reference_issues(source)}
    assert fields == {"headers.X-Api-Key.env", "resources[0].params.sig.connection"}


def test_a_literal_secret_in_a_header_is_refused_by_name_and_by_shape(tmp_path):
    for header in ("X-Partner-Token: short1", "X-Client: Zk3q9XvB7mW2pL8rT5yN4cJ6", "X-Auth: Basic dXNlcjpwdw=="):
        with pytest.raises(ConfigError) as raised:
            _source(tmp_path, f"headers: {{{header}}}\nresources: [{{name: a}}]\n")
        [problem] = raised.value.problems
        assert problem.field == "headers" and "value hidden" in problem.message and "{env: MY_SECRET}" in problem.fix
        assert header.split(": ")[1] not in str(problem)


@pytest.mark.parametrize(
    ("token", "what"),
    [
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "a Stripe key"),
        ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", "a GitHub token"),
    ],
)
def test_a_token_written_where_an_env_var_name_goes_is_refused(tmp_path, token, what):
    # Both are valid variable names: `mallard add source --secret sk_live_...` wrote it into the file.
    with pytest.raises(ConfigError) as raised:
        _source(tmp_path, f"headers: {{X-Api-Key: {{env: {token}}}}}\nresources: [{{name: a}}]\n")
    [problem] = raised.value.problems
    assert problem.field == "headers.X-Api-Key.env" and f"looks like {what}" in problem.message, problem
    assert "value hidden" in problem.message and token not in str(problem)


# --- run time: resolved, sent, never written out ------------------------------------------------

HEADER_SECRET = "hdr-Secret-4f1c9a7e2b"
PARAM_SECRET = "sig/Secret+9d3e==77"  # URL-encodes to sig%2FSecret%2B9d3e%3D%3D77


class _Api:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, list[str]]]] = []

    def handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                api.requests.append((parts.path, dict(self.headers), parse_qs(parts.query)))
                if parts.path == "/broken":
                    body, kind = b"<html>maintenance</html>", "text/html"
                else:
                    body, kind = json.dumps({"data": [{"id": 1}, {"id": 2}]}).encode(), "application/json"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def api() -> Iterator[tuple[_Api, str]]:
    state = _Api()
    server = ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _all_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file())


def test_header_and_param_references_are_resolved_sent_and_never_logged(tmp_path, monkeypatch, api, capfd):
    import dlt
    from dlt.common import logger as dlt_logging

    from include.mallard import ingest

    state, base_url = api
    monkeypatch.setenv("MALLARD_TEST_HEADER_SECRET", HEADER_SECRET)
    connection = {"conn_type": "http", "extra": {"sig": PARAM_SECRET}}
    monkeypatch.setenv("AIRFLOW_CONN_MALLARD_TEST_FILES", json.dumps(connection))
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("MALLARD_WORK_DIR", str(tmp_path / "work"))
    config = tmp_path / "sources" / "partner.yml"
    config.parent.mkdir()
    config.write_text(
        f"kind: rest_api\nbase_url: {base_url}\n"
        "headers:\n  X-Api-Key: {env: MALLARD_TEST_HEADER_SECRET}\n"
        "resources:\n  - name: exports\n    primary_key: id\n    data_selector: data\n"
        "    paginator: {type: single_page}\n"
        "    params: {sv: '2024', sig: {connection: mallard_test_files, field: extra.sig}}\n"
    )
    source = parse_source_file(config)
    interval = Interval(dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 2, tzinfo=UTC))
    work_dir = tmp_path / "work" / "run"

    dlt.pipeline(pipeline_name="mallard_test_logging", pipelines_dir=str(tmp_path / "dlt"))  # starts dlt's logger
    dlt_logging.LOGGER.setLevel(logging.DEBUG)  # dlt then logs each request's URL, params and headers
    # dlt's own handler may write to a stream of an earlier test (its logger is set up once per
    # process): read dlt's records through a handler of ours as well as the process's output.
    records = io.StringIO()
    handler = logging.StreamHandler(records)
    dlt_logging.LOGGER.addHandler(handler)
    try:
        ingest.extract(source, interval, work_dir)
        extracted = _all_text(work_dir)
        ingest.load(source, work_dir)
    finally:
        dlt_logging.LOGGER.setLevel(logging.WARNING)
        dlt_logging.LOGGER.removeHandler(handler)
    output = capfd.readouterr()
    logs = SimpleNamespace(out=output.out, err=output.err + records.getvalue())

    [(path, headers, query)] = state.requests
    assert path == "/exports" and headers["X-Api-Key"] == HEADER_SECRET and query["sig"] == [PARAM_SECRET]
    assert "Making GET request" in logs.err, "dlt did not log the request: the test would prove nothing"
    encoded = "sig%2FSecret%2B9d3e%3D%3D77"
    for secret in (HEADER_SECRET, PARAM_SECRET, encoded):
        assert secret not in logs.out + logs.err
        assert secret not in extracted
        assert secret not in _all_text(tmp_path / "dlt")
    import duckdb

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as connection:
        assert connection.execute("select count(*) from raw_partner.exports").fetchone() == (2,)


def test_a_page_that_is_not_json_names_the_url_without_the_param_secret(tmp_path, monkeypatch, api):
    from include.mallard.sources.rest_api import build

    _, base_url = api
    monkeypatch.setenv("MALLARD_TEST_PARAM_SECRET", PARAM_SECRET)
    config = tmp_path / "partner.yml"
    config.write_text(
        f"kind: rest_api\nbase_url: {base_url}\n"
        "resources:\n  - name: broken\n    paginator: {type: single_page}\n"
        "    params: {x_partner: {env: MALLARD_TEST_PARAM_SECRET}}\n"
    )
    interval = Interval(dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 2, tzinfo=UTC))
    [resource] = build(parse_source_file(config), interval)
    with pytest.raises(Exception, match="is not JSON") as raised:
        list(resource)
    text = "".join(str(error) for error in (raised.value, raised.value.__cause__, raised.value.__context__))
    assert "x_partner=***" in text
    assert PARAM_SECRET not in text and "sig%2FSecret" not in text
