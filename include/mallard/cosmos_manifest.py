"""Cosmos parses the dbt manifest in every task process; the scheduler parses it once for them.

Each task process parses the DAG file to find its task, and Cosmos reads and parses
`target/manifest.json` there (`DbtGraph._load_manifest_from_file`, Cosmos 1.15): at 1,000 models
an 8 MB file, 30% of a model task's parse (docs/benchmarks.md). LocalExecutor task processes are
forks of the scheduler (worker_preload.py), so the scheduler parses the project's manifest once,
before its workers fork, and a task process takes that copy instead of reading the file.

It is taken only while the file is the one that was parsed (its mtime, ctime, size and inode), and
only once per process: Cosmos keeps parts of the dict in its nodes, so any later parse in the same
process reads the file, as without this module. Nothing changes in a process that did not preload
(the DAG processor, `airflow dags test`, tests). The upstream fix: Cosmos caching the parsed
manifest per file state itself, then this module can go.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TAKEN_MESSAGE = "Mallard: the dbt manifest %s, unchanged since the scheduler parsed it, was not read again"

FileState = tuple[int, int, int, int]
# Manifest path -> (its file state when parsed, the parsed manifest); each entry is taken once.
_preloaded: dict[str, tuple[FileState, dict[str, Any]]] = {}


def file_state(path: Path) -> FileState | None:
    """What changes when a file is edited, replaced or touched; None when it is gone."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino


def preload_manifest(manifest: Path) -> bool:
    """Parse `manifest` for the task processes this process forks later, and let Cosmos take it; True if parsed."""
    state = file_state(manifest)
    if state is None:
        return False
    try:
        parsed = json.loads(manifest.read_bytes())
    except (OSError, ValueError):
        log.warning("Mallard: %s was not preloaded; each task parses it", manifest, exc_info=True)
        return False
    if not isinstance(parsed, dict) or not take_preloaded_manifests():
        return False
    _preloaded[str(manifest)] = (state, parsed)
    return True


def take_preloaded(manifest_path: Any) -> dict[str, Any] | None:
    """The preloaded parse of this local manifest path, once, if the file is unchanged since; else None."""
    if getattr(manifest_path, "protocol", "") not in ("", "file"):
        return None
    entry = _preloaded.pop(str(manifest_path), None)
    if entry is None:
        return None
    state, parsed = entry
    if file_state(Path(str(manifest_path))) != state:
        return None
    log.info(TAKEN_MESSAGE, manifest_path)
    return parsed


def take_preloaded_manifests() -> bool:
    """Make Cosmos's manifest reader take a preloaded parse first; True when it does (idempotent).

    Left alone (False) when Cosmos no longer has that reader, as a later Cosmos might not."""
    from cosmos.dbt.graph import DbtGraph

    read = getattr(DbtGraph, "_load_manifest_from_file", None)
    if read is None:
        return False
    if getattr(read, "takes_preloaded", False):
        return True

    def load_manifest(self: DbtGraph, manifest_path: Any) -> dict[str, Any]:
        preloaded = take_preloaded(manifest_path)
        return preloaded if preloaded is not None else read(self, manifest_path)

    load_manifest.takes_preloaded = True  # type: ignore[attr-defined]
    DbtGraph._load_manifest_from_file = load_manifest  # type: ignore[method-assign]
    return True
