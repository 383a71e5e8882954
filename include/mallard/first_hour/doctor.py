"""`mallard doctor`: check what a run needs, and say for each problem how to fix it."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from include.mallard.first_hour.procs import command_line, holders_of, listening_ports, start_time
from include.mallard.paths import PROJECT_ROOT

REQUIREMENT_FILES = ("requirements.txt", "requirements-local.txt")
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;#]+)")
STACK_STATE = Path("stack") / "stack.json"


@dataclass(frozen=True)
class Check:
    """One check's outcome: `fix` is empty when it passed."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def _passed(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def _failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, False, detail, fix)


def pinned_versions(root: Path) -> dict[str, str]:
    """name -> version of every `name==version` line in the requirement files."""
    pins = {}
    for file_name in REQUIREMENT_FILES:
        path = root / file_name
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if match := _PIN.match(line.strip()):
                    pins[match[1]] = match[3]
    return pins


def check_environment(root: Path) -> Check:
    name = "virtualenv and pinned versions"
    if sys.prefix == sys.base_prefix:
        return _failed(name, f"{sys.executable} is not a virtualenv", "run `make install`, then use .venv/bin/mallard")
    wrong = []
    for package, wanted in sorted(pinned_versions(root).items()):
        try:
            installed = metadata.version(package)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != wanted:
            wrong.append(f"{package} {installed} (pinned {wanted})")
    if wrong:
        return _failed(
            name, "; ".join(wrong), f"run `make install` (installs requirements-local.txt into {sys.prefix})"
        )
    return _passed(name, f"{sys.prefix}: {len(pinned_versions(root))} pins match")


def check_manifest(dbt_project_dir: Path) -> Check:
    from include.mallard.dbt_project import DbtProjectError, check_manifest_is_fresh

    try:
        return _passed("dbt manifest", f"{check_manifest_is_fresh(dbt_project_dir)} is fresh")
    except DbtProjectError as error:
        return _failed("dbt manifest", str(error), "run `mallard manifest` (or `make manifest`)")


def check_dbt_profile(dbt_project_dir: Path) -> Check:
    from include.mallard.dbt_project import PROFILE_TARGET, DbtProjectError, check_profile

    try:
        return _passed("dbt profile", f"{check_profile(dbt_project_dir)} has target {PROFILE_TARGET!r}")
    except DbtProjectError as error:
        return _failed("dbt profile", str(error), f"add a {PROFILE_TARGET!r} output to the profile (docs/design.md)")


def check_warehouse() -> Check:
    import duckdb

    from include.mallard.warehouse import WarehousePathError, describe_lock, is_lock_error, resolve_warehouse_path

    name = "warehouse"
    try:
        path = resolve_warehouse_path()
    except WarehousePathError as error:
        return _failed(name, error.problem, error.fix)
    if not path.exists():
        return _passed(name, f"{path} does not exist yet: the first run creates it")
    # A reader blocks writers too, so every other process with the file open is a problem.
    holders = holders_of(path)
    if holders:
        who = "; ".join(f"PID {h.pid}: {h.command}" for h in holders)
        return _failed(
            name,
            f"{path} is open in another process ({who}); a run cannot take DuckDB's write lock",
            f"close that program (DuckDB CLI, notebook, BI tool) or `kill {holders[0].pid}`",
        )
    try:
        duckdb.connect(str(path), read_only=True).close()
    except duckdb.Error as error:
        if is_lock_error(error):
            pid = (match := re.search(r"\(PID (\d+)\)", str(error))) and match[1]
            command = f": {command_line(int(pid))}" if pid else ""
            return _failed(
                name, describe_lock(error) + command, f"stop that process{f' (`kill {pid}`)' if pid else ''}"
            )
        return _failed(name, f"{path} cannot be opened: {error}", "move the broken file away; the next run rebuilds it")
    return _passed(name, f"{path} opens, and no other process holds it")


def _airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or PROJECT_ROOT / ".airflow")


