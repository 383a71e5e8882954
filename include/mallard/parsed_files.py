"""Project files parsed once per content: the scheduler parses them, its task processes reuse the parse.

Every task process parses the DAG file, and with it reads the source configs, `dbt_project.yml`
and `profiles.yml`: ~12 ms of a demo model task's ~34 ms parse, and each source file more; with
them preloaded the parse takes 0.029 s (docs/benchmarks.md, DAG parse). LocalExecutor task
processes are forks of the scheduler (worker_preload.py), which parses them once before its
workers fork (`factory.preload_for_tasks`).

A parse is reused only for the same bytes: the file is read every time (reading is cheap, the
parse is not), so an edit is seen at once, however close to the last parse and whatever its
timestamps. A copy is returned (callers may change what they get), and a parse that raises is not
kept. In any other process the first parse of a file is kept the same way for its later reads.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
# Larger files are parsed every time (a source config is a few KB): their bytes are not kept.
MAX_KEPT_BYTES = 1024 * 1024
# (path, parser) -> (the bytes parsed, the parse).
_parsed: dict[tuple[str, str], tuple[bytes, Any]] = {}


def _content(path: Path) -> bytes | None:
    try:
        if path.stat().st_size > MAX_KEPT_BYTES:
            return None
        return path.read_bytes()
    except OSError:
        return None  # the parser reports it


def parsed(path: Path, parse: Callable[[Path], T]) -> T:
    """`parse(path)`, or a copy of its result for the same bytes of the file."""
    name = getattr(parse, "__qualname__", type(parse).__qualname__)  # a function, or a callable object
    key = (str(path), f"{parse.__module__}.{name}")
    content = _content(path)
    kept = _parsed.get(key)
    if content is not None and kept is not None and kept[0] == content:
        return copy.deepcopy(kept[1])
    value = parse(path)
    if content is not None and _content(path) == content:  # not changed while it was parsed
        _parsed[key] = (content, copy.deepcopy(value))
    return value


def kept_count() -> int:
    """How many parses are kept in this process."""
    return len(_parsed)


def kept_files() -> list[Path]:
    """The files whose parses are kept in this process, sorted."""
    return sorted({Path(path) for path, _ in _parsed})
