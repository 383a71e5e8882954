"""The files source on users' real files: delimiters, quoting, line endings, null markers, empty inputs.

Every fault ends in a correct load or in an error that names the source, the file (and line) and
the config field to change, with nothing of the run loaded. Real dlt, DuckDB and files: the small
faulty files are in tests/fixtures/data_faults/; those that need more rows than DuckDB's sniffer
samples (20,480) are generated here.
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include.mallard import ingest
from include.mallard.config import SourceConfig
from include.mallard.config.loader import parse_source_file
from include.mallard.interval import Interval
from include.mallard.sources import file_readers, schema_store

pytestmark = pytest.mark.e2e
FAULTS = Path(__file__).resolve().parents[1] / "fixtures" / "data_faults"
SNIFFER_SAMPLE_ROWS = 20_480
EMPTY_INPUT_LOGGER = "include.mallard.sources.empty_input"  # where on_empty reports


def day(number: int) -> dt.datetime:
    return dt.datetime(2024, 1, number, tzinfo=dt.UTC)


DAY_1, DAY_2 = day(1), day(2)


class Runner:
    """A throwaway warehouse, a data folder and source files; runs extract + load like the tasks do."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.data.mkdir()
        self.warehouse = root / "warehouse.duckdb"
        self.runs = 0

    def put(self, name: str, content: bytes | str | Path, modified: dt.datetime = DAY_1) -> Path:
        path = self.data / name
        if isinstance(content, Path):
            shutil.copyfile(content, path)
        else:
            path.write_bytes(content.encode() if isinstance(content, str) else content)
        os.utime(path, (modified.timestamp(), modified.timestamp()))
        return path

    def source(self, table: str, extra: str = "") -> SourceConfig:
        path = self.root / "faults.yml"
        path.write_text(f"kind: files\npath: {self.data}\n{extra}tables:\n  - {table}\n")
        return parse_source_file(path)

    def run(self, source: SourceConfig, start: dt.datetime = DAY_1, end: dt.datetime = DAY_2) -> dict[str, int]:
        self.runs += 1
        work_dir = ingest.run_work_dir("test_file_faults", f"run_{self.runs}", source.name)
        counts = ingest.extract(source, Interval(start, end), work_dir)
        schema_store.remember(source.name, work_dir)
        ingest.load(source, work_dir)
        return counts

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as connection:
            return connection.execute(sql).fetchall()

    def column_types(self, table: str) -> dict[str, str]:
        rows = self.query(
            "select column_name, data_type from information_schema.columns where table_schema = 'raw_faults' "
            f"and table_name = '{table}' and column_name not like '\\_dlt%' escape '\\'"
        )
        return dict(rows)


@pytest.fixture
def runner(tmp_path, monkeypatch) -> Runner:
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("MALLARD_WORK_DIR", str(tmp_path / "work"))
    return Runner(tmp_path)


def _fails_and_keeps(runner: Runner, source: SourceConfig, *expected: str) -> str:
    """Run `source`, which must fail with every `expected` text, and leave the warehouse as it was."""
    before = runner.query("select * from raw_faults.items order by all")
    with pytest.raises(Exception) as failure:
        runner.run(source, day(2), day(3))
    message = str(failure.value)
    for text in ("source 'faults'", *expected):
        assert text in message, message
    assert runner.query("select * from raw_faults.items order by all") == before
    return message


def _good_first_run(runner: Runner, table: str, extra: str = "") -> None:
    runner.put("a.csv", "id,name,qty\n1,foo,3\n")
    runner.run(runner.source(table, extra))


def _rows(count: int, newline: str = "\n") -> str:
    return "".join(f"{i},n{i},{i}{newline}" for i in range(count))


# --- delimiters ---------------------------------------------------------------------------------


def test_a_tsv_glob_reads_tabs_without_a_delimiter_setting(runner):
    runner.put("items.tsv", FAULTS / "tab_separated.tsv")
    source = runner.source("{name: items, glob: '*.tsv', primary_key: id}")
    assert runner.run(source) == {"items": 2}
    assert runner.query("select id, name, qty from raw_faults.items order by id") == [
        (1, "Smith, John", 3),
        (2, "bar", 4),
    ]


