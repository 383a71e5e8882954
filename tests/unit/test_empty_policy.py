"""`on_empty` as each kind resolves it for one table: its own setting, else the source's, else fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from include.mallard.config.loader import parse_source_file

SQL = "kind: sql_database\ncredentials: sqlite:///include/data/app.db\n{source}tables:\n  - {table}\n"
PYTHON = "kind: python\nfunction: include.examples.custom_source:calendar\n{source}"
SYNTHETIC = "kind: synthetic\n"
REST = (
    "kind: rest_api\nbase_url: https://api.example.com\n"
    "resources: [{name: orders}, {name: customers, on_empty: warn}]\n"
)


def _policy(tmp_path: Path, text: str, table: str) -> tuple[str, str | None]:
    path = tmp_path / "src.yml"
    path.write_text(text)
    setting = parse_source_file(path).empty_policy_of(table)
    return setting.policy, setting.field


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SQL.format(source="", table="{name: customers}"), ("fail", None)),
        (SQL.format(source="on_empty: warn\n", table="{name: customers}"), ("warn", "on_empty")),
        (SQL.format(source="on_empty: warn\n", table="{name: customers, on_empty: ok}"), ("ok", "tables[0].on_empty")),
        (REST, ("warn", "resources[1].on_empty")),
        (PYTHON.format(source=""), ("fail", None)),
        (PYTHON.format(source="on_empty: ok\n"), ("ok", "on_empty")),
        (SYNTHETIC, ("ok", None)),  # its generator's output is the whole table
    ],
)
def test_a_tables_policy_is_its_own_else_its_sources_else_fail(tmp_path, text, expected):
    assert _policy(tmp_path, text, "customers") == expected


def test_an_incremental_table_is_ok_without_rows_unless_it_says_otherwise(tmp_path):
    table = "{name: orders, primary_key: id, cursor: updated_at}"
    assert _policy(tmp_path, SQL.format(source="on_empty: fail\n", table=table), "orders") == ("ok", None)
    table = "{name: orders, primary_key: id, cursor: updated_at, on_empty: warn}"
    assert _policy(tmp_path, SQL.format(source="", table=table), "orders") == ("warn", "tables[0].on_empty")
