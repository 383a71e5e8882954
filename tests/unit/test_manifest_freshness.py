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


def test_only_the_files_dbt_parse_reads_count(project):
    """Build output, logs, installed packages, other suffixes and symlinked folders do not make it stale."""
    (project / "target" / "run_results.json").write_text("{}")
    (project / "logs").mkdir()
    (project / "logs" / "dbt.log").write_text("log")
    (project / "dbt_packages" / "pkg" / "models").mkdir(parents=True)
    (project / "dbt_packages" / "pkg" / "models" / "m.sql").write_text("select 1")
    (project / "models" / "notes.txt").write_text("not read by dbt")
    (project / ".user.yml").write_text("id: 5d0b4d8e\n")  # dbt's user id, written by a `dbt build` by hand
    elsewhere = project.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.sql").write_text("select 1")
    (project / "models" / "linked").symlink_to(elsewhere, target_is_directory=True)
    assert check_manifest_is_fresh(project)


def test_a_symlinked_file_counts_with_its_target(project):
    target = project.parent / "shared.sql"
    target.write_text("select 1 as id\n")
    (project / "models" / "shared.sql").symlink_to(target)
    with pytest.raises(DbtProjectError, match="stale"):
        check_manifest_is_fresh(project)


def _fingerprint_as_pathlib_walks(root):
    """The fingerprint as it was computed before the walk used os.scandir: Path objects, Path order."""
    import hashlib

    paths = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if name not in {"target", "logs", "dbt_packages"}]
        paths += [path for name in names if (path := type(root)(folder, name)).suffix in {".sql", ".yml", ".md"}]
    digest = hashlib.sha256()
    for path in sorted(path for path in paths if path.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def test_fingerprints_recorded_by_earlier_versions_stay_valid(tmp_path):
    """Same files, same order: a project's recorded fingerprint still matches, no `make manifest` needed.

    Names where string order and path-part order differ ("a-b/..." against "a/...") decide the order.
    """
    write_project(tmp_path)
    for relative in ("models/a/b.sql", "models/a-b/x.sql", "models/a.sql", "models/a/z/y.yml", "models/A.md"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(f"-- {relative}\n")
    assert dbt_project.project_fingerprint(tmp_path) == _fingerprint_as_pathlib_walks(tmp_path)
