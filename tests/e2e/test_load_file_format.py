"""Row-based sources load through Parquet files: same types and merges, memory flat with rows.

dlt's DuckDB default for rows (python dicts, REST pages, SQL rows) is `insert_values`: the load
executes SQL text holding every row, so a task's memory grew with the table (6 GB at 212k rows,
issue 15). Mallard sets Parquet for every load file (`ingest._destination`). These tests run a
`kind: python` source (its functions are below) through the real `ingest.extract` and `load`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from include.mallard import dlt_steps, ingest
from include.mallard.config.loader import parse_source_file
from include.mallard.interval import Interval
from include.mallard.paths import PROJECT_ROOT

pytestmark = pytest.mark.e2e
UTC = dt.UTC
START, END = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 2, tzinfo=UTC)
WEI = decimal.Decimal(2**70)  # past 64 bits: the value a `wei` column exists for


def typed_rows(start: dt.datetime, end: dt.datetime, version: int = 1) -> Any:
    """Rows with the types Parquet could mangle: wei, decimal, time, json, nested dicts and lists, bytes."""
    import dlt

    columns = {
        "amount_wei": {"data_type": "wei"},
        "price": {"data_type": "decimal", "precision": 10, "scale": 3},
        "at_time": {"data_type": "time"},
        "payload": {"data_type": "json"},
    }

    @dlt.resource(name="things", primary_key="id", write_disposition="merge", columns=columns)
    def things() -> Iterator[list[dict[str, Any]]]:
        yield [
            {
                "id": 1,
                "amount_wei": WEI + version,
                "price": decimal.Decimal("1.234"),
                "at_time": dt.time(12, 30, 1, 123456),
                "payload": {"a": [1, 2], "v": version},
                "address": {"city": "Lyon", "zip": "69001"},
                "tags": [{"tag": "x"}, {"tag": "y"}],
                "raw": b"\x00\xff",
                "updated_at": start,
                "day": start.date(),
            },
            {"id": 2, "amount_wei": None, "price": None, "at_time": None, "payload": None, "tags": []},
        ]

    return things


def many_rows(start: dt.datetime, end: dt.datetime, rows: int = 1000) -> Any:
    """`rows` flat rows in pages of 10,000, like a paginated API."""
    import dlt

    @dlt.resource(name="events", primary_key="id", write_disposition="merge")
    def events() -> Iterator[list[dict[str, Any]]]:
        for first in range(0, rows, 10_000):
            yield [
                {"id": i, "name": f"event {i}", "amount": i * 0.5, "at": start, "kind": ("a", "b", "c")[i % 3]}
                for i in range(first, min(first + 10_000, rows))
            ]

    return events


def _source(tmp_path: Path, name: str, function: str, args: dict[str, Any]) -> Any:
    path = tmp_path / "sources" / f"{name}.yml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"kind: python\nfunction: tests.e2e.test_load_file_format:{function}\nargs: {json.dumps(args)}\n")
    return parse_source_file(path)


def test_rows_load_through_parquet_with_their_types_and_merge(warehouse, tmp_path):
    for version in (1, 2):  # the second run changes row 1: merged on the key, not added
        source = _source(tmp_path, "typed", "typed_rows", {"version": version})
        work_dir = ingest.run_work_dir("test_load_file_format", f"run_{version}", source.name)
        ingest.extract(source, Interval(START, END), work_dir)
        jobs = [p.name for p in work_dir.rglob("normalized/*/new_jobs/*") if p.name.startswith("things")]
        assert jobs and all(name.endswith(".parquet") for name in jobs), jobs
        ingest.load(source, work_dir)

    with duckdb.connect(str(warehouse), read_only=True) as connection:
        types = dict(
            connection.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'raw_typed' and table_name = 'things'"
            ).fetchall()
        )
        rows = connection.execute(
            "select id, amount_wei, price, at_time, payload, address__city, raw, updated_at, day "
            "from raw_typed.things order by id"
        ).fetchall()
        tags = connection.execute("select tag from raw_typed.things__tags order by _dlt_list_idx").fetchall()
    assert types["amount_wei"] == "DECIMAL(38,0)" and types["price"] == "DECIMAL(10,3)"
    assert types["at_time"] == "TIME" and types["payload"] == "JSON" and types["raw"] == "BLOB"
    assert types["updated_at"] == "TIMESTAMP WITH TIME ZONE" and types["day"] == "DATE"
    assert len(rows) == 2
    first = rows[0]
    assert first[:4] == (1, WEI + 2, decimal.Decimal("1.234"), dt.time(12, 30, 1, 123456))
    assert json.loads(first[4]) == {"a": [1, 2], "v": 2}
    assert first[5:7] == ("Lyon", b"\x00\xff")
    assert first[7] == START and first[8] == START.date()
    assert rows[1] == (2, None, None, None, None, None, None, None, None)
    assert tags == [("x",), ("y",)]  # replaced with the merged row, not doubled


_CHILD = """
import json, resource, sys
from pathlib import Path
from include.mallard import ingest
from include.mallard.config.loader import parse_source_file
from include.mallard.interval import Interval
import datetime as dt
source = parse_source_file(Path(sys.argv[1]))
work_dir = Path(sys.argv[2])
interval = Interval(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 2, tzinfo=dt.UTC))
counts = ingest.extract(source, interval, work_dir)
ingest.load(source, work_dir)
print(json.dumps({"rows": counts["events"], "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _peak_of_one_load(tmp_path: Path, rows: int) -> dict[str, Any]:
    """extract + load of `rows` rows in a new process: its rows and peak RSS (MB, from the OS)."""
    source = _source(tmp_path, f"volume_{rows}", "many_rows", {"rows": rows})
    work_dir = ingest.run_work_dir("test_load_file_format", f"volume_{rows}", source.name)
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "sources" / f"volume_{rows}.yml"), str(work_dir)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        timeout=600,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    return json.loads(child.stdout.strip().splitlines()[-1])


def test_a_row_based_load_keeps_its_memory_flat_from_30k_to_300k_rows(warehouse, tmp_path):
    """With insert_values the 300k-row load peaked at 4.5 GB (the SQL text of every row); with Parquet
    ten times the rows cost about the same memory (most of it the interpreter with dlt and DuckDB).

    Compared within one run, so what the environment adds (seen: 350 MB alone, 640 MB late in the
    full suite) cancels out; bench/scale.py measures more rows and kinds.
    """
    small, large = _peak_of_one_load(tmp_path, 30_000), _peak_of_one_load(tmp_path, 300_000)
    assert (small["rows"], large["rows"]) == (30_000, 300_000)
    assert large["peak_mb"] - small["peak_mb"] < 150, (small, large)
    assert large["peak_mb"] < 1000, large
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        assert connection.execute("select count(*), count(distinct id) from raw_volume_300000.events").fetchone() == (
            300_000,
            300_000,
        )


def _extracted_file_heads(work_dir: Path) -> list[bytes]:
    """The first two bytes of each file dlt's extract wrote for table `events` (gzip's are 1f 8b)."""
    files = [p for p in work_dir.rglob("extracted/*/new_jobs/*") if p.name.startswith("events.")]
    assert files, f"no extracted file of table events under {work_dir}"
    return [p.read_bytes()[:2] for p in files]


@pytest.mark.parametrize("user_setting", [None, "false"])
def test_extract_files_are_uncompressed_unless_the_user_keeps_dlts_gzip(warehouse, tmp_path, monkeypatch, user_setting):
    """dlt gzips what extract writes for normalize to read back: a fifth of a row-based extract's time."""
    if user_setting is None:
        monkeypatch.delenv(dlt_steps.EXTRACT_COMPRESSION_OFF_ENV, raising=False)
    else:
        monkeypatch.setenv(dlt_steps.EXTRACT_COMPRESSION_OFF_ENV, user_setting)
    source = _source(tmp_path, "plain", "many_rows", {"rows": 25_000})
    pipeline = ingest.warehouse_pipeline(source, tmp_path / "work")
    dlt_steps.extract_items(pipeline, [many_rows(START, END, 25_000)])

    heads = _extracted_file_heads(tmp_path / "work")
    assert all(head == b"\x1f\x8b" for head in heads) == (user_setting == "false"), heads
    assert os.environ.get(dlt_steps.EXTRACT_COMPRESSION_OFF_ENV) == user_setting  # the setting ends with the extract
    dlt_steps.normalize_in_process(pipeline)  # the files read back: every row reaches a load file
    assert pipeline.last_trace.last_normalize_info.row_counts["events"] == 25_000