@pytest.mark.parametrize(
    ("fixture", "table", "fix"),
    [
        ("semicolons_read_with_commas.csv", "{name: items, glob: '*.csv'}", "`tables[0].delimiter: ';'`"),
        ("tab_separated.tsv", "{name: items, glob: '*.[ct]sv', delimiter: ','}", '`tables[0].delimiter: "\\t"`'),
    ],
)
def test_a_header_that_splits_only_on_another_delimiter_fails_naming_the_field(runner, fixture, table, fix):
    runner.put("a.csv", "id,name,qty\n1,foo,3\n")
    source = runner.source(table)
    runner.run(source)
    runner.put(f"b{Path(fixture).suffix}", FAULTS / fixture)
    _fails_and_keeps(runner, source, f"b{Path(fixture).suffix}", "is one column with delimiter ','", fix)


# --- quoting, line endings, encoding ------------------------------------------------------------


@pytest.mark.parametrize("where", ["in the sniffed sample", "past the sniffed sample"])
def test_an_unclosed_quote_fails_naming_file_and_line(runner, where):
    _good_first_run(runner, "{name: items, glob: '*.csv'}")
    if where == "in the sniffed sample":
        runner.put("b.csv", FAULTS / "unclosed_quote.csv")
        line = 3
    else:
        rows = SNIFFER_SAMPLE_ROWS + 5_000
        runner.put("b.csv", "id,name,qty\n" + _rows(rows) + '9,"bad,1\n10,x,2\n')
        line = rows + 2
    _fails_and_keeps(runner, runner.source("{name: items, glob: '*.csv'}"), "b.csv", f"line {line}: ", "quote")


@pytest.mark.parametrize("fixture", ["mixed_crlf_lf.csv", "mixed_crlf_lf_same_ends.csv"])
def test_mixed_crlf_and_lf_line_endings_are_read_correctly(runner, fixture):
    runner.put("items.csv", FAULTS / fixture)
    runner.run(runner.source("{name: items, glob: '*.csv', primary_key: id}"))
    rows = runner.query("select id, name, qty from raw_faults.items order by id")
    if fixture == "mixed_crlf_lf.csv":  # quotes, doubled quotes and a line break inside a value
        assert rows == [(1, 'say "hi"', 3), (2, "a,b", 4), (3, "two\nlines", 5), (4, "qux", 6)]
    else:
        assert rows == [(1, "foo", 3), (2, "bar", 4), (3, "baz", 5), (4, "qux", 6)]


def test_mixed_line_endings_past_the_sample_load_every_row_and_a_ragged_row_still_fails(runner):
    rows = SNIFFER_SAMPLE_ROWS + 10_000
    runner.put("big.csv", "id,name,qty\r\n" + _rows(rows, "\r\n") + _rows(3))  # the last lines end in LF
    runner.run(runner.source("{name: items, glob: '*.csv'}"))
    assert runner.query("select count(*), count(distinct id), sum(qty) from raw_faults.items") == [
        (rows + 3, rows, sum(range(rows)) + 3)
    ]
    # DuckDB's non-strict mode, which reads mixed endings, would drop the extra field: not here.
    runner.put("ragged.csv", FAULTS / "mixed_crlf_lf_ragged.csv")
    _fails_and_keeps(runner, runner.source("{name: items, glob: '*.csv'}"), "ragged.csv", "line 3 has 4 fields")


def test_a_file_of_many_reader_buffers_loads_every_row_and_a_line_up_to_the_limit_intact(runner):
    # The reader's buffers are smaller than DuckDB's default (file_readers.CSV_BUFFER_BYTES): rows and a
    # quoted line break that straddle buffer ends must still load, and so must a line near 2 MiB.
    rows = 400_000
    long_value = "y" * (file_readers.CSV_MAX_LINE_BYTES - 100_000)
    body = "".join(f'{i},"name {i}\nsecond line",{i % 97}\n' for i in range(rows))
    runner.put("big.csv", f"id,name,qty\n{body}{rows},{long_value},1\n")
    assert len(body) > 4 * file_readers.CSV_BUFFER_BYTES
    assert runner.run(runner.source("{name: items, glob: '*.csv'}")) == {"items": rows + 1}
    assert runner.query(
        "select count(*), count(distinct id), sum(qty), count(*) filter (name like 'name %\nsecond line'), "
        "max(length(name)) from raw_faults.items"
    ) == [(rows + 1, rows + 1, sum(i % 97 for i in range(rows)) + 1, rows, len(long_value))]


