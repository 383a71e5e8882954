"""include/mallard/dbt_docs.py: a build's kept manifest, the docs the build publishes, and when each is used."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from include.mallard import dbt_docs
from include.mallard.dbt_docs import (
    BUILD_KEPT_SECONDS,
    BUILDS_DIR_NAME,
    keep_build_manifest,
    kept_build,
    publish_docs_of_build,
    take_published_build,
    uncompiled_nodes,
)

COMPILED = {"resource_type": "model", "compiled": True, "compiled_code": "select 1"}


@pytest.fixture
def docs(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(dbt_docs.DOCS_DIR_ENV, str(tmp_path / "docs"))
    return tmp_path / "docs"


def write_build(project_copy: Path, nodes: dict) -> None:
    (project_copy / "target").mkdir(parents=True)
    (project_copy / "target" / "manifest.json").write_text(json.dumps({"metadata": {}, "nodes": nodes}))


def test_a_build_kept_for_a_run_is_found_by_that_run_only(docs, tmp_path):
    write_build(tmp_path / "copy", {"model.p.a": COMPILED, "seed.p.s": {"resource_type": "seed"}})
    keep_build_manifest(tmp_path / "copy", "elt", "run 1")

    found = kept_build(docs, SimpleNamespace(dag_id="elt", run_id="run 1"))
    assert found is not None
    folder, manifest = found
    assert folder.parent == docs / BUILDS_DIR_NAME
    assert set(manifest["nodes"]) == {"model.p.a", "seed.p.s"}
    assert kept_build(docs, SimpleNamespace(dag_id="elt", run_id="run 2")) is None
    assert kept_build(docs, SimpleNamespace(dag_id="other", run_id="run 1")) is None
    assert kept_build(docs, None) is None


def test_a_build_that_left_a_node_uncompiled_is_not_used(docs, tmp_path):
    skipped = {**COMPILED, "compiled": False, "compiled_code": None}
    write_build(tmp_path / "copy", {"model.p.a": COMPILED, "model.p.b": skipped})
    keep_build_manifest(tmp_path / "copy", "elt", "run 1")
    assert uncompiled_nodes(json.loads((tmp_path / "copy" / "target" / "manifest.json").read_text())) == ["model.p.b"]
    assert kept_build(docs, SimpleNamespace(dag_id="elt", run_id="run 1")) is None


def test_a_build_without_a_manifest_keeps_nothing(docs, tmp_path):
    (tmp_path / "copy").mkdir()
    assert keep_build_manifest(tmp_path / "copy", "elt", "run 1") is None
    assert kept_build(docs, SimpleNamespace(dag_id="elt", run_id="run 1")) is None


def test_a_build_that_cannot_be_kept_is_logged_not_raised(docs, tmp_path, caplog):
    write_build(tmp_path / "copy", {"model.p.a": COMPILED})
    docs.write_text("a file where the docs folder should be")
    assert keep_build_manifest(tmp_path / "copy", "elt", "run 1") is None
    assert "will compile the project" in caplog.text


def test_a_new_build_removes_builds_kept_too_long_only(docs, tmp_path):
    write_build(tmp_path / "copy", {"model.p.a": COMPILED})
    old = keep_build_manifest(tmp_path / "copy", "elt", "old run")
    recent = keep_build_manifest(tmp_path / "copy", "elt", "recent run")
    long_ago = time.time() - BUILD_KEPT_SECONDS - 60
    os.utime(old, (long_ago, long_ago))

    new = keep_build_manifest(tmp_path / "copy", "elt", "new run")
    assert sorted(path.name for path in (docs / BUILDS_DIR_NAME).iterdir()) == sorted([recent.name, new.name])


def catalog_writer(project_copy: Path, calls: list[str]):
    """A stand-in for the build's `dbt docs generate --no-compile`: writes what dbt writes to the target."""

    def generate() -> None:
        calls.append("generate")
        target = project_copy / "target"
        (target / "catalog.json").write_text(json.dumps({"nodes": {"model.p.a": {"columns": {}}}, "sources": {}}))
        (target / "index.html").write_text("<html>dbt docs</html>")
        # dbt rewrites the manifest of the target without compiled SQL: the kept one is published.
        (target / "manifest.json").write_text(json.dumps({"metadata": {}, "nodes": {}}))

    return generate


def test_a_build_publishes_its_docs_and_its_runs_docs_task_takes_them_once(docs, tmp_path):
    write_build(tmp_path / "copy", {"model.p.a": COMPILED})
    folder = keep_build_manifest(tmp_path / "copy", "elt", "run 1")
    calls: list[str] = []

    assert publish_docs_of_build(folder, tmp_path / "copy", catalog_writer(tmp_path / "copy", calls))
    assert calls == ["generate"]
    assert json.loads((docs / "manifest.json").read_text())["nodes"] == {"model.p.a": COMPILED}
    assert set(json.loads((docs / "catalog.json").read_text())["nodes"]) == {"model.p.a"}
    assert (docs / "index.html").read_text() == "<html>dbt docs</html>"

    assert not take_published_build(docs, SimpleNamespace(dag_id="elt", run_id="run 2"))
    assert take_published_build(docs, SimpleNamespace(dag_id="elt", run_id="run 1"))
    assert not folder.exists()  # a cleared docs task of the same run compiles the project itself
    assert not take_published_build(docs, SimpleNamespace(dag_id="elt", run_id="run 1"))


def test_a_build_that_left_a_node_uncompiled_publishes_nothing(docs, tmp_path):
    skipped = {**COMPILED, "compiled": False, "compiled_code": None}
    write_build(tmp_path / "copy", {"model.p.a": COMPILED, "model.p.b": skipped})
    folder = keep_build_manifest(tmp_path / "copy", "elt", "run 1")
    calls: list[str] = []

    assert not publish_docs_of_build(folder, tmp_path / "copy", catalog_writer(tmp_path / "copy", calls))
    assert calls == [] and not (docs / "catalog.json").exists()
    assert not take_published_build(docs, SimpleNamespace(dag_id="elt", run_id="run 1"))


def test_a_failed_catalog_is_logged_and_left_to_the_docs_task(docs, tmp_path, caplog):
    write_build(tmp_path / "copy", {"model.p.a": COMPILED})
    folder = keep_build_manifest(tmp_path / "copy", "elt", "run 1")

    def failing() -> None:
        raise RuntimeError("dbt docs generate failed: the catalog query failed")

    assert not publish_docs_of_build(folder, tmp_path / "copy", failing)
    assert "publishing them from the build failed: dbt docs generate failed" in caplog.text
    assert not (docs / "manifest.json").exists()
    assert not take_published_build(docs, SimpleNamespace(dag_id="elt", run_id="run 1"))
    assert kept_build(docs, SimpleNamespace(dag_id="elt", run_id="run 1")) is not None  # the docs task's --no-compile
