"""DAG parse time: Mallard's DAG file vs Cosmos alone rendering the same dbt manifest.

    python bench/parse.py [--cold-runs 3] [--warm-runs 3] [--large-project DIR] [--profile]

Two projects:

- demo: `dags/` of this repository (3 sources, the 9-model demo dbt project);
- large: a generated project, 50 source configs and 1,000 dbt models with 2,050 tests
  (bench/generate_large_project.py), written to a temporary folder unless --large-project names
  one to reuse.

Each is parsed with a fresh `DagBag(dag_folder=...)`:

- cold: the first DagBag in a new Python process, after `import airflow` (not counted; reported);
- warm: further DagBags in that same process (modules already imported).

Baseline, measured the same way in the same run: a DAG file holding only a Cosmos DbtTaskGroup
with LoadMode.DBT_MANIFEST over the same manifest and the same Cosmos settings as Mallard
(`cosmos_only`). Mallard works around Cosmos reading the same signatures for every operator
(include/mallard/cosmos_signatures.py), so a second baseline (`cosmos_remembered`) is Cosmos alone
with that workaround: the ratio to it is what Mallard itself adds.

A task process parses the same DAG file to find its one task; Airflow's task runner names that task
in `get_parsing_context()`, and a model task's process then renders only that model and its parents
(include/mallard/dbt_group.py). `mallard_model_task` is Mallard's DAG file parsed that way, for the
run task of a mart model (env vars set as the task runner sets them); the ratio to `mallard` (the
whole DAG, which every task process parsed before) is printed as "a model task's own parse".
`mallard_ingest_task` is the same for the first source's extract task, whose process renders no
dbt project (include/mallard/factory.py).
Before the rounds, every tree's `include/` and `dags/` and the DAG folders are compiled to
bytecode, as they are in a deployment after its first parse (Airflow, Cosmos and dbt come compiled
from pip). Targets: demo cold parse <= 1 s, large cold parse <= 3 s. Results: bench/results/parse.json.
"""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    PROJECT_ROOT,
    RESULTS_DIR,
    check_target,
    median,
    prepare_environment,
    print_rows,
    ratio,
    report_written,
    stopwatch,
    write_result,
)
from bench.generate_large_project import build_manifest, generate_project, write_cosmos_dag
from include.mallard.dbt_project import model_fqns
from include.mallard.paths import DBT_PROJECT_DIR, SOURCES_DIR

DEMO_TARGET_SECONDS = 1.0
LARGE_TARGET_SECONDS = 3.0
RESULT_MARKER = "BENCH_RESULT "
# What Airflow's task runner sets around its parse of the DAG file (airflow.sdk get_parsing_context).
PARSING_CONTEXT_ENV = {"dag_id": "_AIRFLOW_PARSING_CONTEXT_DAG_ID", "task_id": "_AIRFLOW_PARSING_CONTEXT_TASK_ID"}


@dataclass(frozen=True)
class Variant:
    """One DAG folder to parse, and the project tree whose code parses it."""

    folder: Path
    env: dict[str, str]
    cwd: Path = PROJECT_ROOT


# --- child process: one cold parse, then warm ones ---------------------------------------------


