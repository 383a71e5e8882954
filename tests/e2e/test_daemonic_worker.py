"""An extract inside a daemonic process, as a Celery worker runs its tasks, with `WORKERS=2` in the env.

`make stack EXECUTOR=celery WORKERS=2` exports WORKERS to every process it starts; dlt reads any
config named `workers` for its normalize step and, above 1, starts a process pool, which a daemonic
process may not ("daemonic processes are not allowed to have children"): every load of that
README command failed. The extract must normalize in its own process whatever the config says.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from pathlib import Path

import pytest

from include.mallard import ingest
from include.mallard.config import get_source
from include.mallard.interval import Interval
from include.mallard.paths import SOURCES_DIR

pytestmark = pytest.mark.e2e


def _extract_stores(work_dir: str, results: multiprocessing.Queue) -> None:
    try:
        day = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        rows = ingest.extract(
            get_source(SOURCES_DIR, "stores"), Interval(day, day + dt.timedelta(days=1)), Path(work_dir)
        )
        results.put(("ok", rows))
    except BaseException as error:  # the parent asserts on it
        results.put(("error", f"{type(error).__name__}: {error}"))


def test_an_extract_in_a_daemonic_worker_process_normalizes_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKERS", "2")
    monkeypatch.setenv("MALLARD_WORK_DIR", str(tmp_path / "work"))
    results: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()
    worker = multiprocessing.get_context("fork").Process(
        target=_extract_stores, args=(str(tmp_path / "run"), results), daemon=True
    )
    worker.start()
    outcome, value = results.get(timeout=300)
    worker.join(timeout=60)
    assert os.environ["WORKERS"] == "2"
    assert outcome == "ok", value
    assert value == {"stores": 5}
