"""The source kinds' schema, secrets by reference, and the small pure helpers of the builders."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import yaml
from croniter import croniter

from include.mallard.config import (
    SOURCE_ADAPTER,
    SOURCE_KINDS,
    ConfigError,
    PythonSource,
    RestApiSource,
    SecretRef,
    SqlCredentials,
)
from include.mallard.config.cron import cron_problem
from include.mallard.config.kinds.python import function_problem
from include.mallard.config.loader import parse_source_file
from include.mallard.interval import Interval
from include.mallard.paths import PROJECT_ROOT
from include.mallard.secrets import (
    SecretNotFoundError,
    resolve_args,
    resolve_secret,
    resolve_sql_url,
)
from include.mallard.sources.python import call_arguments

DOCS = PROJECT_ROOT / "docs" / "sources.md"
UTC = dt.UTC


def _doc_examples() -> list[tuple[str, str]]:
    blocks = re.findall(r"```yaml\n(# include/sources/(\w+)\.yml.*?)```", DOCS.read_text(), flags=re.S)
    return [(name, text) for text, name in blocks]


DOC_EXAMPLES = _doc_examples()


def test_docs_have_an_example_of_every_kind():
    kinds = {yaml.safe_load(text)["kind"] for _, text in DOC_EXAMPLES}
    assert kinds >= {"rest_api", "sql_database", "files", "python"}


@pytest.mark.parametrize(("name", "text"), DOC_EXAMPLES, ids=[name for name, _ in DOC_EXAMPLES])
def test_doc_examples_are_valid(tmp_path, name, text):
    path = tmp_path / f"{name}.yml"
    path.write_text(text)
    source = parse_source_file(path)
    assert source.name == name


def test_json_schema_covers_every_kind():
    schema = SOURCE_ADAPTER.json_schema()
    assert set(schema["discriminator"]["mapping"]) == set(SOURCE_KINDS)


CRON_CASES = [
    "0 6 * * *",
    "*/15 * * * 1-5",
    "0 0 1,15 * *",
    "0 0 * jan-mar mon-fri",
    "0 0 * * 7",
    "@daily",
    "@hourly",
    "1-5/2 * * * *",
    "0 25 * * *",
    "60 * * * *",
    "* * * *",
    "*/0 * * * *",
    "0 0 0 * *",
    "0 0 * 13 *",
    "0 0 * * 8",
    "@every",
    "bad",
    "H * * * *",
    "5-1 * * * *",
    "0 0 L * *",
]


@pytest.mark.parametrize("expression", CRON_CASES)
def test_cron_check_accepts_only_what_airflows_croniter_accepts(expression):
    if cron_problem(expression) is None:
        assert croniter.is_valid(expression)


def test_cron_problems_say_what_is_wrong():
    assert "hour 25" in cron_problem("0 25 * * *")
    assert "5 fields" in cron_problem("* * * *")
    assert cron_problem("0 6 * * mon-fri") is None


def _source(tmp_path, text: str):
    path = tmp_path / "s.yml"
    path.write_text(text)
    return parse_source_file(path)


def test_rest_defaults_and_key_normalisation(tmp_path):
    source = _source(
        tmp_path,
        "kind: rest_api\nbase_url: https://api.example.com/\nprimary_key: id\nresources:\n  - name: items\n",
    )
    assert isinstance(source, RestApiSource)
    assert source.primary_key == ["id"] and source.request_attempts == 5
    assert source.resources[0].endpoint_path == "items"
    assert source.schema_contract == "evolve" and source.schedule is None


def test_nested_union_errors_name_the_field_without_the_tag(tmp_path):
    with pytest.raises(ConfigError) as raised:
        _source(
            tmp_path,
            "kind: rest_api\nbase_url: https://x.example/\nauth: {type: bearer, token: {envv: X}}\n"
            "resources: [{name: a}]\n",
        )
    assert [p.field for p in raised.value.problems] == ["auth.token.envv"]


def test_source_level_key_satisfies_a_merge(tmp_path):
    source = _source(
        tmp_path,
        "kind: sql_database\ncredentials: sqlite:///x.db\nprimary_key: id\n"
        "tables: [{name: orders, cursor: updated_at}]\n",
    )
    assert source.tables[0].primary_key == []


def test_secret_from_env_and_connection(monkeypatch):
    monkeypatch.setenv("MALLARD_UNIT_TOKEN", "t0ken-value")
    assert resolve_secret(SecretRef(env="MALLARD_UNIT_TOKEN")) == "t0ken-value"
    connection = {"conn_type": "http", "login": "bob", "password": "pw-123456", "extra": {"token": "x-token-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_MALLARD_UNIT_API", json.dumps(connection))
    assert resolve_secret(SecretRef(connection="mallard_unit_api")) == "pw-123456"
    assert resolve_secret(SecretRef(connection="mallard_unit_api", field="extra.token")) == "x-token-1"
    assert resolve_args({"token": {"env": "MALLARD_UNIT_TOKEN"}, "n": 3}) == {"token": "t0ken-value", "n": 3}


def test_missing_secrets_are_clear(monkeypatch):
    monkeypatch.delenv("MALLARD_UNIT_MISSING", raising=False)
    with pytest.raises(SecretNotFoundError, match="MALLARD_UNIT_MISSING is not set"):
        resolve_secret(SecretRef(env="MALLARD_UNIT_MISSING"))
    with pytest.raises(SecretNotFoundError, match="AIRFLOW_CONN_MALLARD_UNIT_NOPE"):
        resolve_secret(SecretRef(connection="mallard_unit_nope"))


def test_sql_urls_from_connections_and_env(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MALLARD_UNIT_PG", "postgres://loader:p%40ss@db.local:5433/shop")
    assert (
        resolve_sql_url(SqlCredentials(connection="mallard_unit_pg")) == "postgresql://loader:p%40ss@db.local:5433/shop"
    )
    monkeypatch.setenv("MALLARD_UNIT_DB", "postgres://u:p@h/d")
    assert resolve_sql_url(SqlCredentials(env="MALLARD_UNIT_DB")) == "postgresql://u:p@h/d"
    # Relative SQLite paths are relative to the project root, like every path in a config.
    assert resolve_sql_url(SqlCredentials(url="sqlite:///include/data/app.db")) == (
        f"sqlite:///{PROJECT_ROOT}/include/data/app.db"
    )
    assert resolve_sql_url(SqlCredentials(url="sqlite:////abs/app.db")) == "sqlite:////abs/app.db"


def test_python_function_gets_the_interval_only_if_it_takes_it():
    start, end = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 2, tzinfo=UTC)

    def with_bounds(start, end, country):
        pass

    def without(country):
        pass

    def any_kwargs(**kwargs):
        pass

    assert call_arguments(with_bounds, {"country": "NL"}, start, end) == {"start": start, "end": end, "country": "NL"}
    assert call_arguments(without, {"country": "NL"}, start, end) == {"country": "NL"}
    assert set(call_arguments(any_kwargs, {}, start, end)) == {"start", "end"}


def test_example_functions_import():
    for function in ("calendar", "tickets"):
        assert function_problem(f"include.examples.custom_source:{function}") is None
    assert "has no" in function_problem("include.examples.custom_source:nope")
    assert PythonSource.model_fields["function"].is_required()


def test_interval_bounds_for_date_cursors_and_api_parameters():
    from include.mallard.sources.hints import interval_bounds, parse_cursor_value
    from include.mallard.sources.rest_api import bound_formatter

    whole_days = Interval(dt.datetime(2024, 1, 2, tzinfo=UTC), dt.datetime(2024, 1, 3, tzinfo=UTC))
    assert interval_bounds(whole_days, as_dates=True) == (dt.date(2024, 1, 2), dt.date(2024, 1, 3))
    # A DATE counts as its midnight: 06:00 on the 2nd .. 06:00 on the 3rd holds only the 3rd's midnight.
    partial = Interval(dt.datetime(2024, 1, 2, 6, tzinfo=UTC), dt.datetime(2024, 1, 3, 6, tzinfo=UTC))
    assert interval_bounds(partial, as_dates=True) == (dt.date(2024, 1, 3), dt.date(2024, 1, 4))

    moment = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert bound_formatter("iso")(moment) == "2024-01-02T03:04:05Z"
    assert bound_formatter("date")(moment) == "2024-01-02"
    assert bound_formatter("unix")(moment) == 1704164645
    assert bound_formatter("%d/%m/%Y")(moment) == "02/01/2024"

    assert parse_cursor_value("2024-01-02T03:04:05Z") == moment
    assert parse_cursor_value("2024-01-02T03:04:05") == moment
    assert parse_cursor_value(1704164645) == moment
    assert parse_cursor_value("2024-01-02") == dt.datetime(2024, 1, 2, tzinfo=UTC)