@pytest.mark.parametrize("line_bytes", [file_readers.CSV_MAX_LINE_BYTES + 500_000, 40 << 20])
@pytest.mark.parametrize("compressed", [False, True])
def test_a_last_line_longer_than_duckdbs_line_limit_fails_naming_the_file(runner, line_bytes, compressed):
    # DuckDB 2.0 drops a last line longer than its read buffer (32 MiB by default) without an error.
    _good_first_run(runner, "{name: items, glob: '*.csv*'}")
    content = ("id,name,qty\n" + _rows(50_000) + f"{50_000}," + "z" * line_bytes + ",3\n").encode()
    runner.put("b.csv.gz" if compressed else "b.csv", gzip.compress(content, 1) if compressed else content)
    _fails_and_keeps(runner, runner.source("{name: items, glob: '*.csv*'}"), "b.csv", "the last line is at least")


def test_a_long_line_before_more_blank_lines_than_the_checked_tail_fails_naming_the_file(runner):
    # Mallard's last-line check reads the file's last 4 MiB: here only blank lines. The long line
    # above them is then DuckDB's to catch, and it must fail the extract, not drop the row.
    _good_first_run(runner, "{name: items, glob: '*.csv'}")
    blank_tail = "\n" * (3 * file_readers.CSV_MAX_LINE_BYTES)
    content = "id,name,qty\n" + _rows(1_000) + "1000," + "z" * (5 << 20) + ",3\n" + blank_tail
    runner.put("b.csv", content.encode())
    _fails_and_keeps(runner, runner.source("{name: items, glob: '*.csv'}"), "b.csv")


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("latin1_not_utf8.csv", "line 2: Invalid unicode"),
        ("blank_first_line.csv", "line 1 is blank"),
    ],
)
def test_a_file_that_is_not_utf8_or_starts_blank_fails_naming_file_and_line(runner, fixture, expected):
    _good_first_run(runner, "{name: items, glob: '*.csv'}")
    runner.put("b.csv", FAULTS / fixture)
    _fails_and_keeps(runner, runner.source("{name: items, glob: '*.csv'}"), "b.csv", expected)


def test_a_truncated_parquet_file_fails_naming_source_and_file(runner):
    pq.write_table(pa.table({"id": [1, 2]}), runner.data / "a.parquet")
    source = runner.source("{name: items, glob: '*.parquet', format: parquet}")
    runner.run(source)
    runner.put("b.parquet", FAULTS / "truncated.parquet")
    _fails_and_keeps(runner, source, "b.parquet", "is not a readable Parquet file")


# --- what DuckDB's sniffer must not guess ---------------------------------------------------------


def test_a_row_starting_with_a_hash_is_a_row_not_a_comment(runner):
    # The sniffer took "#" for a comment character and dropped the row, reporting success.
    runner.put("items.csv", "id,qty\n1,5\n2,7\n#3,9\n4,1\n")
    assert runner.run(runner.source("{name: items, glob: '*.csv'}")) == {"items": 4}
    assert runner.query("select id, qty from raw_faults.items order by qty") == [
        ("4", 1),
        ("1", 5),
        ("2", 7),
        ("#3", 9),
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        # The sniffer skipped the header as a preamble and took row 1 for the header: two rows lost.
        ("id,name,qty\n1,a,3,x\n2,b,4,y\n", "line 2 has 4 fields, the header has 3"),
        ("exported 2024-01-02\nid,name,qty\n1,a,3\n", "line 2 has 3 fields, the header has 1"),
    ],
    ids=["one field more on every row", "a line above the header"],
)
def test_lines_are_never_skipped_to_find_a_header(runner, content, expected):
    _good_first_run(runner, "{name: items, glob: '*.csv'}")
    runner.put("b.csv", content)
    _fails_and_keeps(runner, runner.source("{name: items, glob: '*.csv'}"), "b.csv", expected)


