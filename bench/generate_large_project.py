"""Generate a large Mallard project for parse benchmarks: 50 source configs and a 1,000-model dbt project.

    python bench/generate_large_project.py [--out DIR] [--sources 50] [--models 1000]

Writes into DIR (default: a new temporary folder):

    sources/*.yml        source configs valid for Mallard's pydantic models (synthetic and files)
    data/<source>/       the (empty) folders the files sources point at
    dbt/                 a DuckDB dbt project: staging -> intermediate -> marts, each model with
                         unique + not_null tests and some relationships tests; target/manifest.json
                         is built with `dbt parse` (Mallard's `cli manifest`, which also records the
                         fingerprint that the DAG's freshness check reads)
    dags_mallard/        a DAG file that calls Mallard's factory on sources/ and dbt/
    dags_cosmos/         the baseline: a DAG file with only a Cosmos DbtTaskGroup over the same manifest

then parses dags_mallard/ once with a DagBag and prints what it found. Mallard's paths
(`include/mallard/paths.py`) have no env-var override, so the generated DAG file passes the
folders to `build_dags(sources_dir=..., dbt_project_dir=...)`, the factory's own parameters,
exactly like `dags/mallard_elt.py` does with the defaults. Nothing in the project is changed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import prepare_environment

SYNTHETIC_TABLES = ("customers", "orders", "payments")
# Shares of the models per layer, as in a typical dbt project.
STAGING_SHARE, INTERMEDIATE_SHARE = 0.4, 0.35
# One mart in this many also gets a relationships test (two parents: watched by both models' test tasks).
RELATIONSHIPS_EVERY = 5


@dataclass(frozen=True)
class LargeProject:
    """Where the generated pieces are, and how big they are."""

    root: Path
    sources_dir: Path
    dbt_project_dir: Path
    mallard_dags_dir: Path
    cosmos_dags_dir: Path
    cosmos_remembered_dags_dir: Path
    sources: int
    models: int
    staging_models: int
    intermediate_models: int
    mart_models: int
    tests: int

    @property
    def manifest(self) -> Path:
        return self.dbt_project_dir / "target" / "manifest.json"


# --- source configs -----------------------------------------------------------------------------


def _source_tables(sources: int, staging_models: int) -> dict[str, list[str]]:
    """Raw tables per source: one synthetic source in five (3 tables each), files sources share the rest."""
    names = [f"src_{index:02d}" for index in range(sources)]
    synthetic = [name for index, name in enumerate(names) if index % 5 == 0]
    files = [name for name in names if name not in synthetic]
    tables: dict[str, list[str]] = {name: list(SYNTHETIC_TABLES) for name in synthetic}
    remaining = max(staging_models - 3 * len(synthetic), len(files))
    for index, name in enumerate(files):
        count = remaining // len(files) + (1 if index < remaining % len(files) else 0)
        tables[name] = [f"export_{table:02d}" for table in range(count)]
    return dict(sorted(tables.items()))


def _write_if_changed(path: Path, text: str) -> None:
    """Write `text` unless the file holds it already: a reused project keeps its files' times, so the
    signature recorded with its manifest stays valid, as in a deployment whose files did not change
    (a rewritten file would make every parse hash all 2,000 files instead)."""
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _write_source_configs(root: Path, tables: dict[str, list[str]]) -> Path:
    sources_dir = root / "sources"
    sources_dir.mkdir(parents=True, exist_ok=True)
    for name, source_tables in tables.items():
        if source_tables == list(SYNTHETIC_TABLES):
            text = (
                f"kind: synthetic\ndescription: Generated synthetic shop {name}.\n"
                f"seed: {int(name[-2:])}\ncustomers: 100\norders_per_day: 10\n"
            )
        else:
            data_dir = root / "data" / name
            data_dir.mkdir(parents=True, exist_ok=True)
            lines = [f"kind: files\ndescription: Generated CSV exports {name}.\npath: {data_dir}\ntables:"]
            for index, table in enumerate(source_tables):
                lines.append(f"  - name: {table}\n    glob: '{table}_*.csv'\n    format: csv\n    primary_key: id")
                if index % 3 == 1:  # some incremental tables, as in real configs
                    lines.append("    cursor: updated_at")
            text = "\n".join(lines) + "\n"
        _write_if_changed(sources_dir / f"{name}.yml", text)
    return sources_dir


# --- dbt project --------------------------------------------------------------------------------

DBT_PROJECT_YML = """\
name: mallard_bench
version: "1.0.0"
profile: mallard_bench
config-version: 2
model-paths: ["models"]
target-path: target
models:
  mallard_bench:
    staging:
      +materialized: view
      +schema: staging
    intermediate:
      +materialized: view
      +schema: intermediate
    marts:
      +materialized: table
      +schema: marts
"""
PROFILES_YML = """\
mallard_bench:
  target: duckdb
  outputs:
    duckdb:
      type: duckdb
      path: "{{ env_var('MALLARD_WAREHOUSE_PATH', 'bench.duckdb') }}"
      threads: 1
