"""The files of a dbt project that `dbt parse` reads, listed cheaply enough for every DAG parse.

`dbt_project` hashes them to tell whether the pre-built manifest is still the project's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# What `dbt parse` reads: a change to any of these makes the manifest stale.
_PROJECT_FILE_SUFFIXES = {".sql", ".yml", ".yaml", ".csv", ".md", ".py"}
_SKIPPED_FOLDERS = {"target", "logs", "dbt_packages"}
# dbt writes its anonymous user id here when run without DBT_SEND_ANONYMOUS_USAGE_STATS=false (a
# `dbt build` by hand); it is not part of the project, and it made the manifest look stale.
_SKIPPED_FILES = {".user.yml"}


def _suffix(name: str) -> str:
    return os.path.splitext(name)[1]  # noqa: PTH122 (a name from os.scandir; a Path costs more)


@dataclass(frozen=True)
class ProjectFile:
    relative: str  # to the walked root, '/'-separated, as `Path.relative_to` prints it
    path: str
    size: int
    mtime_ns: int


def project_files(root: Path) -> list[ProjectFile]:
    """The files `dbt parse` reads under `root`, in path order, each stat-ed once.

    Plain `os.scandir` strings, not Path objects: at 1,000 models this walk runs on every DAG parse,
    and Path construction, `is_file` and `stat` doubled its cost. Symlinked folders are not
    entered (as `os.walk` does not); a symlinked file counts with its target's size and time.
    """
    found: list[ProjectFile] = []
    pending = [(str(root), "")]
    while pending:
        folder, prefix = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                relative = prefix + entry.name
                if entry.is_dir():
                    # Never descend into target/, logs/, dbt_packages/: target/ alone holds thousands of files.
                    if entry.name not in _SKIPPED_FOLDERS and not entry.is_symlink():
                        pending.append((entry.path, relative + "/"))
                elif (
                    _suffix(entry.name) in _PROJECT_FILE_SUFFIXES
                    and entry.name not in _SKIPPED_FILES
                    and entry.is_file()
                ):
                    stat = entry.stat()
                    found.append(ProjectFile(relative, entry.path, stat.st_size, stat.st_mtime_ns))
    # Sorted by path parts, as Path objects sort: the recorded fingerprints stay valid.
    return sorted(found, key=lambda file: file.relative.split("/"))