def _new_dagbag(dag_folder: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    # `include_examples` is gone from DagBag in Airflow 3.3 (examples follow [core] load_examples);
    # pass it only where it still exists.
    if "include_examples" in inspect.signature(DagBag).parameters:
        return DagBag(dag_folder=dag_folder, include_examples=False)
    return DagBag(dag_folder=dag_folder)


def child_parse(dag_folder: str, warm_runs: int, profile_to: str | None) -> dict[str, Any]:
    """Run inside the new process: time `import airflow`, one cold DagBag, then `warm_runs` warm ones.

    With `profile_to`, one extra warm parse runs under cProfile and is written there (not timed).
    """
    with stopwatch() as import_seconds:
        import airflow  # noqa: F401
        from airflow.dag_processing.dagbag import DagBag  # noqa: F401
    with stopwatch() as cold_seconds:
        bag = _new_dagbag(dag_folder)
    warm = []
    for _ in range(warm_runs):
        with stopwatch() as warm_seconds:
            _new_dagbag(dag_folder)
        warm.append(round(warm_seconds(), 4))
    if profile_to:
        # One more warm parse under cProfile, kept out of the figures (the profiler slows it down).
        import cProfile

        profiler = cProfile.Profile()
        profiler.runcall(_new_dagbag, dag_folder)
        profiler.dump_stats(profile_to)
    return {
        "import_airflow_seconds": round(import_seconds(), 4),
        "cold_seconds": round(cold_seconds(), 4),
        "warm_seconds": warm,
        "tasks": {dag_id: len(dag.tasks) for dag_id, dag in sorted(bag.dags.items())},
        "import_errors": {str(path): error[:2000] for path, error in bag.import_errors.items()},
    }


# --- parent: run the children, compare ----------------------------------------------------------


def _parse_once(dag_folder: Path, *, warm_runs: int, env: dict[str, str], cwd: Path, profile_to: Path | None) -> dict:
    command = [sys.executable, "-m", "bench.parse", "--child", str(dag_folder), "--warm-runs", str(warm_runs)]
    if profile_to:
        command += ["--profile-to", str(profile_to)]
    completed = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"parsing {dag_folder} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    run = json.loads(lines[-1].removeprefix(RESULT_MARKER))
    if run["import_errors"]:
        raise RuntimeError(f"import errors in {dag_folder}: {run['import_errors']}")
    return run


def _summary(dag_folder: Path, runs: list[dict[str, Any]]) -> dict[str, Any]:
    warm_all = [seconds for run in runs for seconds in run["warm_seconds"]]
    cold_all = [run["cold_seconds"] for run in runs]
    return {
        "dag_folder": str(dag_folder),
        "tasks": runs[0]["tasks"],
        "import_airflow_seconds": round(median([run["import_airflow_seconds"] for run in runs]), 3),
        "cold_seconds": round(median(cold_all), 3),
        "cold_seconds_all": cold_all,
        "cold_spread_seconds": [min(cold_all), max(cold_all)],
        "warm_seconds": round(median(warm_all), 3) if warm_all else None,
        "warm_seconds_all": warm_all,
    }


def parse_interleaved(
    variants: dict[str, Variant], *, cold_runs: int, warm_runs: int, profile_dir: Path | None
) -> dict:
    """`cold_runs` rounds; each round parses every variant once in a new process, in turn.

    Interleaving puts every variant under the same machine load, so drift (another process, a
    warming disk cache) cannot decide a ratio, as it could when one variant ran all its processes first.
    """
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for index in range(cold_runs):
        for name, variant in variants.items():
            last = index == cold_runs - 1
            profile_to = profile_dir / f"{name.replace('/', '_')}.prof" if profile_dir and last else None
            print(f"  round {index + 1}/{cold_runs}: {name}", flush=True)
            runs[name].append(
                _parse_once(
                    variant.folder, warm_runs=warm_runs, env=variant.env, cwd=variant.cwd, profile_to=profile_to
                )
            )
    return {name: _summary(variants[name].folder, name_runs) for name, name_runs in runs.items()}


def _demo_manifest_is_fresh() -> None:
    from include.mallard.dbt_project import DbtProjectError, check_manifest_is_fresh
    from include.mallard.paths import DBT_PROJECT_DIR

    try:
        check_manifest_is_fresh(DBT_PROJECT_DIR)
    except DbtProjectError as error:
        raise SystemExit(f"{error}\n(bench/parse.py never rebuilds the demo manifest itself.)") from error


def ensure_manifest(dbt_project_dir: Path) -> float | None:
    """Build the generated project's manifest unless a fresh one is there; the seconds `dbt parse` took.

    A manifest recorded by an older Mallard, without the models' fqns, is built again.
    """
    from include.mallard.dbt_project import MODEL_FQNS_RELATIVE_PATH, DbtProjectError, check_manifest_is_fresh

    try:
        check_manifest_is_fresh(dbt_project_dir)
    except DbtProjectError:
        return build_manifest(dbt_project_dir)
    return None if (dbt_project_dir / MODEL_FQNS_RELATIVE_PATH).is_file() else build_manifest(dbt_project_dir)


# The lines of a parse profile that tell Mallard's own work from Cosmos's: the factory and config
# loading, task dependencies (`>>`, in Airflow's mixins) and Cosmos's converter and graph builder.
PROFILE_FOCUS = r"include/mallard|_internal/mixins.py|cosmos/converter.py|cosmos/airflow/graph.py"


def model_task_env(env: dict[str, str], dbt_project_dir: Path, dag_id: str = "mallard_elt") -> dict[str, str]:
    """`env` as Airflow's task runner sets it while it parses the DAG file for a mart model's run task."""
    fqns = model_fqns(dbt_project_dir)
    model = next((name for name in sorted(fqns) if ".marts." in fqns[name]), min(fqns))
    return task_process_env(env, dag_id, f"dbt.{model}.run")


def ingest_task_env(env: dict[str, str], sources_dir: Path, dag_id: str = "mallard_elt") -> dict[str, str]:
    """`env` as Airflow's task runner sets it while it parses the DAG file for the first source's extract task."""
    source = min(path.stem for path in sources_dir.glob("*.yml"))
    return task_process_env(env, dag_id, f"ingest_{source}.extract")


def task_process_env(env: dict[str, str], dag_id: str, task_id: str) -> dict[str, str]:
    """`env` with the parsing context Airflow's task runner sets while it parses the DAG file for `task_id`."""
    return {**env, PARSING_CONTEXT_ENV["dag_id"]: dag_id, PARSING_CONTEXT_ENV["task_id"]: task_id}


def _print_profile(path: Path, label: str, top: int = 20) -> list[str]:
    import io
    import pstats

    stream = io.StringIO()
    pstats.Stats(str(path), stream=stream).sort_stats("cumulative").print_stats(PROFILE_FOCUS, top)
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    table = lines[next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")) :]
    print(f"\nProfile of one warm parse, {label} (cProfile inflates the times; top {top} by cumulative time):")
    print("\n".join(table))
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold-runs", type=int, default=3, help="new processes per DAG folder (median reported)")
    parser.add_argument("--warm-runs", type=int, default=3, help="warm parses in each of those processes")
    parser.add_argument("--large-project", type=Path, help="reuse (or create) the generated project in this folder")
    parser.add_argument("--sources", type=int, default=50)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="cProfile one warm parse of each large DAG folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders (printed)")
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="another checkout of Mallard (e.g. `git worktree add /tmp/base main`, with its manifest built): "
        "its code parses the demo and the large project too, interleaved with this tree's",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    args = parser.parse_args()

    env = prepare_environment()
    if args.child:
        print(RESULT_MARKER + json.dumps(child_parse(args.child, args.warm_runs, args.profile_to)), flush=True)
        return 0

    _demo_manifest_is_fresh()
    scratch = Path(tempfile.mkdtemp(prefix="mallard-bench-parse-"))
    demo_baseline = write_cosmos_dag(scratch / "demo_cosmos", PROJECT_ROOT / "include" / "dbt", "mallard")
    demo_remembered = write_cosmos_dag(
        scratch / "demo_cosmos_remembered", PROJECT_ROOT / "include" / "dbt", "mallard", remember_signatures=True
    )

    large_root = args.large_project or scratch / "large"
    project = generate_project(large_root, sources=args.sources, models=args.models)
    manifest_seconds = ensure_manifest(project.dbt_project_dir)
    print(f"large project: {project.sources} sources, {project.models} models, {project.tests} tests in {large_root}")
    if manifest_seconds is not None:
        print(f"  dbt parse of it (not part of any figure below): {manifest_seconds:.1f} s")

    variants = {
        "demo/mallard": Variant(PROJECT_ROOT / "dags", env),
        "demo/mallard_model_task": Variant(PROJECT_ROOT / "dags", model_task_env(env, DBT_PROJECT_DIR)),
        "demo/mallard_ingest_task": Variant(PROJECT_ROOT / "dags", ingest_task_env(env, SOURCES_DIR)),
        "demo/cosmos_only": Variant(demo_baseline, env),
        "demo/cosmos_remembered": Variant(demo_remembered, env),
        "large/mallard": Variant(project.mallard_dags_dir, env),
        "large/mallard_model_task": Variant(project.mallard_dags_dir, model_task_env(env, project.dbt_project_dir)),
        "large/mallard_ingest_task": Variant(project.mallard_dags_dir, ingest_task_env(env, project.sources_dir)),
        "large/cosmos_only": Variant(project.cosmos_dags_dir, env),
        "large/cosmos_remembered": Variant(project.cosmos_remembered_dags_dir, env),
    }
    if args.baseline_tree:
        tree = args.baseline_tree.resolve()
        tree_env = {**env, "PYTHONPATH": str(tree)}
        variants["demo/baseline_tree"] = Variant(tree / "dags", tree_env, tree)
        variants["large/baseline_tree"] = Variant(project.mallard_dags_dir, tree_env, tree)
    # Compile every tree first, as a deployment has it after one parse: Cosmos and Airflow come
    # compiled from pip, and where Python writes no bytecode (PYTHONDONTWRITEBYTECODE) each cold
    # parse compiled Mallard's ~40 modules again, on Mallard's side only.
    from scripts.airflow_stack import compile_project_code

    trees = [PROJECT_ROOT, *([args.baseline_tree.resolve()] if args.baseline_tree else [])]
    compile_project_code(
        [*(tree / name for tree in trees for name in ("include", "dags")), *(v.folder for v in variants.values())]
    )
    print(f"parsing {len(variants)} DAG folders, {args.cold_runs} interleaved rounds ...", flush=True)
    measured = parse_interleaved(
        variants, cold_runs=args.cold_runs, warm_runs=args.warm_runs, profile_dir=scratch if args.profile else None
    )

    rows = []
    comparison = {}
    for scenario in ("demo", "large"):
        ours, base = measured[f"{scenario}/mallard"], measured[f"{scenario}/cosmos_only"]
        like_for_like = measured[f"{scenario}/cosmos_remembered"]
        comparison[scenario] = {
            "cold_ratio_mallard_over_cosmos": ratio(ours["cold_seconds"], base["cold_seconds"]),
            "warm_ratio_mallard_over_cosmos": ratio(ours["warm_seconds"], base["warm_seconds"]),
            # Cosmos alone with Mallard's workaround of its signature reads: what Mallard itself adds.
            "cold_ratio_mallard_over_cosmos_remembered": ratio(ours["cold_seconds"], like_for_like["cold_seconds"]),
            "warm_ratio_mallard_over_cosmos_remembered": ratio(ours["warm_seconds"], like_for_like["warm_seconds"]),
            # A model task's process: its model and parents rendered, against the whole DAG it parsed before.
            "cold_ratio_model_task_over_whole_dag": ratio(
                measured[f"{scenario}/mallard_model_task"]["cold_seconds"], ours["cold_seconds"]
            ),
            # An ingestion task's process: no dbt project rendered.
            "cold_ratio_ingest_task_over_whole_dag": ratio(
                measured[f"{scenario}/mallard_ingest_task"]["cold_seconds"], ours["cold_seconds"]
            ),
        }
        others = [(name.split("/")[1], figures) for name, figures in measured.items() if name.startswith(scenario)]
        if f"{scenario}/baseline_tree" in measured:
            tree = measured[f"{scenario}/baseline_tree"]
            comparison[scenario]["cold_ratio_mallard_over_baseline_tree"] = ratio(
                ours["cold_seconds"], tree["cold_seconds"]
            )
        for variant, figures in others:
            rows.append(
                (
                    scenario,
                    variant,
                    sum(figures["tasks"].values()),
                    f"{figures['import_airflow_seconds']:.2f}",
                    f"{figures['cold_seconds']:.3f}",
                    f"{figures['warm_seconds']:.3f}",
                    ratio(figures["cold_seconds"], base["cold_seconds"]),
                    ratio(figures["warm_seconds"], base["warm_seconds"]),
                    f"{figures['cold_spread_seconds'][0]:.3f}-{figures['cold_spread_seconds'][1]:.3f}",
                )
            )
    header = (
        "project",
        "dag file",
        "tasks",
        "import airflow s",
        "cold s",
        "warm s",
        "cold ratio",
        "warm ratio",
        "cold range",
    )
    print_rows("DAG parse, median seconds (ratio = this row / Cosmos alone, interleaved)", header, rows)
    for scenario, ratios in comparison.items():
        print(
            f"{scenario}: Mallard / Cosmos alone with the same signature workaround: "
            f"cold {ratios['cold_ratio_mallard_over_cosmos_remembered']}, "
            f"warm {ratios['warm_ratio_mallard_over_cosmos_remembered']}"
        )
        print(
            f"{scenario}: a model task's own parse (its model and parents) / the whole DAG's, cold: "
            f"{ratios['cold_ratio_model_task_over_whole_dag']}"
        )
        print(
            f"{scenario}: an ingestion task's own parse (no dbt project) / the whole DAG's, cold: "
            f"{ratios['cold_ratio_ingest_task_over_whole_dag']}"
        )
    verdicts = [
        check_target(
            f"demo cold parse {measured['demo/mallard']['cold_seconds']:.3f} s <= {DEMO_TARGET_SECONDS} s",
            measured["demo/mallard"]["cold_seconds"] <= DEMO_TARGET_SECONDS,
        ),
        check_target(
            f"large cold parse {measured['large/mallard']['cold_seconds']:.3f} s <= {LARGE_TARGET_SECONDS} s",
            measured["large/mallard"]["cold_seconds"] <= LARGE_TARGET_SECONDS,
        ),
    ]
    profiles = {}
    if args.profile:
        for variant in ("mallard", "cosmos_only"):
            path = scratch / f"large_{variant}.prof"
            if not path.exists():
                continue
            kept = RESULTS_DIR / f"parse_large_{variant}.prof"
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            kept.write_bytes(path.read_bytes())
            profiles[variant] = {"file": str(kept), "top": _print_profile(path, f"large/{variant}")}
    result = write_result(
        "parse",
        {
            "settings": {"cold_runs": args.cold_runs, "warm_runs": args.warm_runs},
            "large_project": {
                "root": str(large_root),
                "sources": project.sources,
                "models": project.models,
                "staging_models": project.staging_models,
                "intermediate_models": project.intermediate_models,
                "mart_models": project.mart_models,
                "tests": project.tests,
                "dbt_parse_seconds": round(manifest_seconds, 1) if manifest_seconds is not None else "reused",
            },
            "measured": measured,
            "comparison": comparison,
            "targets": verdicts,
            "profiles": profiles,
        },
    )
    report_written(result, scratch, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
