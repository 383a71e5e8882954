"""Helpers shared by the benchmark scripts: environment, machine facts, timing, result files.

Every script measures Mallard and a baseline in the same run, prints both with their ratio and
writes `bench/results/<name>.json`, so a figure is never compared with one from another day or
another machine load.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
VERSIONED_PACKAGES = ("apache-airflow", "astronomer-cosmos", "dlt", "dbt-core", "dbt-duckdb", "duckdb", "pyarrow")


def prepare_environment() -> dict[str, str]:
    """The project's environment (scripts/env.sh), telemetry off, a throwaway AIRFLOW_HOME and Cosmos cache.

    Call before Airflow is imported. scripts/env.sh holds settings that change what is measured
    (Cosmos's watcher Variable backup, off there, made the dbt build task 3.2x bare dbt at 1,000
    models instead of ~1.1x), so it applies whether or not the shell sourced it. The private
    folders keep benchmarks away from the `.airflow/` of a local stack, and from tests that may be
    running at the same time. Returns the environment that child processes should get (they
    share the same private folders).
    """
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    from include.mallard.environment import apply_project_environment

    apply_project_environment()  # telemetry off, examples off, dlt's Variables provider off, ...
    if not os.environ.get("MALLARD_BENCH_AIRFLOW_HOME"):
        # Created by the top-level script, inherited by its children, removed when the script ends.
        os.environ["MALLARD_BENCH_AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="mallard-bench-airflow-")
        atexit.register(shutil.rmtree, os.environ["MALLARD_BENCH_AIRFLOW_HOME"], ignore_errors=True)
    os.environ["AIRFLOW_HOME"] = os.environ["MALLARD_BENCH_AIRFLOW_HOME"]
    # Cosmos keys its cache folder by DAG id under /tmp/cosmos, shared with real runs of `mallard_elt`.
    os.environ["AIRFLOW__COSMOS__CACHE_DIR"] = str(Path(os.environ["AIRFLOW_HOME"]) / "cosmos-cache")
    paths = [str(PROJECT_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return dict(os.environ)


def machine_info() -> dict[str, Any]:
    """What the figures depend on: cores, memory, load at the time, Python and library versions."""
    import psutil

    versions = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_average_1_5_15": [round(value, 2) for value in os.getloadavg()],
        "versions": versions,
    }


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write `bench/results/<name>.json` (machine facts included) and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {"benchmark": name, "machine": machine_info(), **payload}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def run_measured(command: list[str], env: dict[str, str], marker: str) -> tuple[int, str, dict[str, Any] | None]:
    """Run `command` in a new process: (exit code, its output, the JSON it printed after `marker`).

    The JSON gets the child's own peak RSS from `os.wait4` (RUSAGE_CHILDREN would report the
    largest of all children so far) as `peak_rss_mb`.
    """
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        output.seek(0)
        text = output.read()
    lines = [line for line in text.splitlines() if line.startswith(marker)]
    result = json.loads(lines[-1].removeprefix(marker)) if lines else None
    if result is not None:
        result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    return os.waitstatus_to_exitcode(status), text, result


def run_child_result(command: list[str], env: dict[str, str], marker: str) -> dict[str, Any]:
    """`run_measured`, raising with the end of the child's output when it failed or printed no result."""
    code, text, result = run_measured(command, env, marker)
    if code != 0 or result is None:
        raise RuntimeError(f"benchmark child {' '.join(command)} failed ({code}):\n{text[-4000:]}")
    return result


def report_written(result: Path, scratch: Path, keep: bool) -> None:
    """Say where the result went; remove the script's temporary folder unless asked to keep it."""
    print(f"\nwrote {result}")
    if keep:
        print(f"kept {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)


def ratio(value: float, baseline: float) -> float | None:
    """value / baseline, rounded; None when the baseline is zero."""
    return round(value / baseline, 3) if baseline else None


def median(values: list[float]) -> float:
    return statistics.median(values)


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """`with stopwatch() as elapsed: ...`; `elapsed()` is the seconds spent inside the block (or so far)."""
    start = time.perf_counter()
    end: float | None = None

    def elapsed() -> float:
        return (end if end is not None else time.perf_counter()) - start

    try:
        yield elapsed
    finally:
        end = time.perf_counter()


def print_rows(title: str, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """A plain aligned table on stdout."""
    table = [tuple(str(cell) for cell in header), *[tuple(str(cell) for cell in row) for row in rows]]
    widths = [max(len(row[column]) for row in table) for column in range(len(header))]
    print(f"\n{title}")
    for row in table:
        # Labels (first column) to the left, figures to the right.
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        print("  " + "  ".join(cells))


def check_target(label: str, passed: bool) -> str:
    """A one-line verdict, printed and stored with the figures."""
    verdict = f"{'PASS' if passed else 'MISS'}  {label}"
    print(verdict)
    return verdict