def test_only_iso_dates_are_typed_as_dates_so_no_file_guesses_the_day_month_order(runner):
    # Sniffed per file, 01/02/2024 was 1 February beside a file whose 02/13/2024 shows month first.
    runner.put("a.csv", "id,day\n1,02/13/2024\n")
    runner.put("b.csv", "id,day\n2,01/02/2024\n")
    runner.put("c.csv", "id,day\n3,03/04/2024\n")
    source = runner.source("{name: items, glob: '*.csv'}")
    runner.run(source)
    assert runner.column_types("items")["day"] == "VARCHAR"
    assert runner.query("select id, day from raw_faults.items order by id") == [
        (1, "02/13/2024"),
        (2, "01/02/2024"),
        (3, "03/04/2024"),
    ]
    runner.put("iso.dates", "id,day\n1,2024-02-13\n2,2024-1-2\n")
    runner.run(runner.source("{name: dates, glob: '*.dates', format: csv}"))
    assert runner.column_types("dates")["day"] == "DATE"
    assert runner.query("select id, day from raw_faults.dates order by id") == [
        (1, dt.date(2024, 2, 13)),
        (2, dt.date(2024, 1, 2)),
    ]


@pytest.mark.parametrize("cursor", ["changed_at", "changedAt"])
def test_two_versions_of_a_row_in_one_interval_merge_to_the_newest(runner, cursor):
    # dlt deduplicated the merge's rows on the key in no set order: the older version could win.
    column = "changed_at"  # dlt's snake_case name of both
    runner.put("a.csv", f"id,{cursor},v\n1,2024-01-01 09:00:00,old\n2,2024-01-01 08:00:00,only\n")
    runner.put("b.csv", f"id,{cursor},v\n1,2024-01-01 12:00:00,new\n1,2024-01-01 10:00:00,between\n")
    source = runner.source(f"{{name: items, glob: '*.csv', primary_key: id, cursor: '{cursor}'}}")
    assert runner.run(source) == {"items": 4}
    assert runner.query(f"select id, v, {column} from raw_faults.items order by id") == [
        (1, "new", dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)),
        (2, "only", dt.datetime(2024, 1, 1, 8, tzinfo=dt.UTC)),
    ]


def test_rerunning_an_earlier_interval_never_brings_back_an_older_version(runner):
    # Each run merged its slice whatever the table held: day 1 rerun after day 2 restored "old", and
    # side-by-side backfill runs left whichever finished last.
    runner.put(
        "a.csv",
        "id,changed_at,v\n1,2024-01-01 10:00:00,old\n2,2024-01-01 11:00:00,two\n1,2024-01-02 10:00:00,new\n",
    )
    source = runner.source("{name: items, glob: '*.csv', primary_key: id, cursor: changed_at}")
    assert runner.run(source, day(2), day(3)) == {"items": 1}
    assert runner.run(source, day(1), day(2)) == {"items": 2}
    assert runner.query("select id, v from raw_faults.items order by id") == [(1, "new"), (2, "two")]

    # The same version again, or a newer one, still replaces the row (a corrected export).
    (runner.data / "a.csv").write_text("id,changed_at,v\n1,2024-01-02 10:00:00,fixed\n")
    runner.run(source, day(2), day(3))
    assert runner.query("select id, v from raw_faults.items order by id") == [(1, "fixed"), (2, "two")]


READ_IN_ANOTHER_ZONE = """
import datetime as dt, json, sys
from pathlib import Path
from include.mallard import ingest
from include.mallard.config.loader import parse_source_file
from include.mallard.interval import Interval
source = parse_source_file(Path(sys.argv[1]))
day = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
work_dir = ingest.run_work_dir("test_file_faults", "zone", source.name)
ingest.extract(source, Interval(day, day + dt.timedelta(days=1)), work_dir)
ingest.load(source, work_dir)
"""


def test_a_time_without_an_offset_beside_ones_with_offsets_is_utc_in_any_local_zone(runner):
    # DuckDB read the time without an offset in the worker's local zone (5 hours off in New York).
    runner.put("items.csv", "id,seen_at\n1,2024-01-01T10:00:00+02:00\n2,2024-01-01T10:00:00\n")
    runner.source("{name: items, glob: '*.csv'}")  # writes faults.yml
    environment = os.environ | {"TZ": "America/New_York"}  # DuckDB takes the local zone when it starts
    subprocess.run(
        [sys.executable, "-c", READ_IN_ANOTHER_ZONE, str(runner.root / "faults.yml")],
        env=environment,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert runner.query("select id, seen_at from raw_faults.items order by id") == [
        (1, dt.datetime(2024, 1, 1, 8, tzinfo=dt.UTC)),
        (2, dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC)),
    ]


