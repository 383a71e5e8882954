"""include/mallard/cosmos_manifest.py: a task process takes the manifest the scheduler parsed, once, unchanged.

That the LocalExecutor's task processes really take it is tests/e2e/test_real_scheduler.py's.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from cosmos.dbt.graph import DbtGraph

from include.mallard import cosmos_manifest
from include.mallard.cosmos_manifest import preload_manifest, take_preloaded, take_preloaded_manifests
from include.mallard.dbt_project import manifest_path
from include.mallard.factory import build_elt_dag
from include.mallard.paths import DBT_PROJECT_DIR
from include.mallard.worker_preload import preload_project_manifest
from tests.task_description import described


@pytest.fixture(autouse=True)
def cosmos_reader_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test patches Cosmos's reader and the preloaded entries; both are put back afterwards."""
    monkeypatch.setattr(DbtGraph, "_load_manifest_from_file", DbtGraph._load_manifest_from_file)
    monkeypatch.setattr(cosmos_manifest, "_preloaded", {})


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    copy = tmp_path / "manifest.json"
    shutil.copyfile(manifest_path(DBT_PROJECT_DIR), copy)
    return copy


def test_cosmos_renders_the_same_dag_from_the_preloaded_parse_without_reading_the_file(monkeypatch):
    whole = build_elt_dag("preloaded_manifest")

    def must_not_read(self: DbtGraph, path: object) -> dict:
        raise AssertionError(f"Cosmos read {path}")

    monkeypatch.setattr(DbtGraph, "_load_manifest_from_file", must_not_read)
    assert preload_project_manifest()
    taken = build_elt_dag("preloaded_manifest")
    assert sorted(taken.task_dict) == sorted(whole.task_dict)
    for task_id, task in whole.task_dict.items():
        assert described(taken.task_dict[task_id]) == described(task), task_id
        assert taken.task_dict[task_id].upstream_task_ids == task.upstream_task_ids, task_id
    # Taken once: a second parse in the same process reads the file again.
    with pytest.raises(AssertionError, match="Cosmos read"):
        build_elt_dag("preloaded_manifest")


def test_a_preloaded_manifest_is_taken_once(manifest):
    assert preload_manifest(manifest)
    parsed = take_preloaded(manifest)
    assert parsed is not None and "nodes" in parsed
    assert take_preloaded(manifest) is None


@pytest.mark.parametrize(
    "change",
    [
        lambda path: os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000)),
        lambda path: path.write_text(path.read_text()),  # rewritten as it was
        lambda path: path.unlink(),
    ],
    ids=["touched", "rewritten", "deleted"],
)
def test_a_manifest_changed_since_it_was_preloaded_is_read_again(manifest, change):
    assert preload_manifest(manifest)
    change(manifest)
    assert take_preloaded(manifest) is None


def test_only_a_local_path_that_was_preloaded_is_taken(manifest, tmp_path):
    assert preload_manifest(manifest)

    class RemotePath(SimpleNamespace):
        """An object storage path whose text is the local file's path."""

        def __str__(self) -> str:
            return str(manifest)

    assert take_preloaded(RemotePath(protocol="s3")) is None
    assert take_preloaded(tmp_path / "other.json") is None
    assert take_preloaded(manifest) is not None


@pytest.mark.parametrize("text", [None, "{not json", "[1, 2]"], ids=["missing", "invalid", "not an object"])
def test_a_manifest_that_does_not_parse_is_not_preloaded(tmp_path, text):
    path = tmp_path / "manifest.json"
    if text is not None:
        path.write_text(text)
    assert not preload_manifest(path)
    assert take_preloaded(path) is None


def test_the_reader_is_wrapped_once():
    assert take_preloaded_manifests() and take_preloaded_manifests()
    wrapped = DbtGraph._load_manifest_from_file
    assert getattr(wrapped, "takes_preloaded", False)
    take_preloaded_manifests()
    assert DbtGraph._load_manifest_from_file is wrapped
