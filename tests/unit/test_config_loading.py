"""Reading source files: YAML that means what it says, and files that must not hang or crash the loader.

Every case writes a real file and reads it with the loader the DAG uses (`load_sources`,
`parse_source_file`); the catalog in tests/fixtures/invalid_sources/ holds one file per error.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from include.mallard.config import ConfigError, FilesSource, PythonSource, RestApiSource, load_sources
from include.mallard.config.loader import parse_source_file, validate_document
from include.mallard.config.yaml_file import MAX_FILE_BYTES
from include.mallard.paths import PROJECT_ROOT

INVALID_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "invalid_sources"


def _write(tmp_path: Path, text: str, name: str = "s.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_source_file(path)
    return [str(problem) for problem in raised.value.problems]


# --- YAML 1.2 scalars ----------------------------------------------------------------------------


def test_yaml_1_1_booleans_stay_text_and_only_true_false_are_booleans(tmp_path):
    """`country: NO` (Norway) reached a python source as False under PyYAML's YAML 1.1 rules."""
    path = _write(
        tmp_path,
        "kind: python\nfunction: include.examples.custom_source:calendar\n"
        "args: {country: NO, answer: yes, light: on, dark: Off, short: y, n: N, upper: YES,\n"
        "       t: true, f: false, t2: True, f2: FALSE}\n",
    )
    source = parse_source_file(path)
    assert isinstance(source, PythonSource)
    assert source.args == {
        "country": "NO",
        "answer": "yes",
        "light": "on",
        "dark": "Off",
        "short": "y",
        "n": "N",
        "upper": "YES",
        "t": True,
        "f": False,
        "t2": True,
        "f2": False,
    }


def test_yaml_1_1_numbers_mean_what_yaml_1_2_says(tmp_path):
    """`010` was 8 (octal) and `1:30` was 90 (base 60) under YAML 1.1; dates stay dates."""
    path = _write(
        tmp_path,
        "kind: python\nfunction: include.examples.custom_source:calendar\n"
        "args: {zero_led: 010, clock: 1:30, octal: 0o17, hex: 0x1f, big: 1_000, exp: 1e3, day: 2024-01-02}\n",
    )
    args = parse_source_file(path).args
    assert args["zero_led"] == 10 and args["clock"] == "1:30" and args["octal"] == 15 and args["hex"] == 31
    assert args["big"] == "1_000" and args["exp"] == 1000.0 and str(args["day"]) == "2024-01-02"


def test_a_yes_no_string_in_a_rest_header_or_param_is_sent_as_written(tmp_path):
    path = _write(
        tmp_path,
        "kind: rest_api\nbase_url: https://api.example.com/\nheaders: {X-Country: NO}\n"
        "resources: [{name: items, params: {active: yes, region: off}}]\n",
    )
    source = parse_source_file(path)
    assert isinstance(source, RestApiSource)
    assert source.headers == {"X-Country": "NO"}
    assert source.resources[0].params == {"active": "yes", "region": "off"}


def test_boolean_fields_keep_their_meaning(tmp_path):
    """A bool field still reads `off`/`no` as false (pydantic), so configs that relied on it still work."""
    (tmp_path / "a.yml").write_text("kind: synthetic\nenabled: off\n")
    (tmp_path / "b.yml").write_text("kind: synthetic\nenabled: false\nincremental: no\n")
    sources = load_sources(tmp_path, include_disabled=True)
    assert [s.enabled for s in sources] == [False, False]
    assert sources[1].incremental is False


# --- keys given twice ----------------------------------------------------------------------------


def test_a_key_given_twice_names_the_key_the_mapping_and_both_lines(tmp_path):
    path = _write(tmp_path, "kind: synthetic\nseed: 1\ncustomers: 5\nseed: 2\n")
    [problem] = _problems(path)
    assert "field `(file)`: key 'seed' appears twice (lines 2 and 4)" in problem and "Fix:" in problem
    path = _write(tmp_path, "kind: python\nfunction: a.b:c\nargs: {x: 1, y: [{a: 1, a: 2}]}\n")
    [problem] = _problems(path)
    assert "field `args.y[0]`: key 'a' appears twice (line 3)" in problem


