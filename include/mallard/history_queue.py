"""History that waits for the run's last task: what a task could not write to `mallard_meta` itself.

An extract never opens the warehouse, and a load that failed on the warehouse lock cannot write
to it; the dbt build's `run_results.json` lives in Cosmos's temporary copy of the project, which is
deleted when the build ends. Each of them is kept as a JSON file in a folder per DAG run under
`<MALLARD_WORK_DIR>/history/`, and the run's last task (`tasks.publish_task`, in the warehouse
pool, whatever failed before it) writes them with `flush_pending`. A later successful attempt of
the same load removes its queued failure (`discard_queued`), so a stale failure never overwrites it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from include.mallard import history
from include.mallard.paths import work_root

log = logging.getLogger(__name__)

RUN_RESULTS_FILE = "dbt_run_results.json"


def pending_dir(dag_id: str, run_id: str) -> Path:
    """The folder of run (dag_id, run_id)'s history that waits for its last task."""
    safe_run_id = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
    return work_root() / "history" / dag_id / safe_run_id


def _loads_file(run: history.RunRef, source: str) -> Path:
    return pending_dir(run.dag_id, run.run_id) / f"loads__{source}.json"


def _write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8") as tmp:
        json.dump(document, tmp, default=str)
    Path(tmp.name).replace(path)  # whole or not at all, even if the task is killed


def queue_loads(run: history.RunRef, source: str, rows: Sequence[history.LoadRow]) -> Path:
    """Keep (run, source)'s `loads` rows for the run's last task."""
    path = _loads_file(run, source)
    _write_json(path, {"source": source, "rows": [asdict(row) for row in rows]})
    return path


def discard_queued(run: history.RunRef, source: str) -> None:
    """Forget (run, source)'s queued rows: this attempt wrote its own."""
    _loads_file(run, source).unlink(missing_ok=True)


def record_load(
    connect: Callable[[], contextlib.AbstractContextManager[Any]],
    run: history.RunRef,
    source: str,
    rows: Sequence[history.LoadRow],
    changes: Sequence[history.SchemaChangeRow],
) -> None:
    """Write a load's rows and schema changes with `connect` (the load's own warehouse connection)."""
    with connect() as connection:
        history.write_loads(connection, run.dag_id, run.run_id, source, rows)
        history.write_schema_changes(connection, run.dag_id, run.run_id, source, changes)
    discard_queued(run, source)


def record_failed_load(
    connect: Callable[[], contextlib.AbstractContextManager[Any]] | None,
    run: history.RunRef,
    source: str,
    rows: Sequence[history.LoadRow],
) -> None:
    """A failed attempt's rows: written now when the warehouse opens (`connect`), else queued."""
    if connect is not None:
        try:
            with connect() as connection:
                history.write_loads(connection, run.dag_id, run.run_id, source, rows)
            discard_queued(run, source)
            return
        except Exception as error:  # locked or broken: never hide the task's own error behind this one
            log.warning(
                "Could not record the failed load in %s now (%s); the run's last task will.", "mallard_meta", error
            )
    try:
        queue_loads(run, source, rows)
    except Exception:  # the task's own error is what matters; this one goes to the log
        log.exception("Could not keep the failed load of source %r for the run's history", source)


def keep_run_results(run: history.RunRef, run_results: Path) -> Path | None:
    """Copy a `dbt build`'s `run_results.json` for the run's last task; None when dbt left none."""
    if not run_results.is_file():
        log.warning("dbt left no %s: this build's node results are not recorded.", run_results)
        return None
    target = pending_dir(run.dag_id, run.run_id) / RUN_RESULTS_FILE
    _write_json(target, json.loads(run_results.read_text(encoding="utf-8")))
    return target


def _load_row(document: dict[str, Any]) -> history.LoadRow:
    for name in ("interval_start", "interval_end", "started_at", "finished_at"):
        document[name] = history.parse_timestamp(document.get(name))
    return history.LoadRow(**document)


def flush_pending(connection: Any, run: history.RunRef) -> dict[str, int]:
    """Write what waits for `run` into `mallard_meta` (a DuckDB connection); remove each file once written."""
    folder = pending_dir(run.dag_id, run.run_id)
    written: dict[str, int] = {}
    for path in sorted(folder.glob("loads__*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        rows = [_load_row(row) for row in document["rows"]]
        history.write_loads(connection, run.dag_id, run.run_id, document["source"], rows)
        written["loads"] = written.get("loads", 0) + len(rows)
        path.unlink()
    results = folder / RUN_RESULTS_FILE
    if results.is_file():
        rows = history.dbt_nodes(json.loads(results.read_text(encoding="utf-8")), run.dag_id, run.run_id)
        history.write_dbt_nodes(connection, run.dag_id, run.run_id, rows)
        written["dbt_nodes"] = len(rows)
        results.unlink()
    with contextlib.suppress(OSError):  # not empty (a file appeared meanwhile) or already gone
        folder.rmdir()
    return written


def failed_nodes(run: history.RunRef) -> list[history.DbtNodeRow]:
    """The nodes that errored or failed in the run's kept (not yet flushed) dbt results, for alerts."""
    results = pending_dir(run.dag_id, run.run_id) / RUN_RESULTS_FILE
    if not results.is_file():
        return []
    rows = history.dbt_nodes(json.loads(results.read_text(encoding="utf-8")), run.dag_id, run.run_id)
    return [row for row in rows if row.status in ("error", "fail")]
