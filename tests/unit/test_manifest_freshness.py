"""The manifest is fresh while the project files are those it was built from; the parse reads them only when touched."""

from __future__ import annotations

import os
import time

import pytest

from include.mallard import dbt_project
from include.mallard.dbt_project import (
    FILES_SIGNATURE_RELATIVE_PATH,
    DbtProjectError,
    check_manifest_is_fresh,
    record_fingerprint,
)

AN_HOUR_AGO_NS = (time.time_ns() // 10**9 - 3600) * 10**9


def write_project(root):
    (root / "models").mkdir()
    (root / "dbt_project.yml").write_text("name: demo\nprofile: demo\n")
    (root / "models" / "orders.sql").write_text("select 1 as id\n")
    (root / "target").mkdir()
    (root / "target" / "manifest.json").write_text('{"nodes": {}, "sources": {}}')


@pytest.fixture
def project(tmp_path):
    """A dbt project's files as `dbt parse` reads them, written an hour ago, with a manifest recorded for them."""
    write_project(tmp_path)
    for path in (tmp_path / "dbt_project.yml", tmp_path / "models" / "orders.sql"):
        os.utime(path, ns=(AN_HOUR_AGO_NS, AN_HOUR_AGO_NS))
    record_fingerprint(tmp_path)
    assert (tmp_path / FILES_SIGNATURE_RELATIVE_PATH).is_file()
    return tmp_path


def test_untouched_files_are_not_read_again(project, monkeypatch):
    def read_every_file(_):
        raise AssertionError("the contents were hashed although no file was touched")

    monkeypatch.setattr(dbt_project, "project_fingerprint", read_every_file)
    assert check_manifest_is_fresh(project) == project / "target" / "manifest.json"


def test_a_touched_file_with_the_same_content_is_still_fresh(project):
    model = project / "models" / "orders.sql"
    os.utime(model, ns=(model.stat().st_atime_ns, model.stat().st_mtime_ns + 10**9))
    assert check_manifest_is_fresh(project)


def test_files_written_just_now_are_always_read(tmp_path, monkeypatch):
    """Within the clock's granularity an edit can keep a file's size and time: only its contents tell."""
    write_project(tmp_path)
    record_fingerprint(tmp_path)
    assert not (tmp_path / FILES_SIGNATURE_RELATIVE_PATH).exists()
    model = tmp_path / "models" / "orders.sql"
    mtime = model.stat().st_mtime_ns
    model.write_text("select 2 as id\n")  # same size
    os.utime(model, ns=(mtime, mtime))  # same time
    with pytest.raises(DbtProjectError, match="stale"):
        check_manifest_is_fresh(tmp_path)


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "models" / "orders.sql").write_text("select 2 as id\n"),
        lambda root: (root / "models" / "customers.sql").write_text("select 1 as id\n"),
        lambda root: (root / "models" / "orders.sql").unlink(),
    ],
    ids=["edited", "added", "removed"],
)
def test_a_changed_file_makes_the_manifest_stale(project, change):
    change(project)
    with pytest.raises(DbtProjectError, match="stale"):
        check_manifest_is_fresh(project)
