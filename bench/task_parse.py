"""A task process's parse of the DAG file, as the LocalExecutor runs it: forked from a preloaded scheduler.

    python -m bench.task_parse [--large-project DIR] [--rounds 3] [--forks 5]

Airflow's LocalExecutor forks every task process from a worker, itself a fork of the scheduler,
and the task process parses the DAG file for its one task (the task runner names it in
`get_parsing_context()`). Mallard's scheduler preloads what the tasks import
(include/mallard/worker_preload.py), and parses the project's dbt manifest
(include/mallard/cosmos_manifest.py) and the YAML files every parse reads (source configs,
dbt_project.yml, profiles.yml: include/mallard/parsed_files.py) once for them. This script
measures those two steps against their baseline:

- a parent process set up as Mallard's scheduler sets itself up (Airflow's plugins loaded,
  `worker_preload.preload()` and `preload_project()`, then `gc.freeze()` as the LocalExecutor does
  before it forks): with nothing else ("files read"), with `cosmos_manifest.preload_manifest(<the
  project's manifest>)` ("manifest preloaded"), and with `factory.preload_for_tasks(<the project's
  folders>)` too ("manifest and YAML preloaded", what the scheduler does now);
- `--forks` forks of it, each parsing the DAG file (`runpy`) with the parsing context of one task:
  a mart model's run task, the first source's extract task and `publish` (which render no dbt
  project), and with none (the whole DAG, as the DAG processor parses it: what a task outside the
  dbt group parsed before it skipped the dbt group).

Projects: the demo (`dags/`) and the generated one (bench/generate_large_project.py, 50 sources
and 1,000 models; --large-project reuses a folder). Each round starts every variant's parent anew,
in turn (interleaved). Prints the median seconds per fork and each variant's ratio to "files
read"; writes bench/results/task_parse.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import runpy
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    PROJECT_ROOT,
    median,
    prepare_environment,
    print_rows,
    ratio,
    report_written,
    run_child_result,
    write_result,
)
from bench.generate_large_project import generate_project
from bench.parse import (
    PARSING_CONTEXT_ENV,
    RESULT_MARKER,
    ensure_manifest,
    ingest_task_env,
    model_task_env,
    task_process_env,
)
from include.mallard.paths import DBT_PROJECT_DIR, MANIFEST_RELATIVE_PATH, SOURCES_DIR


def child(dag_file: str, manifest: str | None, forks: int, project_files: list[str] | None) -> dict[str, Any]:
    """In a new process: set up as the scheduler, then time `forks` forks each parsing `dag_file`.

    `project_files` (sources folder, dbt project folder): also parse the files the DAG parse reads,
    as the scheduler does for the project's own folders (`factory.preload_for_tasks`)."""
    from airflow import plugins_manager

    from include.mallard import worker_preload
    from include.mallard.cosmos_manifest import preload_manifest
    from include.mallard.factory import preload_for_tasks

    plugins_manager.ensure_plugins_loaded()
    worker_preload.preload()
    worker_preload.preload_project()
    if project_files:
        preload_for_tasks(*(Path(folder) for folder in project_files))
    preloaded = preload_manifest(Path(manifest)) if manifest else False
    gc.freeze()
    seconds = []
    for _ in range(forks):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the task process
            os.close(read)
            started = time.perf_counter()
            runpy.run_path(dag_file)
            os.write(write, f"{time.perf_counter() - started}".encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as answer:
            text = answer.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not text:
            raise RuntimeError(f"the fork parsing {dag_file} failed (status {status})")
        seconds.append(float(text))
    return {"seconds": seconds, "manifest_preloaded": preloaded}


def _run_child(
    dag_file: Path, env: dict[str, str], manifest: Path | None, project_files: tuple[Path, Path] | None, forks: int
) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.task_parse", "--child", str(dag_file), "--forks", str(forks)]
    if manifest:
        command += ["--manifest", str(manifest)]
    if project_files:
        command += ["--project-files", *(str(folder) for folder in project_files)]
    return run_child_result(command, env, RESULT_MARKER)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large-project", type=Path, help="reuse (or create) the generated project in this folder")
    parser.add_argument("--rounds", type=int, default=3, help="new parent processes per variant (interleaved)")
    parser.add_argument("--forks", type=int, default=5, help="task processes forked from each parent")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--manifest", help=argparse.SUPPRESS)
    parser.add_argument("--project-files", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()

    env = prepare_environment()
    if args.child:
        print(RESULT_MARKER + json.dumps(child(args.child, args.manifest, args.forks, args.project_files)), flush=True)
        return 0

    scratch = Path(tempfile.mkdtemp(prefix="mallard-bench-task-parse-"))
    project = generate_project(args.large_project or scratch / "large")
    ensure_manifest(project.dbt_project_dir)
    scenarios = {
        "demo": (PROJECT_ROOT / "dags" / "mallard_elt.py", DBT_PROJECT_DIR, SOURCES_DIR),
        "large": (project.mallard_dags_dir / "mallard_elt.py", project.dbt_project_dir, project.sources_dir),
    }
    variants: dict[str, tuple[Path, dict[str, str], Path | None, tuple[Path, Path] | None]] = {}
    for scenario, (dag_file, dbt_project_dir, sources_dir) in scenarios.items():
        manifest = dbt_project_dir / MANIFEST_RELATIVE_PATH
        for task, task_env in (
            ("model task", model_task_env(env, dbt_project_dir)),
            ("ingestion task", ingest_task_env(env, sources_dir)),
            ("publish task", task_process_env(env, "mallard_elt", "publish")),
            (
                "no task (whole DAG)",
                {key: value for key, value in env.items() if key not in PARSING_CONTEXT_ENV.values()},
            ),
        ):
            variants[f"{scenario}/{task}/files read"] = (dag_file, task_env, None, None)
            variants[f"{scenario}/{task}/manifest preloaded"] = (dag_file, task_env, manifest, None)
            files = (sources_dir, dbt_project_dir)
            variants[f"{scenario}/{task}/manifest and YAML preloaded"] = (dag_file, task_env, manifest, files)

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for index in range(args.rounds):
        for name, (dag_file, task_env, manifest, files) in variants.items():
            print(f"  round {index + 1}/{args.rounds}: {name}", flush=True)
            runs[name].append(_run_child(dag_file, task_env, manifest, files, args.forks))

    figures: dict[str, Any] = {}
    rows = []
    for name, name_runs in runs.items():
        seconds = [value for run in name_runs for value in run["seconds"]]
        scenario, task, how = name.split("/")
        figures[name] = {
            "task_id": variants[name][1].get(PARSING_CONTEXT_ENV["task_id"]),
            "median_seconds": round(median(seconds), 4),
            "range_seconds": [round(min(seconds), 4), round(max(seconds), 4)],
            "seconds": seconds,
            "manifest_preloaded": all(run["manifest_preloaded"] for run in name_runs),
        }
        baseline = figures.get(f"{scenario}/{task}/files read", figures[name])
        rows.append(
            (
                scenario,
                task,
                how,
                f"{figures[name]['median_seconds']:.3f}",
                "{:.3f}-{:.3f}".format(*figures[name]["range_seconds"]),
                ratio(figures[name]["median_seconds"], baseline["median_seconds"]),
            )
        )
    print_rows(
        f"A task process's DAG-file parse, forked from a preloaded parent ({args.rounds} x {args.forks} forks, median)",
        ("project", "task", "preloaded", "seconds", "range", "ratio to files read"),
        rows,
    )
    settings = {"rounds": args.rounds, "forks": args.forks, "large_project": str(project.dbt_project_dir.parent)}
    result = write_result("task_parse", {"settings": settings, "variants": figures})
    report_written(result, scratch, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
