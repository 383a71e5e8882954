"""What other processes hold, read from /proc (Linux): open files, listening ports, command lines."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Holder:
    """A process that has a file open."""

    pid: int
    command: str


def command_line(pid: int) -> str:
    """The process's command line, or its name when the command line is unreadable."""
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        if raw:
            return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return "?"


def start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot): tells a reused PID from the original."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = raw[raw.rindex(")") + 2 :].split()
    return None if fields[0] in "ZX" else int(fields[19])


def holders_of(path: Path) -> list[Holder]:
    """Every other process with `path` (or its DuckDB .wal) open."""
    wanted = {str(path.resolve()), str(path.resolve()) + ".wal"}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if str(fd.readlink()) in wanted:
                        found.append(Holder(int(entry.name), command_line(int(entry.name))))
                        break
    return found


def _listening_inodes() -> dict[int, int]:
    """inode -> port of every listening TCP socket in this network namespace."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A":  # TCP_LISTEN
                    sockets[int(cols[9])] = int(cols[1].rsplit(":", 1)[1], 16)
    return sockets


def listening_ports(pid: int) -> list[int]:
    """The TCP ports `pid` listens on."""
    listening = _listening_inodes()
    ports = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = str(fd.readlink())
                if target.startswith("socket:[") and (inode := int(target[8:-1])) in listening:
                    ports.add(listening[inode])
    return sorted(ports)