"""


def _model_yml(name: str, description: str, relationship_to: str | None = None) -> str:
    tests = "          - unique\n          - not_null\n"
    if relationship_to:
        tests += f"          - relationships:\n              arguments:\n                to: ref('{relationship_to}')\n"
        tests += "                field: id\n"
    return (
        f"version: 2\nmodels:\n  - name: {name}\n    description: {description}\n"
        f"    columns:\n      - name: id\n        data_tests:\n{tests}"
    )


def _write_model(folder: Path, name: str, sql: str, yml: str) -> None:
    _write_if_changed(folder / f"{name}.sql", sql)
    _write_if_changed(folder / f"{name}.yml", yml)


def _write_dbt_project(root: Path, tables: dict[str, list[str]], models: int) -> tuple[Path, int, int, int, int]:
    dbt_dir = root / "dbt"
    for layer in ("staging", "intermediate", "marts"):
        (dbt_dir / "models" / layer).mkdir(parents=True, exist_ok=True)
    _write_if_changed(dbt_dir / "dbt_project.yml", DBT_PROJECT_YML)
    _write_if_changed(dbt_dir / "profiles.yml", PROFILES_YML)

    staging: list[str] = []
    for source, source_tables in tables.items():
        folder = dbt_dir / "models" / "staging" / source
        folder.mkdir(exist_ok=True)
        table_lines = "".join(f"      - name: {table}\n" for table in source_tables)
        sources_yml = f"version: 2\nsources:\n  - name: {source}\n    schema: raw_{source}\n    tables:\n{table_lines}"
        _write_if_changed(folder / f"_{source}__sources.yml", sources_yml)
        for table in source_tables:
            name = f"stg_{source}__{table}"
            sql = f"select id, updated_at, cast(id as varchar) as label\nfrom {{{{ source('{source}', '{table}') }}}}\n"
            _write_model(folder, name, sql, _model_yml(name, f"Staged {source}.{table}."))
            staging.append(name)

    intermediate_count = round(models * INTERMEDIATE_SHARE)
    mart_count = models - len(staging) - intermediate_count
    intermediate = []
    for index in range(intermediate_count):
        name = f"int_model_{index:04d}"
        left, right = staging[index % len(staging)], staging[(index * 7 + 1) % len(staging)]
        sql = (
            f"select l.id, l.updated_at, r.label\nfrom {{{{ ref('{left}') }}}} as l\n"
            f"left join {{{{ ref('{right}') }}}} as r on l.id = r.id\n"
        )
        _write_model(dbt_dir / "models" / "intermediate", name, sql, _model_yml(name, "Joined staging models."))
        intermediate.append(name)

    relationships = 0
    for index in range(mart_count):
        name = f"mart_model_{index:04d}"
        left, right = intermediate[index % len(intermediate)], intermediate[(index * 11 + 3) % len(intermediate)]
        sql = (
            f"select l.id, max(l.updated_at) as last_update, count(r.label) as labels\n"
            f"from {{{{ ref('{left}') }}}} as l\n"
            f"left join {{{{ ref('{right}') }}}} as r on l.id = r.id\ngroup by l.id\n"
        )
        relationship_to = left if index % RELATIONSHIPS_EVERY == 0 else None
        relationships += relationship_to is not None
        _write_model(dbt_dir / "models" / "marts", name, sql, _model_yml(name, "A mart.", relationship_to))
    tests = 2 * (len(staging) + intermediate_count + mart_count) + relationships
    return dbt_dir, len(staging), intermediate_count, mart_count, tests


def build_manifest(dbt_project_dir: Path, env: dict[str, str] | None = None) -> float:
    """Run Mallard's `cli manifest` (dbt parse + fingerprint) in a new process; return its seconds.

    `env`: the environment of the runs that follow (their warehouse path), so that dbt's partial
    parse state written here matches theirs.
    """
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "include.mallard.cli", "manifest", "--dbt-project-dir", str(dbt_project_dir)],
        check=True,
        cwd=dbt_project_dir,  # dbt writes logs/ into the working directory
        env=prepare_environment() if env is None else env,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


# --- DAG files ----------------------------------------------------------------------------------

MALLARD_DAG_FILE = '''\
"""Benchmark copy of dags/mallard_elt.py (an Airflow DAG file) over a generated project."""

from pathlib import Path

from include.mallard.factory import build_dags

globals().update(build_dags(sources_dir=Path({sources_dir!r}), dbt_project_dir=Path({dbt_project_dir!r})))
'''

# The baseline renders the same manifest with the Cosmos settings Mallard uses (include/mallard/
# dbt_group.py: same tasks, no dbt deps check) and nothing of Mallard: no source configs, no
# ingestion groups, no manifest freshness check, no templated operator arguments, no docs.
COSMOS_DAG_FILE = '''\
"""Baseline for bench/parse.py: an Airflow DAG with only a Cosmos DbtTaskGroup over a pre-built manifest."""

import datetime as dt
from pathlib import Path

from airflow.sdk import DAG
from cosmos import (
    DbtTaskGroup,
    ExecutionConfig,
    ExecutionMode,
    InvocationMode,
    LoadMode,
    ProfileConfig,
    ProjectConfig,
    RenderConfig,
    TestBehavior,
)

{setup}DBT_PROJECT_DIR = Path({dbt_project_dir!r})

with DAG(dag_id={dag_id!r}, schedule=None, start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)) as dag:
    DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(
            dbt_project_path=DBT_PROJECT_DIR,
            manifest_path=DBT_PROJECT_DIR / "target" / "manifest.json",
            install_dbt_deps=False,
        ),
        profile_config=ProfileConfig(
            profile_name={profile!r}, target_name="duckdb", profiles_yml_filepath=DBT_PROJECT_DIR / "profiles.yml"
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.WATCHER,
            invocation_mode=InvocationMode.DBT_RUNNER,
            setup_operator_args={{"retries": 0}},
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.AFTER_EACH,
            should_detach_multiple_parents_tests=False,
        ),
        operator_args={{"install_deps": False, "deferrable": False, "mode": "poke", "timeout": 300}},
    )
'''


def write_mallard_dag(folder: Path, sources_dir: Path, dbt_project_dir: Path) -> Path:
    """A DAG folder whose one file builds Mallard's DAG from `sources_dir` and `dbt_project_dir`."""
    folder.mkdir(parents=True, exist_ok=True)
    text = MALLARD_DAG_FILE.format(sources_dir=str(sources_dir), dbt_project_dir=str(dbt_project_dir))
    _write_if_changed(folder / "mallard_elt.py", text)
    return folder