# --- null markers -------------------------------------------------------------------------------


def test_null_markers_from_r_write_csv_load_as_numbers_with_nulls(runner):
    runner.put("items.csv", FAULTS / "r_write_csv_na.csv")
    runner.run(runner.source("{name: items, glob: '*.csv', primary_key: id}", 'null_values: ["", "NA", "n/a"]\n'))
    assert runner.query("select id, amount, label from raw_faults.items order by id") == [
        (1, 10, "x"),
        (2, None, None),
        (3, 5, None),
    ]
    assert runner.column_types("items") == {"column0": "BIGINT", "id": "BIGINT", "amount": "BIGINT", "label": "VARCHAR"}


def test_without_null_markers_na_stays_text_and_a_table_may_set_its_own(runner):
    runner.put("items.csv", FAULTS / "r_write_csv_na.csv")
    own = "{name: own, glob: '*.csv', primary_key: id, null_values: ['', NA]}"  # the table's list wins
    runner.run(runner.source(f"{{name: items, glob: '*.csv', primary_key: id}}\n  - {own}", "null_values: ['']\n"))
    assert runner.query("select amount from raw_faults.items order by id") == [("10",), ("NA",), ("5",)]
    assert runner.query("select id, amount, label from raw_faults.own order by id") == [
        (1, 10, "x"),
        (2, None, None),
        (3, 5, "n/a"),
    ]


def test_a_null_marker_past_the_sample_fails_naming_the_line_and_null_values(runner):
    _good_first_run(runner, "{name: items, glob: '*.csv'}")
    rows = SNIFFER_SAMPLE_ROWS + 5_000
    runner.put("b.csv", "id,name,qty\n" + _rows(rows) + "9,x,NA\n")
    message = _fails_and_keeps(runner, runner.source("{name: items, glob: '*.csv'}"), "b.csv", f"line {rows + 2}")
    assert "`tables[0].null_values`" in message and '"NA"' in message, message


# --- values the sniffed type would change ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "where"),
    [
        *((value, "past the sniffed sample") for value in ("00123", "12.7", "0x10", "1_000", "1e3")),
        # In the sample the sniffer types a column with 00123 or 1_000 as text, with 12.7 as double; not 0x10:
        ("0x10", "in the sniffed sample"),
    ],
)
def test_an_integer_value_duckdb_would_change_fails_naming_the_line_and_column_types(runner, value, where):
    # DuckDB casts these to its sampled BIGINT without an error: 123, 13, 16, 1000, 1000.
    _good_first_run(runner, "{name: items, glob: '*.csv'}")
    rows = 3 if where == "in the sniffed sample" else SNIFFER_SAMPLE_ROWS + 5_000
    runner.put("b.csv", "id,name,qty\n" + _rows(rows) + f"9,x,{value}\n")
    message = _fails_and_keeps(runner, runner.source("{name: items, glob: '*.csv'}"), "b.csv", f"line {rows + 2}")
    assert f"column 'qty': '{value}'" in message and "`tables[0].column_types: {qty: text}`" in message, message


def test_a_time_with_an_offset_in_a_column_without_offsets_fails_naming_the_line(runner):
    # DuckDB reads 10:00+05:00 as 10:00 in a column it sampled as times without an offset.
    rows = SNIFFER_SAMPLE_ROWS + 5_000
    times = "".join(f"{i},2024-01-01 10:00:00\n" for i in range(rows))
    runner.put("a.csv", "id,seen_at\n" + times + "9,2024-01-01 10:00:00+05:00\n")
    with pytest.raises(Exception) as failure:
        runner.run(runner.source("{name: items, glob: '*.csv'}"))
    message = str(failure.value)
    assert f"line {rows + 2}, column 'seen_at'" in message and "{seen_at: timestamptz}" in message, message


