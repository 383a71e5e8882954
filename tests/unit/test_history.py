"""The history tables' rows: dbt's run results, schema changes, errors without secrets, replace semantics.

Real DuckDB (in a temp file); the end-to-end tests (test_run_history.py, test_dags_test_run.py,
test_dbt_failure.py) check what real dlt loads and real dbt builds write.
"""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from include.mallard import history, history_queue

RUN = history.RunRef("mallard_elt", "manual__2024-01-08T00:00:00+00:00")

RUN_RESULTS = {
    "metadata": {"generated_at": "2024-01-08T10:00:05.123456Z"},
    "results": [
        {
            "unique_id": "model.mallard.stg_stores__stores",
            "status": "success",
            "failures": None,
            "message": "OK",
            "execution_time": 0.21,
            "timing": [
                {"name": "compile", "started_at": "2024-01-08T10:00:01Z", "completed_at": "2024-01-08T10:00:01.5Z"},
                {"name": "execute", "started_at": "2024-01-08T10:00:01.5Z", "completed_at": "2024-01-08T10:00:02Z"},
            ],
        },
        {
            "unique_id": "test.mallard.not_null_stg_stores__stores_store_name.6c6d1f4a3e",
            "status": "fail",
            "failures": 1,
            "message": "Got 1 result, configured to fail if != 0",
            "execution_time": 0.05,
            "timing": [],
        },
        {"unique_id": "model.mallard.orders", "status": "skipped", "failures": None, "message": None},
        {"unique_id": "unit_test.mallard.orders.test_totals", "status": "pass", "failures": 0, "message": None},
        {"unique_id": "operation.mallard.mallard-on-run-end-0", "status": "success"},
    ],
}


def test_dbt_run_results_become_one_row_per_node_with_failures_and_timing():
    rows = history.dbt_nodes(RUN_RESULTS, RUN.dag_id, RUN.run_id)
    summary = [(r.resource_type, r.name, r.status, r.failures, r.message) for r in rows]
    assert summary == [
        ("model", "stg_stores__stores", "success", None, "OK"),
        ("test", "not_null_stg_stores__stores_store_name", "fail", 1, "Got 1 result, configured to fail if != 0"),
        ("model", "orders", "skipped", None, None),
        ("test", "orders", "pass", 0, None),
    ]
    # The last of the node's timings, else when dbt wrote the file.
    assert rows[0].finished_at == dt.datetime(2024, 1, 8, 10, 0, 2, tzinfo=dt.UTC)
    assert rows[1].finished_at == dt.datetime(2024, 1, 8, 10, 0, 5, 123456, tzinfo=dt.UTC)
    assert rows[0].execution_seconds == 0.21


def test_schema_changes_are_added_widened_and_variant_columns_not_declaration_mismatches():
    previous = {"readings": {"id": "bigint", "temperature": "bigint", "_dlt_id": "varchar"}}
    current = {
        "readings": {"id": "bigint", "temperature": "bigint", "temperature__v_double": "double", "humidity": "double"},
        "sensors": {"id": "bigint", "_dlt_id": "varchar"},
    }
    drift = [
        {"table": "readings", "column": "temperature", "old": "bigint", "new": "double", "against": "the previous load"}
        | {"variant": "temperature__v_double"},
        {"table": "readings", "column": "id", "old": "integer", "new": "bigint", "against": "the previous load"},
        {"table": "readings", "column": "x", "old": "double", "new": "varchar", "against": "models/_s__sources.yml"},
    ]
    changes = history.schema_changes(
        previous, current, {("readings", "temperature__v_double")}, drift, against_loads={"the previous load"}
    )
    assert [(c["table"], c["column"], c["change"], c["old"], c["new"]) for c in changes] == [
        ("readings", "temperature__v_double", "variant", "bigint", "double"),
        ("readings", "id", "type_changed", "integer", "bigint"),
        ("readings", "humidity", "added", None, "double"),
        ("sensors", "id", "added", None, "bigint"),  # a new table of the source: its columns are new
    ]
    # A source's first load is the baseline: nothing is "added".
    assert history.schema_changes(None, current, set(), [], against_loads=set()) == []