# Inserted into the Cosmos-alone DAG file for the like-for-like baseline: the workaround Mallard
# applies to Cosmos's per-operator signature reads (include/mallard/cosmos_signatures.py).
REMEMBER_SIGNATURES = """from include.mallard.cosmos_signatures import remember_cosmos_signatures

remember_cosmos_signatures()

"""


def write_cosmos_dag(folder: Path, dbt_project_dir: Path, profile: str, *, remember_signatures: bool = False) -> Path:
    """A DAG folder whose one file renders `dbt_project_dir` with Cosmos alone.

    With `remember_signatures`, Cosmos alone gets the one workaround Mallard applies to Cosmos, so
    that the ratio to it counts only what Mallard adds."""
    folder.mkdir(parents=True, exist_ok=True)
    text = COSMOS_DAG_FILE.format(
        dbt_project_dir=str(dbt_project_dir),
        profile=profile,
        setup=REMEMBER_SIGNATURES if remember_signatures else "",
        dag_id="cosmos_remembered" if remember_signatures else "cosmos_only",
    )
    _write_if_changed(folder / "cosmos_only.py", text)
    return folder


# --- entry points -------------------------------------------------------------------------------


def generate_project(root: Path, *, sources: int = 50, models: int = 1000) -> LargeProject:
    """Write the sources, the dbt project (with its manifest) and both DAG folders under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    tables = _source_tables(sources, round(models * STAGING_SHARE))
    sources_dir = _write_source_configs(root, tables)
    dbt_dir, staging, intermediate, marts, tests = _write_dbt_project(root, tables, models)
    return LargeProject(
        root=root,
        sources_dir=sources_dir,
        dbt_project_dir=dbt_dir,
        mallard_dags_dir=write_mallard_dag(root / "dags_mallard", sources_dir, dbt_dir),
        cosmos_dags_dir=write_cosmos_dag(root / "dags_cosmos", dbt_dir, "mallard_bench"),
        cosmos_remembered_dags_dir=write_cosmos_dag(
            root / "dags_cosmos_remembered", dbt_dir, "mallard_bench", remember_signatures=True
        ),
        sources=sources,
        models=staging + intermediate + marts,
        staging_models=staging,
        intermediate_models=intermediate,
        mart_models=marts,
        tests=tests,
    )


def describe_dagbag(dag_folder: Path) -> dict[str, object]:
    """Parse `dag_folder` once; the DAGs, their task counts and any import errors."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dag_folder))
    return {
        "dags": {dag_id: len(dag.tasks) for dag_id, dag in sorted(bag.dags.items())},
        "import_errors": bag.import_errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="folder to write into (default: a new temporary folder)")
    parser.add_argument("--sources", type=int, default=50)
    parser.add_argument("--models", type=int, default=1000)
    args = parser.parse_args()
    prepare_environment()
    root = args.out or Path(tempfile.mkdtemp(prefix="mallard-large-project-"))
    project = generate_project(root, sources=args.sources, models=args.models)
    print(f"generated {project.sources} sources, {project.models} models, {project.tests} tests in {root}")
    print(f"dbt parse (cli manifest): {build_manifest(project.dbt_project_dir):.1f} s")
    for folder in (project.mallard_dags_dir, project.cosmos_dags_dir):
        found = describe_dagbag(folder)
        print(f"{folder.relative_to(root)}: {json.dumps(found)}")
        if found["import_errors"]:
            return 1
    print(json.dumps({key: str(value) for key, value in asdict(project).items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