def test_keys_that_yaml_reads_as_the_same_value_are_duplicates(tmp_path):
    path = _write(tmp_path, "kind: python\nfunction: a.b:c\nargs:\n  1: one\n  0x1: also one\n")
    [problem] = _problems(path)
    assert "field `args`: key '0x1' appears twice (lines 4 and 5)" in problem


def test_a_merge_key_may_be_overridden(tmp_path):
    """`<<: *defaults` then an explicit key is YAML's override, not a duplicate."""
    path = _write(
        tmp_path,
        "kind: python\nfunction: a.b:c\nargs:\n  base: &base {x: 1, y: 2}\n  other:\n    <<: *base\n    x: 3\n",
    )
    assert parse_source_file(path).args["other"] == {"x": 3, "y": 2}


# --- files that must not hang or crash the loader ------------------------------------------------


def test_a_file_that_is_not_utf8_is_named_with_its_line_and_byte(tmp_path):
    """It used to raise a bare UnicodeDecodeError: the DAG's import error named no file."""
    (tmp_path / "good.yml").write_text("kind: synthetic\n")
    (tmp_path / "cafe.yml").write_bytes(b"kind: synthetic\ndescription: caf\xe9\n")
    with pytest.raises(ConfigError) as raised:
        load_sources(tmp_path)
    [problem] = raised.value.problems
    assert problem.file == tmp_path / "cafe.yml" and problem.field == "(file)"
    assert "byte 0xe9 at line 2, column 17 (byte offset 32)" in problem.message and "UTF-8" in problem.fix


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    (tmp_path / "bom.yml").write_bytes(b"\xef\xbb\xbfkind: synthetic\n")
    assert [s.name for s in load_sources(tmp_path)] == ["bom"]


def test_an_alias_bomb_fails_within_a_second_naming_the_file():
    path = INVALID_DIR / "alias_bomb.yml"
    assert path.stat().st_size <= 501
    started = time.perf_counter()
    [problem] = _problems(path)
    assert time.perf_counter() - started < 1.0
    assert str(path) in problem and "expand to more than 1,000,000 values" in problem


def test_an_alias_that_contains_itself_is_an_error(tmp_path):
    path = _write(tmp_path, "kind: python\nfunction: a.b:c\nargs:\n  x: &x [1, *x]\n")
    [problem] = _problems(path)
    assert "field `args.x[1]`: an alias refers to a value that contains it (the anchor at line 4)" in problem


def test_small_aliases_still_work(tmp_path):
    path = _write(
        tmp_path,
        "kind: rest_api\nbase_url: https://api.example.com/\n"
        "resources:\n  - {name: a, paginator: &pages {type: page_number, maximum_page: 3}}\n"
        "  - {name: b, paginator: *pages}\n",
    )
    source = parse_source_file(path)
    assert source.resources[1].paginator == source.resources[0].paginator


