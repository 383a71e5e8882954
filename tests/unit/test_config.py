"""The source config schema: valid files load, every invalid file is named with its field and a fix."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from include.mallard.config import ConfigError, FilesSource, SyntheticSource, load_sources
from include.mallard.config.loader import parse_source_file
from include.mallard.paths import SOURCES_DIR
from include.mallard.secrets import reference_issues

INVALID_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "invalid_sources"
INVALID_FILES = sorted(INVALID_DIR.glob("*.yml"))
# A sub-folder is a case that needs several files (e.g. two sources with one name); the file
# that carries the `# expect:` header is the one the problem must name.
INVALID_FOLDERS = sorted(p for p in INVALID_DIR.iterdir() if p.is_dir())


def _expectation(path: Path) -> tuple[str, str]:
    """Each catalog file starts with `# expect: <field> | <words of the fix or message>`."""
    # Bytes: a case may be a file that is not UTF-8 after its header line.
    header = path.read_bytes().splitlines()[0].decode("utf-8")
    assert header.startswith("# expect:"), f"{path.name} lacks its '# expect:' header"
    field, hint = header.removeprefix("# expect:").split("|", 1)
    return field.strip(), hint.strip()


def test_demo_sources_are_valid():
    sources = {source.name: source for source in load_sources(SOURCES_DIR)}
    assert set(sources) == {"shop", "stores", "marketing"}
    assert isinstance(sources["shop"], SyntheticSource)
    assert isinstance(sources["stores"], FilesSource)
    assert sources["shop"].dataset_name == "raw_shop"
    assert sources["shop"].first_day == dt.date(2024, 1, 1)


def test_name_defaults_to_file_name(tmp_path):
    (tmp_path / "web_shop.yml").write_text("kind: synthetic\n")
    [source] = load_sources(tmp_path)
    assert source.name == "web_shop"
    assert source.retries == 2


def test_single_primary_key_becomes_a_list(tmp_path):
    config = tmp_path / "f.yml"
    config.write_text("kind: files\npath: data\ntables:\n  - name: t\n    glob: '*.csv'\n    primary_key: id\n")
    source = parse_source_file(config)
    assert source.tables[0].primary_key == ["id"]


def test_catalog_is_large_enough():
    assert len(INVALID_FILES) + len(INVALID_FOLDERS) >= 25


def _assert_names_file_field_and_fix(problems: list, path: Path) -> None:
    field, hint = _expectation(path)
    assert any(p.field == field and p.file == path for p in problems), [str(p) for p in problems]
    problem = next(p for p in problems if p.field == field and p.file == path)
    text = str(problem)
    assert str(path) in text and f"`{field}`" in text and "Fix:" in text
    assert hint.lower() in text.lower(), text


@pytest.fixture
def no_test_secrets(monkeypatch):
    """The catalog's references must not resolve, whatever the shell running the tests has set."""
    monkeypatch.delenv("MALLARD_TEST_UNSET_TOKEN", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_MALLARD_TEST_NO_SUCH_CONNECTION", raising=False)


@pytest.mark.parametrize("path", INVALID_FILES, ids=[p.stem for p in INVALID_FILES])
def test_invalid_config_names_file_field_and_fix(path, no_test_secrets):
    # reference_issues: what `mallard validate` runs (connections, env vars, imports are checked too).
    with pytest.raises(ConfigError) as raised:
        parse_source_file(path, extra_checks=reference_issues)
    _assert_names_file_field_and_fix(raised.value.problems, path)


@pytest.mark.parametrize("folder", INVALID_FOLDERS, ids=[p.name for p in INVALID_FOLDERS])
def test_invalid_folder_names_file_field_and_fix(folder):
    [path] = [p for p in sorted(folder.glob("*.yml")) if p.read_text().startswith("# expect:")]
    with pytest.raises(ConfigError) as raised:
        load_sources(folder, extra_checks=reference_issues)
    _assert_names_file_field_and_fix(raised.value.problems, path)


def test_secrets_are_never_echoed():
    """A literal secret is reported by its field, never by its value."""
    cases = (
        "rest_literal_token",
        "literal_secret_header",
        "sql_url_with_password",
        "python_literal_arg",
        "literal_header_value",
        "literal_query_param",
        "base_url_query_secret",
        "resource_path_query_secret",
    )
    for name in cases:
        path = INVALID_DIR / f"{name}.yml"
        with pytest.raises(ConfigError) as raised:
            parse_source_file(path)
        text = str(raised.value)
        for secret in ("abc123", "9f8e7d6c5b4a39281706", "hunter2", "not-so-secret", "Zk3q9XvB7m", "q7Lw0s3cr3t"):
            assert secret not in text, text


def test_parse_time_does_not_look_outside_the_file():
    """Without extra checks (DAG parsing), unknown connections and modules are not looked up."""
    for name in ("unknown_connection", "missing_env_var", "function_not_importable"):
        parse_source_file(INVALID_DIR / f"{name}.yml")


def test_one_bad_file_does_not_hide_another(tmp_path):
    shutil.copy(INVALID_DIR / "unknown_kind.yml", tmp_path / "first.yml")
    shutil.copy(INVALID_DIR / "wrong_type_int.yml", tmp_path / "second.yml")
    (tmp_path / "good.yml").write_text("kind: synthetic\n")
    with pytest.raises(ConfigError) as raised:
        load_sources(tmp_path)
    bad_files = {problem.file.name for problem in raised.value.problems}
    assert bad_files == {"first.yml", "second.yml"}
    assert "first.yml" in str(raised.value) and "second.yml" in str(raised.value)


def test_duplicate_source_names_are_rejected(tmp_path):
    (tmp_path / "a.yml").write_text("kind: synthetic\nname: shop\n")
    (tmp_path / "b.yml").write_text("kind: synthetic\nname: shop\n")
    with pytest.raises(ConfigError) as raised:
        load_sources(tmp_path)
    [problem] = raised.value.problems
    assert problem.file.name == "b.yml" and problem.field == "name" and "a.yml" in problem.message


def test_disabled_sources_are_skipped_unless_asked(tmp_path):
    (tmp_path / "on.yml").write_text("kind: synthetic\n")
    (tmp_path / "off.yml").write_text("kind: synthetic\nenabled: false\n")
    assert [s.name for s in load_sources(tmp_path)] == ["on"]
    assert sorted(s.name for s in load_sources(tmp_path, include_disabled=True)) == ["off", "on"]


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_sources(tmp_path / "nope")


def test_published_json_schema_is_current():
    """docs/source.schema.json is what editors validate against; regenerate with `cli schema`."""
    from include.mallard.cli import SCHEMA_PATH, source_json_schema

    assert SCHEMA_PATH.read_text(encoding="utf-8") == source_json_schema(), (
        "docs/source.schema.json is stale: run `python -m include.mallard.cli schema`"
    )
