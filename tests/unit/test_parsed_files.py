"""include/mallard/parsed_files.py: a file is parsed once per content, and every reader gets its own copy.

That the scheduler's parse reaches its task processes is tests/unit/test_worker_preload.py's.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from include.mallard import parsed_files
from include.mallard.parsed_files import MAX_KEPT_BYTES, parsed


class CountingParser:
    """Parses YAML and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, path: Path) -> object:
        self.calls += 1
        return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture
def source_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop.yml"
    path.write_text("kind: synthetic\nseed: 42\n", encoding="utf-8")
    return path


def test_an_unchanged_file_is_parsed_once_and_each_reader_gets_a_copy(source_file):
    parse = CountingParser()
    first = parsed(source_file, parse)
    first["seed"] = 7  # a caller changing what it got (validation sets defaults) ...
    second = parsed(source_file, parse)
    assert second == {"kind": "synthetic", "seed": 42}  # ... changes nobody else's
    assert parse.calls == 1


@pytest.mark.parametrize("edit", ["rewritten, same size and timestamps", "replaced"])
def test_a_changed_file_is_parsed_again(source_file, edit):
    parse = CountingParser()
    assert parsed(source_file, parse)["seed"] == 42
    if edit == "rewritten, same size and timestamps":  # as two writes within one tick of a coarse clock
        stat = source_file.stat()
        source_file.write_text("kind: synthetic\nseed: 43\n", encoding="utf-8")
        os.utime(source_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    else:
        replacement = source_file.with_name("new.yml")
        replacement.write_text("kind: synthetic\nseed: 44\n", encoding="utf-8")
        replacement.replace(source_file)
    assert parsed(source_file, parse)["seed"] == (43 if edit.startswith("rewritten") else 44)
    assert parse.calls == 2


def test_a_touched_file_with_the_same_bytes_is_not_parsed_again(source_file):
    parse = CountingParser()
    parsed(source_file, parse)
    source_file.write_text(source_file.read_text(encoding="utf-8"), encoding="utf-8")
    assert parsed(source_file, parse) == {"kind": "synthetic", "seed": 42}
    assert parse.calls == 1


def test_a_large_file_is_parsed_every_time(source_file):
    parse = CountingParser()
    source_file.write_text("kind: synthetic\n" + "#" * MAX_KEPT_BYTES + "\n", encoding="utf-8")
    for _ in range(2):
        assert parsed(source_file, parse) == {"kind": "synthetic"}
    assert parse.calls == 2


def test_a_parse_that_fails_is_not_kept(source_file):
    parse = CountingParser()
    source_file.write_text("kind: [unclosed\n", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(yaml.YAMLError):
            parsed(source_file, parse)
    assert parse.calls == 2
    source_file.write_text("kind: synthetic\n", encoding="utf-8")
    assert parsed(source_file, parse) == {"kind": "synthetic"}


def test_two_parsers_of_one_file_do_not_share_a_parse(source_file):
    def as_text(path: Path) -> str:
        return path.read_text(encoding="utf-8")

    assert parsed(source_file, CountingParser())["kind"] == "synthetic"
    assert parsed(source_file, as_text).startswith("kind: synthetic")


def test_a_forked_process_reads_the_parents_parse_without_parsing(source_file):
    """What the scheduler's preload relies on: its task processes are forks of it."""
    parse = CountingParser()
    parsed(source_file, parse)
    kept = parsed_files.kept_count()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read)
        value = parsed(source_file, parse)
        os.write(write, f"{parse.calls} {value['seed']} {parsed_files.kept_count()}".encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        calls, seed, child_kept = answer.read().split()
    os.waitpid(pid, 0)
    assert (int(calls), int(seed), int(child_kept)) == (1, 42, kept)
