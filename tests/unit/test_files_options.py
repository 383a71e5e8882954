"""The files kind's reading options: delimiter defaults, null markers, on_empty, and their errors."""

from __future__ import annotations

import json

import pytest

from include.mallard.cli import SCHEMA_PATH, source_json_schema
from include.mallard.config import ConfigError, FilesSource
from include.mallard.config.loader import parse_source_file


def _files_source(tmp_path, table: str, extra: str = "") -> FilesSource:
    path = tmp_path / "exports.yml"
    path.write_text(f"kind: files\npath: {tmp_path}\n{extra}tables:\n  - {table}\n")
    source = parse_source_file(path)
    assert isinstance(source, FilesSource)
    return source


def _problems(tmp_path, table: str, extra: str = "") -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as raised:
        _files_source(tmp_path, table, extra)
    return [(problem.field, f"{problem.message}. Fix: {problem.fix}") for problem in raised.value.problems]


@pytest.mark.parametrize(
    ("table", "delimiter"),
    [
        ("{name: t, glob: '*.csv'}", ","),
        ("{name: t, glob: 'exports/*.TSV'}", "\t"),
        ("{name: t, glob: '*.tsv.gz'}", "\t"),
        ("{name: t, glob: '*.tsv', delimiter: ';'}", ";"),  # the table's own setting wins
        ("{name: t, glob: '*.csv', delimiter: '\\t'}", "\t"),  # YAML single quotes keep the backslash
        ('{name: t, glob: "*.csv", delimiter: "\\t"}', "\t"),
    ],
)
def test_the_delimiter_defaults_to_a_tab_for_tsv_globs_and_a_comma_otherwise(tmp_path, table, delimiter):
    assert _files_source(tmp_path, table).tables[0].csv_delimiter == delimiter


def test_a_quote_is_not_a_delimiter(tmp_path):
    [(field, message)] = _problems(tmp_path, """{name: t, glob: '*.csv', delimiter: '"'}""")
    assert field == "tables[0].delimiter" and "cannot be a quote" in message


def test_null_values_come_from_the_table_else_the_source_else_only_the_empty_field(tmp_path):
    source = _files_source(
        tmp_path,
        "{name: a, glob: 'a/*.csv'}\n  - {name: b, glob: 'b/*.csv', null_values: [NULL_]}",
        'null_values: ["", "NA", "n/a"]\n',
    )
    assert [source.null_values_of(table) for table in source.tables] == [["", "NA", "n/a"], ["NULL_"]]
    default = _files_source(tmp_path, "{name: t, glob: '*.csv'}")
    assert default.null_values_of(default.tables[0]) == [""]  # DuckDB's own default: an empty field


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("field", ["null_values: [NA]", "delimiter: ';'", "column_types: {zip: text}"])
def test_csv_only_options_on_other_formats_are_errors_naming_the_field(tmp_path, fmt, field):
    [(where, message)] = _problems(tmp_path, f"{{name: t, glob: '*.{fmt}', format: {fmt}, {field}}}")
    assert where == f"tables[0].{field.split(':')[0]}" and "CSV files only" in message and "remove it" in message


def test_column_types_map_each_name_to_the_duckdb_type_the_column_is_read_as(tmp_path):
    from include.mallard.config.kinds.files import CSV_COLUMN_TYPES

    source = _files_source(tmp_path, "{name: t, glob: '*.csv', column_types: {zip: text, at: timestamptz}}")
    assert {name: CSV_COLUMN_TYPES[kind] for name, kind in source.tables[0].column_types.items()} == {
        "zip": "VARCHAR",
        "at": "TIMESTAMPTZ",
    }


def test_an_unknown_column_type_is_an_error_listing_the_known_ones(tmp_path):
    [(where, message)] = _problems(tmp_path, "{name: t, glob: '*.csv', column_types: {zip: varchar}}")
    assert where.startswith("tables[0].column_types") and "'text'" in message and "'timestamptz'" in message, message


def test_a_source_level_null_values_does_not_touch_other_formats(tmp_path):
    source = _files_source(tmp_path, "{name: t, glob: '*.jsonl', format: jsonl}", "null_values: ['', NA]\n")
    assert source.tables[0].null_values is None


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("{name: t, glob: '*.csv', null_values: []}", "tables[0].null_values"),
        ("{name: t, glob: '*.csv', null_values: [\"a\\nb\"]}", "tables[0].null_values"),
    ],
)
def test_an_empty_or_multiline_null_marker_list_is_an_error(tmp_path, text, field):
    assert [where for where, _ in _problems(tmp_path, text)] == [field]


@pytest.mark.parametrize(
    ("table", "extra", "policy", "field"),
    [
        ("{name: t, glob: '*.csv'}", "", "fail", None),  # full refresh: an empty input must not replace the table
        ("{name: t, glob: '*.csv', write_disposition: append}", "", "fail", None),
        ("{name: t, glob: '*.csv', new_files_only: true}", "", "ok", None),  # no new files in an interval is normal
        ("{name: t, glob: '*.csv', cursor: at, primary_key: id}", "", "ok", None),
        ("{name: t, glob: '*.csv', on_empty: warn}", "", "warn", "tables[0].on_empty"),
        ("{name: t, glob: '*.csv', new_files_only: true, on_empty: fail}", "", "fail", "tables[0].on_empty"),
        ("{name: t, glob: '*.csv'}", "on_empty: warn\n", "warn", "on_empty"),  # the source's default
        ("{name: t, glob: '*.csv', on_empty: fail}", "on_empty: ok\n", "fail", "tables[0].on_empty"),
        ("{name: t, glob: '*.csv', new_files_only: true}", "on_empty: fail\n", "ok", None),  # only full refreshes
    ],
)
def test_on_empty_defaults_to_fail_for_full_refresh_and_ok_for_incremental(tmp_path, table, extra, policy, field):
    setting = _files_source(tmp_path, table, extra).empty_policy_of("t")
    assert (setting.policy, setting.field) == (policy, field)


def test_on_empty_accepts_only_its_three_values(tmp_path):
    [(field, message)] = _problems(tmp_path, "{name: t, glob: '*.csv', on_empty: skip}")
    assert field == "tables[0].on_empty" and "'fail', 'warn' or 'ok'" in message


def test_the_json_schema_documents_the_new_options_and_is_up_to_date():
    schema = json.loads(source_json_schema())
    table = schema["$defs"]["FileTable"]["properties"]
    assert {"null_values", "on_empty", "delimiter"} <= set(table)
    assert table["on_empty"]["anyOf"][0]["enum"] == ["fail", "warn", "ok"]
    assert schema["$defs"]["FilesSource"]["properties"]["null_values"]["default"] == [""]
    assert json.loads(SCHEMA_PATH.read_text())["$defs"]["FileTable"] == schema["$defs"]["FileTable"]
