"""The source configs and the dbt project may live outside include/: MALLARD_SOURCES_DIR, MALLARD_DBT_PROJECT_DIR."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from include.mallard.config.loader import load_sources
from include.mallard.config.project import ConfigError, read_source_files
from include.mallard.dbt_project import DbtProjectError, read_dbt_project
from include.mallard.factory import build_dags
from include.mallard.paths import DBT_PROJECT_DIR_ENV, INCLUDE_DIR, PROJECT_ROOT, SOURCES_DIR_ENV

# In a new interpreter: the folders are read from the env when include.mallard.paths is imported.
REPORT_PROJECT = """
import json
from include.mallard import paths
from include.mallard.factory import build_dags, preload_for_tasks
from include.mallard.parsed_files import kept_files

preload_for_tasks()
dag = build_dags()["mallard_elt"]
print(json.dumps({
    "sources_dir": str(paths.SOURCES_DIR),
    "dbt_project_dir": str(paths.DBT_PROJECT_DIR),
    "ingestion_groups": sorted(g for g in dag.task_group.children if g.startswith("ingest_")),
    "preloaded": [str(path) for path in kept_files()],
}))
"""


def _project_seen(env: dict[str, str]) -> dict:
    base = {key: value for key, value in os.environ.items() if key not in (SOURCES_DIR_ENV, DBT_PROJECT_DIR_ENV)}
    completed = subprocess.run(
        [sys.executable, "-c", REPORT_PROJECT],
        cwd=PROJECT_ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_without_the_env_vars_the_project_is_include(tmp_path: Path):
    seen = _project_seen({})
    assert seen["sources_dir"] == str(INCLUDE_DIR / "sources")
    assert seen["dbt_project_dir"] == str(INCLUDE_DIR / "dbt")
    assert seen["ingestion_groups"] == ["ingest_marketing", "ingest_shop", "ingest_stores"]


def test_the_dag_the_preload_and_the_dbt_project_follow_the_env_vars(tmp_path: Path):
    sources = tmp_path / "elsewhere" / "sources"
    sources.mkdir(parents=True)
    shutil.copy2(INCLUDE_DIR / "sources" / "shop.yml", sources / "shop.yml")
    # Relative to the project root, as a folder beside include/ would be named.
    dbt_relative = os.path.relpath(INCLUDE_DIR / "dbt", PROJECT_ROOT)

    seen = _project_seen({SOURCES_DIR_ENV: str(sources), DBT_PROJECT_DIR_ENV: dbt_relative})

    assert seen["sources_dir"] == str(sources)
    assert seen["dbt_project_dir"] == str(PROJECT_ROOT / dbt_relative)
    # Only the one source of that folder: the demo's other sources were not read.
    assert seen["ingestion_groups"] == ["ingest_shop"]
    # The scheduler's preload parsed what the tasks will parse: that folder's file, not include/sources.
    assert str(sources / "shop.yml") in seen["preloaded"]
    assert not any(path.startswith(str(INCLUDE_DIR / "sources")) for path in seen["preloaded"])
    assert str(PROJECT_ROOT / dbt_relative / "dbt_project.yml") in seen["preloaded"]


def test_a_missing_sources_folder_named_by_the_env_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    missing = tmp_path / "no_sources"
    monkeypatch.setenv(SOURCES_DIR_ENV, str(missing))
    with pytest.raises(ConfigError) as raised:
        read_source_files(missing)
    (problem,) = raised.value.problems
    assert problem.file == missing
    assert f"named by env {SOURCES_DIR_ENV}" in problem.message
    assert SOURCES_DIR_ENV in problem.fix

    # A folder the env does not name gets no mention of it.
    with pytest.raises(ConfigError) as raised:
        read_source_files(tmp_path / "other")
    assert SOURCES_DIR_ENV not in str(raised.value)


def test_a_missing_dbt_project_named_by_the_env_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(DBT_PROJECT_DIR_ENV, "no_such_dbt_project")  # relative to the project root
    with pytest.raises(DbtProjectError, match=f"named by env {DBT_PROJECT_DIR_ENV}"):
        read_dbt_project(PROJECT_ROOT / "no_such_dbt_project")
    with pytest.raises(DbtProjectError) as raised:
        read_dbt_project(tmp_path)
    assert DBT_PROJECT_DIR_ENV not in str(raised.value)


def test_a_sources_folder_without_source_files_stops_the_dag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Without this, the DAG had no ingestion and dbt rebuilt the marts from stale raw tables.
    empty = tmp_path / "sources"
    empty.mkdir()
    (empty / "README.md").write_text("not a source\n")
    (empty / "shop.yml.bak").write_text("name: shop\n")
    monkeypatch.setenv(SOURCES_DIR_ENV, str(empty))

    for read in (read_source_files, load_sources, lambda folder: build_dags(sources_dir=folder)):
        with pytest.raises(ConfigError) as raised:
            read(empty)
        (problem,) = raised.value.problems
        assert problem.file == empty
        assert problem.field == "(folder)"
        assert "holds no source file (*.yml or *.yaml)" in problem.message
        assert f"named by env {SOURCES_DIR_ENV}" in problem.message
        assert "mallard add source" in problem.fix and SOURCES_DIR_ENV in problem.fix

    (empty / "shop.yml").write_bytes((INCLUDE_DIR / "sources" / "shop.yml").read_bytes())
    assert [source.name for source in load_sources(empty)] == ["shop"]


def test_a_project_whose_sources_are_all_disabled_says_so(tmp_path: Path):
    # Every source `enabled: false` builds a DAG with no ingestion whose dbt run rebuilds the marts
    # from old raw tables. It may be meant (dbt alone), so validate, doctor and the DAG doc warn.
    from typer.testing import CliRunner

    from include.mallard.cli import app
    from include.mallard.first_hour.doctor import check_sources

    sources = tmp_path / "sources"
    shutil.copytree(INCLUDE_DIR / "sources", sources)
    names = sorted(path.stem for path in sources.glob("*.yml"))
    for path in sources.glob("*.yml"):
        path.write_text(path.read_text() + "\nenabled: false\n")

    def warnings() -> dict[str, str]:
        validated = CliRunner().invoke(app, ["validate", "--sources-dir", str(sources), "--no-check-references"])
        assert validated.exit_code == 0, validated.output
        doctor_detail = check_sources(sources)[0].detail
        dag = build_dags(sources_dir=sources)["mallard_elt"]
        return {
            "ingestion groups": " ".join(group for group in dag.task_group.children if group.startswith("ingest_")),
            "validate": "\n".join(line for line in validated.output.splitlines() if line.startswith("warn ")),
            "doctor": doctor_detail,
            "dag doc": dag.doc_md.partition("## No source loads in this DAG")[2],
        }

    found = warnings()
    assert found.pop("ingestion groups") == ""
    for where, text in found.items():
        assert f"every source in {sources} is disabled (`enabled: false`: {', '.join(names)})" in text, where
        assert "the ELT DAG loads nothing" in text and "set `enabled: true`" in text, where

    shop = sources / "shop.yml"
    shop.write_text(shop.read_text().replace("\nenabled: false\n", "\n"))
    found = warnings()
    assert found.pop("ingestion groups") == "ingest_shop"
    assert not any("is disabled" in text for text in found.values()), found