def check_pool() -> Check:
    from include.mallard.warehouse import WAREHOUSE_POOL

    name = f"pool {WAREHOUSE_POOL}"
    if "postgres" in _stack_state()[1] and _live_stack()[1]:
        return _passed(
            name,
            "not checked: the running stack keeps its metadata in its own PostgreSQL "
            "(the UI's Admin > Pools shows the pool; `make stack` creates it from airflow_settings.yaml)",
        )
    database = _airflow_home() / "airflow.db"
    if not database.is_file():
        return _passed(name, f"no local stack metadata DB ({database}): the stack was never started")
    fix = f"`make stack` applies airflow_settings.yaml, or `airflow pools set {WAREHOUSE_POOL} 1 'DuckDB writers'`"
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            row = connection.execute("select slots from slot_pool where pool = ?", (WAREHOUSE_POOL,)).fetchone()
    except sqlite3.Error as error:
        return _failed(name, f"{database} cannot be read: {error}", "run `airflow db migrate` (`make demo` does)")
    if row is None and not _live_stack()[1]:
        # `airflow dags test` (mallard run, make demo) needs no pool; `make stack` creates it when it starts.
        return _passed(name, f"not in {database} yet: `make stack` creates it from airflow_settings.yaml")
    if row is None:
        return _failed(name, f"the running stack's {database} has no pool {WAREHOUSE_POOL}: writers collide", fix)
    if row[0] != 1:
        return _failed(name, f"{WAREHOUSE_POOL} has {row[0]} slots; DuckDB allows one writer at a time", fix)
    return _passed(name, f"{WAREHOUSE_POOL} has 1 slot in {database}")


def check_sources(sources_dir: Path) -> list[Check]:
    from include.mallard.config import ConfigError, load_sources
    from include.mallard.config.loader import all_disabled_warning
    from include.mallard.secrets import reference_issues

    try:
        sources = load_sources(sources_dir, include_disabled=True)
    except ConfigError as error:
        return [_failed("source configs", str(error), "fix the fields named above (docs/sources.md)")]
    detail = f"{len(sources)} in {sources_dir} validate"
    if warning := all_disabled_warning(sources, sources_dir):
        detail += f"; {warning}"
    checks = [_passed("source configs", detail)]
    issues = [f"{s.name}: {i.field}: {i.message} (fix: {i.fix})" for s in sources for i in reference_issues(s)]
    if issues:
        checks.append(_failed("env vars and connections", "; ".join(issues), "set them, or fix the names in the files"))
    else:
        checks.append(_passed("env vars and connections", "every referenced env var and connection exists"))
    return checks


def _stack_state() -> tuple[Path, dict]:
    """The stack state file and what it records (empty when there is none)."""
    state_file = _airflow_home() / STACK_STATE
    try:
        return state_file, json.loads(state_file.read_text())
    except (OSError, ValueError):
        return state_file, {}


def _live_stack() -> tuple[Path, list[tuple[int, str]]]:
    """The stack state file, and (pid, description) of its processes that still run."""
    state_file, state = _stack_state()
    alive = []
    for pid_text, info in state.items():
        if not pid_text.isdigit():  # the stack's PostgreSQL and warehouse URI, not a process
            continue
        pid = int(pid_text)
        if start_time(pid) == info.get("start_time"):  # same PID and start time: the same process
            ports = listening_ports(pid)
            on = f" listening on {', '.join(map(str, ports))}" if ports else ""
            alive.append((pid, f"{info.get('name', '?')} PID {pid}{on}"))
    return state_file, alive


def check_old_stack() -> Check:
    name = "earlier `make stack`"
    state_file, alive = _live_stack()
    if not state_file.is_file():
        return _passed(name, "no stack state file: no local stack is running")
    if not alive:
        return _passed(name, f"{state_file} lists no live process (a stale file; it is ignored)")
    return _failed(
        name,
        "still running: " + "; ".join(text for _, text in alive),
        f"stop it with Ctrl-C in its terminal, `.venv/bin/python scripts/airflow_stack.py stop`, "
        f"or `kill {' '.join(str(pid) for pid, _ in alive)}`",
    )


def run_checks(sources_dir: Path, dbt_project_dir: Path, root: Path = PROJECT_ROOT) -> list[Check]:
    """Every check, in the order a new user meets the problems."""
    steps: list[Callable[[], Check | list[Check]]] = [
        lambda: check_environment(root),
        lambda: check_manifest(dbt_project_dir),
        lambda: check_dbt_profile(dbt_project_dir),
        lambda: check_sources(sources_dir),
        check_warehouse,
        check_pool,
        check_old_stack,
    ]
    checks: list[Check] = []
    for step in steps:
        try:
            result = step()
        except Exception as error:  # a check that crashes is a finding too, not a traceback
            result = _failed(getattr(step, "__name__", "check"), f"{type(error).__name__}: {error}", "report this")
        checks.extend(result if isinstance(result, list) else [result])
    return checks


def print_checks(checks: list[Check]) -> None:
    """One line per check (ok / problem), and the fix under each problem."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    for check in checks:
        mark = "[green]ok     [/green]" if check.ok else "[bold red]PROBLEM[/bold red]"
        console.print(f"{mark} [bold]{escape(check.name)}[/bold]: {escape(check.detail)}")
        if not check.ok:
            console.print(f"        fix: {escape(check.fix)}")
    failed = sum(not check.ok for check in checks)
    console.print(f"{len(checks) - failed} ok, {failed} problem(s)" if failed else f"all {len(checks)} checks ok")
