"""include/mallard/dbt_docs.py: the manifest a run's `dbt build` keeps for its docs task, and when it is used."""

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