def test_column_types_keep_the_values_as_written(runner):
    rows = SNIFFER_SAMPLE_ROWS + 5_000
    body = "".join(f"{i},{i + 1},2024-01-01 10:00:00\n" for i in range(rows))
    runner.put("a.csv", "id,code,seen_at\n" + body + "-1,00123,2024-01-01 10:00:00+05:00\n")
    runner.run(runner.source("{name: items, glob: '*.csv', column_types: {code: text, seen_at: timestamptz}}"))
    assert runner.column_types("items") == {"id": "BIGINT", "code": "VARCHAR", "seen_at": "TIMESTAMP WITH TIME ZONE"}
    assert runner.query("select code, seen_at from raw_faults.items where id = -1") == [
        ("00123", dt.datetime(2024, 1, 1, 5, tzinfo=dt.UTC))
    ]
    distinct_codes = runner.query("select count(*), count(distinct code) from raw_faults.items")
    assert distinct_codes == [(rows + 1, rows + 1)]  # "00123" stays apart from "123"


def test_integers_and_times_that_read_back_as_written_load_unchanged(runner):
    # The check must not refuse what DuckDB reads faithfully: signs, zero, ISO forms with T and fractions.
    rows = SNIFFER_SAMPLE_ROWS + 5_000
    body = "".join(f"{i},2024-01-01 10:00:00\n" for i in range(rows))
    late = "+5,2024-01-02T11:30:00.25\n-0,2024-01-03 12:00\n-7,\n,2024-01-04 00:00:00\n"
    runner.put("a.csv", "n,seen_at\n" + body + late)
    runner.run(runner.source("{name: items, glob: '*.csv', write_disposition: append}"))
    assert runner.column_types("items") == {
        "n": "BIGINT",
        "seen_at": "TIMESTAMP WITH TIME ZONE",
    }  # dlt stores times in UTC
    late_rows = (
        "select n, seen_at from raw_faults.items where n is null or seen_at is null or seen_at >= '2024-01-02' "
        "order by 2"
    )
    assert runner.query(late_rows) == [
        (5, dt.datetime(2024, 1, 2, 11, 30, 0, 250000, tzinfo=dt.UTC)),
        (0, dt.datetime(2024, 1, 3, 12, tzinfo=dt.UTC)),
        (None, dt.datetime(2024, 1, 4, tzinfo=dt.UTC)),
        (-7, None),
    ]
    assert runner.query("select count(*), sum(n) from raw_faults.items") == [(rows + 4, sum(range(rows)) - 2)]


def test_column_types_naming_a_column_the_file_lacks_fails_naming_the_field(runner):
    runner.put("a.csv", "id,name\n1,x\n")
    with pytest.raises(Exception) as failure:
        runner.run(runner.source("{name: items, glob: '*.csv', column_types: {zip: text}}"))
    message = str(failure.value)
    assert 'no column "zip"' in message and "`tables[0].column_types`" in message, message


# --- types that differ between files --------------------------------------------------------------


@pytest.mark.parametrize("empty_first", [False, True])
def test_an_empty_column_in_one_file_loads_as_nulls_of_the_other_files_type(runner, empty_first):
    # DuckDB types an empty column VARCHAR: dlt then refused to write it beside another file's BIGINT.
    runner.put("a.csv", "id,qty\n1,\n2,\n" if empty_first else "id,qty\n1,3\n2,4\n")
    runner.put("b.csv", "id,qty\n3,5\n" if empty_first else "id,qty\n3,\n")
    runner.run(runner.source("{name: items, glob: '*.csv'}"))
    assert runner.column_types("items") == {"id": "BIGINT", "qty": "BIGINT"}
    expected = [(1, None), (2, None), (3, 5)] if empty_first else [(1, 3), (2, 4), (3, None)]
    assert runner.query("select id, qty from raw_faults.items order by id") == expected


def test_a_day_whose_export_has_an_empty_column_is_not_type_drift(runner):
    # Typed VARCHAR, the empty column failed the run as drift from the table's BIGINT.
    runner.put("a.csv", "id,qty\n1,3\n")
    source = runner.source("{name: items, glob: '*.csv'}")
    runner.run(source)
    runner.put("a.csv", "id,qty\n2,\n")
    runner.run(source, day(2), day(3))
    assert runner.column_types("items") == {"id": "BIGINT", "qty": "BIGINT"}
    assert runner.query("select id, qty from raw_faults.items") == [(2, None)]