def test_an_error_keeps_its_first_lines_and_no_secret_airflow_knows():
    from airflow.sdk.log import mask_secret

    mask_secret("tok-9f8e7d6c5b4a")
    text = "\n".join(["RuntimeError: the API rejected tok-9f8e7d6c5b4a"] + [f"line {n}" for n in range(50)])
    cleaned = history.clean_error(text)
    assert "tok-9f8e7d6c5b4a" not in cleaned and "***" in cleaned
    assert cleaned.splitlines()[history.ERROR_LINES] == "... (31 more lines in the task log)"
    assert history.clean_error(ValueError("bad value")) == "ValueError: bad value"


def _rows(path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path)) as connection:
        return connection.execute(sql).fetchall()


def test_an_attempt_replaces_its_runs_rows_in_one_transaction(tmp_path):
    path = tmp_path / "w.duckdb"
    facts = {"rows": {"orders": 5}, "built": ["orders", "customers"], "interval": ["2024-01-07", "2024-01-08"]}
    with duckdb.connect(str(path)) as connection:
        history.write_loads(connection, RUN.dag_id, RUN.run_id, "shop", history.load_rows(RUN, "shop", facts))
        other = history.RunRef(RUN.dag_id, "another run")
        history.write_loads(connection, other.dag_id, other.run_id, "shop", history.load_rows(other, "shop", facts))
        failed = history.load_rows(RUN, "shop", facts, error=RuntimeError("boom"))
        history.write_loads(connection, RUN.dag_id, RUN.run_id, "shop", failed)
        # A row that cannot be written rolls the whole attempt back: the failed rows stay.
        broken = [history.LoadRow(**{**vars(failed[0]), "rows": "not a number"})]
        with pytest.raises(duckdb.Error):
            history.write_loads(connection, RUN.dag_id, RUN.run_id, "shop", broken)
    assert _rows(path, "select run_id, table_name, rows, status, error from mallard_meta.loads order by all") == [
        ("another run", "customers", 0, "success", None),
        ("another run", "orders", 5, "success", None),
        (RUN.run_id, "customers", None, "failed", "RuntimeError: boom"),
        (RUN.run_id, "orders", None, "failed", "RuntimeError: boom"),
    ]


def test_a_failed_load_that_cannot_open_the_warehouse_is_queued_then_written_by_the_last_task(tmp_path, monkeypatch):
    monkeypatch.setenv("MALLARD_WORK_DIR", str(tmp_path / "work"))
    path = tmp_path / "w.duckdb"

    def locked():
        raise duckdb.IOException('IO Error: Could not set lock on file "w.duckdb": Conflicting lock is held')

    rows = history.load_rows(RUN, "stores", {}, error=TimeoutError("the warehouse stayed locked"))
    history_queue.record_failed_load(locked, RUN, "stores", rows)
    results = tmp_path / "run_results.json"
    results.write_text(json.dumps(RUN_RESULTS))
    history_queue.keep_run_results(RUN, results)
    assert [n.name for n in history_queue.failed_nodes(RUN)] == ["not_null_stg_stores__stores_store_name"]

    with duckdb.connect(str(path)) as connection:
        assert history_queue.flush_pending(connection, RUN) == {"loads": 1, "dbt_nodes": 4}
        assert history_queue.flush_pending(connection, RUN) == {}  # written once
    assert _rows(path, "select source, table_name, status from mallard_meta.loads") == [("stores", None, "failed")]
    assert _rows(path, "select count(*) from mallard_meta.dbt_nodes where status = 'fail'") == [(1,)]
    assert not history_queue.pending_dir(RUN.dag_id, RUN.run_id).exists()