def test_deep_nesting_is_an_error_not_a_crash(tmp_path):
    """libyaml's composer recurses in C: 100,000 nested lists (200 kB) killed the process (SIGSEGV)."""
    depth = 100_000
    path = _write(tmp_path, "kind: python\nfunction: a.b:c\nargs:\n  x: " + "[" * depth + "]" * depth + "\n")
    code = (
        "import sys; from pathlib import Path\n"
        "from include.mallard.config import ConfigError\n"
        "from include.mallard.config.loader import parse_source_file\n"
        "try:\n    parse_source_file(Path(sys.argv[1]))\n"
        "except ConfigError as error:\n    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert f"{path}: field `(file)`: the values nest more than 100 levels deep (at line 4)" in result.stdout


def test_a_file_over_the_size_cap_is_refused_without_reading_it_all(tmp_path):
    path = _write(tmp_path, "kind: synthetic\n" + "# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    started = time.perf_counter()
    [problem] = _problems(path)
    assert time.perf_counter() - started < 1.0
    assert "is larger than 1 MiB" in problem and "split" in problem


def test_a_100k_table_files_source_validates_in_a_few_seconds(tmp_path):
    """Every duplicate-name and cross-field check is linear (the rest_api parent check was quadratic)."""
    tables = [{"name": f"t{i}", "glob": f"t{i}_*.csv", "primary_key": "id"} for i in range(100_000)]
    started = time.perf_counter()
    source = validate_document(tmp_path / "big.yml", {"kind": "files", "path": "data", "tables": tables})
    assert isinstance(source, FilesSource) and len(source.tables) == 100_000
    assert time.perf_counter() - started < 15


def test_a_100k_resource_rest_api_source_validates_in_a_few_seconds(tmp_path):
    """Each resource's parent was looked up in a fresh list of all names: 34 s at 20,000 resources."""
    resources = [{"name": f"r{i}", "primary_key": "id"} for i in range(100_000)]
    resources += [{"name": "child", "parent": "r99999", "path": "r/{id}/child"}]
    document = {"kind": "rest_api", "base_url": "https://api.example.com/", "resources": resources}
    started = time.perf_counter()
    source = validate_document(tmp_path / "big.yml", document)
    assert len(source.resources) == 100_001
    assert time.perf_counter() - started < 15


def test_a_long_chain_of_parents_and_a_cycle_are_checked_in_linear_time(tmp_path):
    count = 20_000
    resources = [{"name": "r0", "primary_key": "id"}]
    resources += [{"name": f"r{i}", "parent": f"r{i - 1}", "path": f"r{i}/{{id}}"} for i in range(1, count)]
    document = {"kind": "rest_api", "base_url": "https://api.example.com/", "resources": resources}
    started = time.perf_counter()
    validate_document(tmp_path / "chain.yml", document)
    resources[0] = {"name": "r0", "parent": f"r{count - 1}", "path": "r0/{id}"}
    with pytest.raises(ConfigError, match="the parents form a cycle"):
        validate_document(tmp_path / "chain.yml", document)
    assert time.perf_counter() - started < 15


def test_a_file_near_the_size_cap_loads(tmp_path):
    rows = "".join(f"  - {{name: t{i}, glob: 't{i}_*.csv'}}\n" for i in range(10_000))
    path = _write(tmp_path, "kind: files\npath: data\ntables:\n" + rows)
    assert path.stat().st_size < MAX_FILE_BYTES
    started = time.perf_counter()
    assert len(parse_source_file(path).tables) == 10_000
    assert time.perf_counter() - started < 15


def test_many_merge_keys_load_in_linear_time(tmp_path):
    """A mapping with `<<:` takes the careful duplicate check; it must not search the file each time."""
    rows = "".join(f"  - {{<<: *csv, name: t{i}, glob: 't{i}_*.csv'}}\n" for i in range(10_000))
    path = _write(tmp_path, "kind: files\npath: data\ntables:\n  - &csv {name: t, glob: 't.csv', format: csv}\n" + rows)
    started = time.perf_counter()
    assert len(parse_source_file(path).tables) == 10_001
    assert time.perf_counter() - started < 15


# --- file names ----------------------------------------------------------------------------------


def test_upper_case_extensions_are_source_files(tmp_path):
    (tmp_path / "shop2.YML").write_text("kind: synthetic\n")
    (tmp_path / "stores.Yaml").write_text("kind: synthetic\n")
    (tmp_path / "notes.txt").write_text("kind: synthetic\n")
    assert sorted(s.name for s in load_sources(tmp_path)) == ["shop2", "stores"]