def test_a_column_two_csv_files_type_differently_fails_naming_both_files_and_column_types(runner):
    _good_first_run(runner, "{name: items, glob: '*.csv'}")
    runner.put("b.csv", "id,name,qty\n2,bar,x\n")
    message = _fails_and_keeps(runner, runner.source("{name: items, glob: '*.csv'}"), "column 'qty'")
    assert "b.csv" in message and "a.csv" in message and "`tables[0].column_types: {qty: text}`" in message, message


def test_a_column_two_parquet_files_type_differently_fails_naming_both_files(runner):
    pq.write_table(pa.table({"id": pa.array([1], pa.int64())}), runner.data / "a.parquet")
    pq.write_table(pa.table({"id": pa.array(["1"], pa.string())}), runner.data / "b.parquet")
    with pytest.raises(Exception) as failure:
        runner.run(runner.source("{name: items, glob: '*.parquet', format: parquet}"))
    message = str(failure.value)
    assert "column 'id'" in message and "a.parquet" in message and "b.parquet" in message, message
    assert "one type in every file" in message, message


@pytest.mark.parametrize(
    ("line", "keys"),
    [
        ('{"id": 3, "unit price": 1, "unit_price": 2}', "'unit price' and 'unit_price'"),
        ('{"id": 3, "Status": "a", "status": "b"}', "'Status' and 'status'"),
        ('{"id": 3, "lines": [{"sku": "a", "SKU": "b"}]}', "'lines[].sku' and 'lines[].SKU'"),
    ],
)
def test_jsonl_keys_that_would_load_into_one_column_fail_naming_the_line(runner, line, keys):
    # dlt normalizes both keys to one column and keeps one value, without a word.
    runner.put("a.jsonl", '{"id": 1, "status": "x"}\n{"id": 2, "status": "y"}\n' + line + "\n")
    with pytest.raises(Exception) as failure:
        runner.run(runner.source("{name: items, glob: '*.jsonl', format: jsonl}"))
    message = str(failure.value)
    assert "a.jsonl line 3" in message and f"keys {keys} would both load into column" in message, message


@pytest.mark.parametrize(
    ("name", "content", "table", "expected"),
    [
        ("a.csv", "id,_dlt_load_id\n1,abc\n", "{name: items, glob: '*.csv'}", "key '_dlt_load_id' would load into"),
        ("a.jsonl", '{"id": 1, "_dlt_id": "mine"}\n', "{name: items, glob: '*.jsonl', format: jsonl}", "line 1: key"),
        ("a.csv", "id,unit price,unit_price\n1,2,3\n", "{name: items, glob: '*.csv'}", "keys 'unit price' and"),
    ],
)
def test_a_file_column_that_meets_dlts_own_or_another_fails_naming_it(runner, name, content, table, expected):
    # CSV: the file's _dlt_load_id was kept as dlt's load id; JSONL: its _dlt_id as the row id.
    runner.put(name, content)
    with pytest.raises(Exception) as failure:
        runner.run(runner.source(table))
    message = str(failure.value)
    assert f"file {name}" in message or f"{name} line" in message, message
    assert expected in message, message


def test_a_jsonl_value_of_another_type_is_kept_in_a_variant_column_not_coerced(runner, caplog):
    # In one load dlt coerced 7 to true, "12345" to 1970-01-01 03:25:45 and "00123" to 123, silently.
    # (Across loads the type drift check already refused such values.)
    runner.put(
        "a.jsonl",
        '{"id": 1, "flag": true, "seen_at": "2024-01-01T10:00:00+00:00", "n": 5}\n'
        '{"id": 2, "flag": 7, "seen_at": "12345", "n": "00123"}\n',
    )
    with caplog.at_level(logging.WARNING):
        runner.run(runner.source("{name: items, glob: '*.jsonl', format: jsonl}"))
    typed_and_variants = (
        "select id, flag, flag__v_bigint, seen_at, seen_at__v_text, n, n__v_text from raw_faults.items order by id"
    )
    assert runner.query(typed_and_variants) == [
        (1, True, None, dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC), None, 5, None),
        (2, None, 7, None, "12345", None, "00123"),
    ]
    assert "new variant column flag__v_bigint" in caplog.text  # reported as type drift


# --- empty inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize("cause", ["no file", "header only"])
def test_a_full_refresh_table_whose_input_is_empty_fails_and_keeps_its_rows(runner, cause):
    _good_first_run(runner, "{name: items, glob: '*.csv'}")
    (runner.data / "a.csv").unlink()
    if cause == "header only":
        runner.put("a.csv", FAULTS / "header_only.csv")
    expected = "the 1 file(s) matching" if cause == "header only" else "no file matches"
    message = _fails_and_keeps(runner, runner.source("{name: items, glob: '*.csv'}"), "table 'items'", expected)
    assert f"{runner.data}/*.csv" in message and "`tables[0].on_empty: fail` (the default" in message, message


@pytest.mark.parametrize("contract", ["evolve", "freeze"])
@pytest.mark.parametrize("cause", ["no file", "header only"])
def test_on_empty_warn_logs_a_warning_and_the_table_keeps_its_rows(runner, caplog, contract, cause):
    # With `freeze`, the last run's schema is restored: dlt would then empty a replace table that
    # yields nothing. The previous rows must stay either way.
    table = "{name: items, glob: '*.csv', on_empty: warn}"
    _good_first_run(runner, table, f"schema_contract: {contract}\n")
    (runner.data / "a.csv").unlink()
    if cause == "header only":
        runner.put("a.csv", FAULTS / "header_only.csv")
    caplog.set_level(logging.INFO, logger=EMPTY_INPUT_LOGGER)
    runner.run(runner.source(table, f"schema_contract: {contract}\n"), day(2), day(3))
    assert runner.query("select id, name, qty from raw_faults.items") == [(1, "foo", 3)]
    warnings = [r.getMessage() for r in caplog.records if r.name == EMPTY_INPUT_LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "table 'items'" in warnings[0] and "on_empty: warn" in warnings[0], warnings


def test_an_incremental_table_without_new_files_is_ok_by_default_and_says_so(runner, caplog):
    table = "{name: items, glob: '*.csv', new_files_only: true}"
    runner.put("a.csv", "id,name,qty\n1,foo,3\n", modified=day(1))
    runner.run(runner.source(table))
    caplog.set_level(logging.INFO, logger=EMPTY_INPUT_LOGGER)
    assert runner.run(runner.source(table), day(2), day(3)) == {}  # no file modified on day 2
    assert runner.query("select id from raw_faults.items") == [(1,)]
    [record] = [r for r in caplog.records if r.name == EMPTY_INPUT_LOGGER]
    assert record.levelno == logging.INFO and "in this interval" in record.getMessage()
    assert "`tables[0].on_empty: ok` (the default for incremental tables)" in record.getMessage()


def test_on_empty_ok_is_silent_and_keeps_the_rows(runner, caplog):
    table = "{name: items, glob: '*.csv', on_empty: ok}"
    _good_first_run(runner, table)
    (runner.data / "a.csv").unlink()
    caplog.set_level(logging.WARNING, logger=EMPTY_INPUT_LOGGER)
    assert runner.run(runner.source(table), day(2), day(3)) == {}
    assert runner.query("select id from raw_faults.items") == [(1,)]
    assert not [r for r in caplog.records if r.name == EMPTY_INPUT_LOGGER]


@pytest.mark.parametrize(
    ("name", "content", "file_format"),
    [("b.csv", "id,_file_path\n2,orig\n", "csv"), ("b.jsonl", '{"id": 2, "_file_path": "orig"}\n', "jsonl")],
)
def test_a_file_with_its_own_file_path_column_fails_under_new_files_only(runner, name, content, file_format):
    # new_files_only writes the file's path into `_file_path`: the file's own values were overwritten.
    suffix = name.rsplit(".", 1)[1]
    table = f"{{name: items, glob: '*.{suffix}', format: {file_format}, new_files_only: true}}"
    first = "id,name\n1,a\n" if file_format == "csv" else '{"id": 1, "name": "a"}\n'
    runner.put(f"a.{suffix}", first, modified=day(1))
    runner.run(runner.source(table))
    runner.put(name, content, modified=day(2))
    before = runner.query("select id, _file_path from raw_faults.items order by all")
    with pytest.raises(Exception) as failure:
        runner.run(runner.source(table), day(2), day(3))
    assert f"file {name} has a column _file_path, which new_files_only adds" in str(failure.value)
    assert runner.query("select id, _file_path from raw_faults.items order by all") == before == [(1, f"a.{suffix}")]
