"""A local Airflow stack without Docker: the twin of `astro dev start`.

    python scripts/airflow_stack.py start [--port 8080] [--airflow-home PATH]
    python scripts/airflow_stack.py stop [--airflow-home PATH]
    python scripts/airflow_stack.py apply-settings [--airflow-home PATH] [--settings FILE]

`start` migrates the metadata database (SQLite in AIRFLOW_HOME), applies `airflow_settings.yaml`
the way the Astro CLI does, then runs api-server, scheduler, dag-processor and triggerer as
separate processes with LocalExecutor and SimpleAuthManager, like `astro dev start` on Airflow 3
(SQLite instead of Postgres). It prints the UI URL and login and stays in the foreground; Ctrl-C
stops every process. The environment follows `scripts/env.sh`, which is sourced for it.

Network: the api-server binds 127.0.0.1. The scheduler and the triggerer run with
`--skip-serve-logs`, because their log servers bind every interface (`[::]:8793`/`8794`) and have
no host setting; every component shares AIRFLOW_HOME/logs, so the UI reads task logs from the files.
After start-up the stack checks that no process of it listens beyond loopback, and stops if one does.

Linux only: processes are found through /proc. Standard library plus PyYAML.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))  # run as a script: make the project importable

from include.mallard.environment import project_environment  # noqa: E402

SETTINGS_FILE = PROJECT_ROOT / "airflow_settings.yaml"
DEFAULT_AIRFLOW_HOME = PROJECT_ROOT / ".airflow"
LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 8080
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
STATE_FILE_NAME = "stack.json"

# Start order; stop order is scheduler first (no new task starts), api-server last (running
# tasks report their final state through it while they shut down).
COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server"],  # host and port come from [api] in the environment
    "dag-processor": ["dag-processor"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
STOP_FIRST = "scheduler"


class StackError(RuntimeError):
    """The stack could not be started, or stopped, as asked."""


# --------------------------------------------------------------------------------------------
# airflow_settings.yaml, applied the way the Astro CLI applies it
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionSetting:
    conn_id: str
    conn_type: str = ""
    conn_uri: str = ""
    host: str = ""
    schema: str = ""
    login: str = ""
    password: str = ""
    port: int = 0
    extra: str = ""


@dataclass(frozen=True)
class PoolSetting:
    name: str
    slots: int
    description: str = ""


@dataclass(frozen=True)
class AirflowSettings:
    connections: list[ConnectionSetting] = field(default_factory=list)
    pools: list[PoolSetting] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # entries the Astro CLI would skip, and why


def _text(value: Any) -> str:
    """A YAML scalar as the Astro CLI sees it: empty (`~`) becomes ""."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _extra(value: Any) -> str:
    # The Astro CLI sends a string as-is and turns a mapping into JSON. It keeps only string values
    # of a mapping; here every value is kept, as a silently dropped key helps nobody.
    if isinstance(value, dict):
        return json.dumps(value)
    return _text(value)


def read_settings(path: Path) -> AirflowSettings:
    """Parse an Astro `airflow_settings.yaml`, keeping the Astro CLI's rules for skipping entries."""
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    section = document.get("airflow") or {}
    result = AirflowSettings()
    for item in section.get("connections") or []:
        conn_id = _text(item.get("conn_id"))
        if not conn_id:
            continue  # the Astro CLI skips an entry without conn_id silently
        conn = ConnectionSetting(
            conn_id=conn_id,
            conn_type=_text(item.get("conn_type")),
            conn_uri=_text(item.get("conn_uri")),
            host=_text(item.get("conn_host")),
            schema=_text(item.get("conn_schema")),
            login=_text(item.get("conn_login")),
            password=_text(item.get("conn_password")),
            port=int(item.get("conn_port") or 0),
            extra=_extra(item.get("conn_extra")),
        )
        if not (conn.conn_type or conn.conn_uri):
            result.skipped.append(f"connection {conn_id}: conn_type or conn_uri must be specified")
        result.connections.append(conn)  # deleted even when skipped, as the Astro CLI does
    for item in section.get("pools") or []:
        name = _text(item.get("pool_name"))
        if not name:
            continue
        slots = int(item.get("pool_slot") or 0)
        if slots == 0:
            result.skipped.append(f"pool {name}: pool_slot must be set")
            continue
        result.pools.append(PoolSetting(name, slots, _text(item.get("pool_description"))))
    for item in section.get("variables") or []:
        name, value = _text(item.get("variable_name")), _text(item.get("variable_value"))
        if name and value:  # the Astro CLI skips a variable without name or without value
            result.variables[name] = value
        elif value:
            result.skipped.append("variable without variable_name")
    return result


def apply_settings_in_this_process(settings: AirflowSettings) -> list[str]:
    """Write pools, variables and connections to the metadata DB (in the Astro CLI's order).

    Uses Airflow's models in one process: the equivalent `airflow pools set`/`variables set`/
    `connections delete`+`add` CLI calls cost ~4 s each (each imports Airflow): measured here,
    3.5 s in one process against 15 s for the four CLI calls of this project's settings.
    """
    from airflow.models import Connection, Pool, Variable
    from airflow.providers_manager import ProvidersManager
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    report = [f"skipped {reason}" for reason in settings.skipped]
    # `airflow connections add` stores a type that no installed provider registers as "generic".
    known_types = {conn_type for conn_type, hook in ProvidersManager().hooks.items() if hook}
    for pool in settings.pools:
        Pool.create_or_update_pool(pool.name, pool.slots, pool.description, include_deferred=False)
        report.append(f"pool {pool.name}: {pool.slots} slot(s)")
    for name, value in settings.variables.items():
        Variable.set(name, value)
        report.append(f"variable {name}")
    with create_session() as session:
        for conn in settings.connections:
            session.execute(delete(Connection).where(Connection.conn_id == conn.conn_id))
            if not (conn.conn_type or conn.conn_uri):
                continue
            has_fields = any((conn.conn_type, conn.host, conn.login, conn.password, conn.schema, conn.port))
            if conn.conn_uri and not has_fields:
                new = Connection(conn_id=conn.conn_id, uri=conn.conn_uri)
            elif not conn.conn_type:  # the Astro CLI drops the URI then, and `connections add` refuses
                report.append(f"skipped connection {conn.conn_id}: conn_uri with other fields needs conn_type")
                continue
            else:
                conn_type = conn.conn_type
                if conn_type not in known_types:
                    report.append(f"connection {conn.conn_id}: no installed provider knows type {conn_type!r}")
                    conn_type = "generic"
                new = Connection(
                    conn_id=conn.conn_id,
                    conn_type=conn_type,
                    host=conn.host or None,
                    schema=conn.schema or None,
                    login=conn.login or None,
                    password=conn.password or None,
                    port=conn.port or None,
                )
            if conn.extra:
                new.set_extra(conn.extra)
            session.add(new)
            report.append(f"connection {conn.conn_id} ({new.conn_type})")
    return report


# --------------------------------------------------------------------------------------------
# Processes: found through /proc, so that a component's children are stopped too
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    pgrp: int
    session: int
    start_time: int  # clock ticks since boot: tells a process from a later one with the same PID
    state: str


def _proc_info(pid: int) -> ProcInfo | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = raw[raw.rindex(")") + 2 :].split()
    return ProcInfo(pid, int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19]), fields[0])


def _process_table() -> dict[int, ProcInfo]:
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := _proc_info(int(entry.name))):
            table[info.pid] = info
    return table


def stack_processes(roots: Iterable[int]) -> dict[int, ProcInfo]:
    """Every live process started by the components `roots`.

    Each component leads its own session. Task processes move to their own process group but stay
    in the session; descendants are followed by parent PID as well, in case one calls setsid.
    """
    table = _process_table()
    roots = set(roots)
    found = {pid: info for pid, info in table.items() if info.session in roots or pid in roots}
    grew = True
    while grew:
        children = {pid: info for pid, info in table.items() if info.ppid in found and pid not in found}
        found.update(children)
        grew = bool(children)
    return {pid: info for pid, info in found.items() if info.state not in "ZX"}


def _is_alive(info: ProcInfo) -> bool:
    now = _proc_info(info.pid)
    return now is not None and now.start_time == info.start_time and now.state not in "ZX"


def _signal(info: ProcInfo, signum: signal.Signals) -> None:
    if _is_alive(info):  # never signal a PID that now belongs to someone else
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(info.pid, signum)


def _listening_inodes() -> dict[int, tuple[str, int]]:
    """inode -> (address, port) of every listening TCP socket in this network namespace."""
    sockets = {}
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] != "0A":  # TCP_LISTEN
                    continue
                address_hex, port_hex = cols[1].split(":")
                raw = bytes.fromhex(address_hex)
                # /proc prints the address as native-endian 32-bit words.
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                family = socket.AF_INET if width == 8 else socket.AF_INET6
                sockets[int(cols[9])] = (socket.inet_ntop(family, words), int(port_hex, 16))
    return sockets


def listening_sockets(pids: Iterable[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every TCP socket that one of `pids` listens on."""
    listening = _listening_inodes()
    result = []
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = str(fd.readlink())
                    if target.startswith("socket:[") and (inode := int(target[8:-1])) in listening:
                        result.append((pid, *listening[inode]))
    return sorted(set(result))


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1") or address.startswith("::ffff:127.")


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: connections of a stopped server in TIME_WAIT do not block the port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


# --------------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------------


@dataclass
class StackConfig:
    airflow_home: Path = DEFAULT_AIRFLOW_HOME
    port: int = DEFAULT_PORT
    username: str = "admin"
    password: str = "admin"
    settings_file: Path | None = SETTINGS_FILE
    extra_env: dict[str, str] = field(default_factory=dict)  # applied last: wins over everything

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def stack_env(config: StackConfig, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every Airflow process of the stack."""
    home = config.airflow_home.resolve()
    env = dict(os.environ if base is None else base)
    env["AIRFLOW_HOME"] = str(home)
    env = project_environment(env)
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # Absolute path: a relative SQLite URL is refused, and a URL inherited from the shell
            # would point every stack at one database.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{config.username}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(_passwords_file(home)),
            "AIRFLOW__API__HOST": LOOPBACK,
            "AIRFLOW__API__PORT": str(config.port),
            "AIRFLOW__API__BASE_URL": config.url,
            # Task processes talk to the api-server; the default is localhost:8080, and localhost
            # may resolve to ::1, where nothing listens.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{config.url}/execution/",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",  # its server would bind 0.0.0.0
            # Cosmos's dbt parse cache belongs to this stack, not to whichever stack ran first.
            "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos"),
        }
    )
    env.update(config.extra_env)
    return env


def _passwords_file(home: Path) -> Path:
    return home / "simple_auth_manager_passwords.json"


@dataclass
class Component:
    name: str
    popen: subprocess.Popen[bytes]
    info: ProcInfo
    log_path: Path


class AirflowStack:
    """api-server, scheduler, dag-processor and triggerer on one AIRFLOW_HOME, each its own process."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.home = config.airflow_home.resolve()
        self.env = stack_env(config)
        self.components: list[Component] = []
        self.started_at = dt.datetime.now(dt.UTC)

    @property
    def stack_dir(self) -> Path:
        return self.home / "stack"

    @property
    def state_file(self) -> Path:
        return self.stack_dir / STATE_FILE_NAME

    def _airflow(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "airflow", *args]

    def prepare(self) -> None:
        """Create AIRFLOW_HOME with the admin login, and migrate its database."""
        self.check_can_start()
        self.stack_dir.mkdir(parents=True, exist_ok=True)
        # SimpleAuthManager keeps passwords in this JSON file; it only generates one for a user
        # missing from it, so writing it fixes the login.
        passwords = _passwords_file(self.home)
        passwords.write_text(json.dumps({self.config.username: self.config.password}) + "\n")
        passwords.chmod(0o600)
        self._run_once("db-migrate", self._airflow("db", "migrate"))

    def apply_settings(self) -> None:
        """Apply the settings file (connections, pools, variables) in one Airflow process."""
        if self.config.settings_file is None:
            return
        command = [sys.executable, str(Path(__file__).resolve()), "apply-settings", "--in-process"]
        command += ["--settings", str(self.config.settings_file), "--airflow-home", str(self.home)]
        output = self._run_once("apply-settings", command)
        for line in output.splitlines():
            if line.startswith("settings: "):
                print(line)

    def _run_once(self, name: str, command: list[str]) -> str:
        log_path = self.stack_dir / f"{name}.log"
        result = subprocess.run(command, env=self.env, cwd=PROJECT_ROOT, capture_output=True, text=True)
        log_path.write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise StackError(f"{name} failed (exit {result.returncode}); log {log_path}:\n{_tail(log_path)}")
        return result.stdout

    def check_can_start(self) -> None:
        """Refuse a second stack on the same AIRFLOW_HOME, and a port that is taken."""
        if _read_state(self.state_file):
            raise StackError(f"a stack already runs on {self.home}: stop it with `{_stop_hint(self.home)}`")
        if not port_is_free(self.config.port):
            raise StackError(f"port {self.config.port} on {LOOPBACK} is in use; pick another with --port")

    def start(self, timeout: float = 180.0) -> None:
        """Start every component and wait until the api-server reports all of them healthy."""
        self.check_can_start()
        self.started_at = dt.datetime.now(dt.UTC)
        try:
            for name, args in COMPONENTS.items():
                self._spawn(name, args)
            self._write_state()
            self.wait_until_healthy(timeout)
            self.check_loopback_only()
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, args: list[str]) -> None:
        log_path = self.stack_dir / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                self._airflow(*args),
                env=self.env,
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: Ctrl-C in the terminal reaches only this script, which then stops
                # the components in order; and the session id finds all their children later.
                start_new_session=True,
            )
        info = _proc_info(popen.pid)
        if info is None:  # exited at once
            raise StackError(f"{name} exited immediately; log {log_path}:\n{_tail(log_path)}")
        self.components.append(Component(name, popen, info, log_path))

    def _write_state(self) -> None:
        state = {str(c.info.pid): {"name": c.name, "start_time": c.info.start_time} for c in self.components}
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    def dead_components(self) -> list[Component]:
        return [component for component in self.components if component.popen.poll() is not None]

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.config.url}/api/v2/monitor/health", timeout=5) as response:
            return json.load(response)

    def wait_until_healthy(self, timeout: float) -> None:
        """Wait until the api-server answers and reports every component healthy since this start."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if dead := self.dead_components():
                component = dead[0]
                raise StackError(
                    f"{component.name} exited (code {component.popen.returncode}); "
                    f"log {component.log_path}:\n{_tail(component.log_path)}"
                )
            with contextlib.suppress(OSError, ValueError):  # not listening yet / partial answer
                status = self.health()
                if self._all_healthy(status):
                    return
            time.sleep(1)
        raise StackError(f"the stack was not healthy after {timeout:.0f} s; last health: {status}")

    def _all_healthy(self, status: dict[str, Any]) -> bool:
        if (status.get("metadatabase") or {}).get("status") != "healthy":
            return False
        for component in ("scheduler", "dag_processor", "triggerer"):
            entry = status.get(component) or {}
            heartbeat = entry.get(f"latest_{component}_heartbeat")
            # A job of a previous stack on the same AIRFLOW_HOME can look healthy for a while.
            if entry.get("status") != "healthy" or not heartbeat:
                return False
            if dt.datetime.fromisoformat(heartbeat) < self.started_at:
                return False
        return True

    def check_loopback_only(self) -> None:
        """Fail if any process of the stack listens on an address other than loopback."""
        pids = stack_processes(c.info.pid for c in self.components)
        exposed = [s for s in listening_sockets(pids) if not _is_loopback(s[1])]
        if exposed:
            described = ", ".join(f"pid {pid} on {address}:{port}" for pid, address, port in exposed)
            raise StackError(f"a stack process listens beyond loopback: {described}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the components (scheduler first), SIGKILL what is left after `timeout`; verify."""
        stop_processes([(c.name, c.info) for c in self.components], timeout)
        for component in self.components:
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.popen.wait(timeout=5)  # reap, so that no zombie is left behind
        self.components = []
        self.state_file.unlink(missing_ok=True)

    def __enter__(self) -> AirflowStack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _wait_until_gone(processes: Iterable[ProcInfo], timeout: float) -> bool:
    processes = list(processes)
    deadline = time.monotonic() + timeout
    while any(_is_alive(info) for info in processes):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def stop_processes(roots: list[tuple[str, ProcInfo]], timeout: float = 30.0) -> None:
    """Stop the components `roots` (name, process) and all their processes; raise if any survive.

    Each component gets SIGTERM to its process group, then SIGKILL after `timeout`. The scheduler
    goes first, so that its executor stops the running tasks while the api-server still answers
    them. Task processes (own process group, same session) still alive after that are killed.
    """
    live = [(name, info) for name, info in roots if _is_alive(info)]
    root_pids = [info.pid for _, info in live]
    known = stack_processes(root_pids)
    scheduler = [info for name, info in live if name == STOP_FIRST]
    others = [info for name, info in live if name != STOP_FIRST]
    for group in (scheduler, others):
        for signum in (signal.SIGTERM, signal.SIGKILL):
            for info in group:
                if _is_alive(info):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(info.pid, signum)
            if _wait_until_gone(group, timeout if signum == signal.SIGTERM else 5):
                break
    known.update(stack_processes(root_pids))  # the session id outlives its leader
    if not _wait_until_gone(known.values(), 5):
        for info in known.values():
            _signal(info, signal.SIGKILL)
        _wait_until_gone(known.values(), 5)
    survivors = sorted(info.pid for info in known.values() if _is_alive(info))
    if survivors:
        raise StackError(f"processes of the stack survived SIGKILL: {survivors}")


def _read_state(path: Path) -> list[tuple[str, ProcInfo]]:
    """The components recorded in a state file that are still the same processes."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    roots = []
    for pid, entry in state.items():
        info = _proc_info(int(pid))
        if info is not None and info.start_time == entry["start_time"] and _is_alive(info):
            roots.append((entry["name"], info))
    return roots


def stop_from_state(airflow_home: Path, timeout: float = 30.0) -> int:
    """Stop a stack started by another process, from the PIDs it recorded. Returns how many."""
    state_file = airflow_home.resolve() / "stack" / STATE_FILE_NAME
    roots = _read_state(state_file)
    stop_processes(roots, timeout)
    state_file.unlink(missing_ok=True)
    return len(roots)


def _tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _stop_hint(home: Path) -> str:
    return f"python scripts/airflow_stack.py stop --airflow-home {home}"


@contextlib.contextmanager
def running_stack(config: StackConfig, timeout: float = 180.0) -> Iterator[AirflowStack]:
    """Prepare, configure and start a stack; stop every process on exit, whatever happened."""
    stack = AirflowStack(config)
    stack.prepare()
    stack.apply_settings()
    try:
        stack.start(timeout)
        yield stack
    finally:
        stack.stop()


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run_foreground(config: StackConfig) -> int:
    stack = AirflowStack(config)
    # SIGTERM/SIGHUP stop the stack like Ctrl-C does.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    signal.signal(signal.SIGHUP, _raise_keyboard_interrupt)
    try:
        started = time.monotonic()
        print(f"Preparing {stack.home} (airflow db migrate, {config.settings_file or 'no settings file'})")
        stack.prepare()
        stack.apply_settings()
        print("Starting api-server, dag-processor, scheduler and triggerer...")
        stack.start()
        print(f"\nAirflow is ready after {time.monotonic() - started:.0f} s: {config.url}")
        print(f"Login: {config.username} / {config.password}")
        print(f"Component logs: {stack.stack_dir}/<component>.log; task logs: {stack.home / 'logs'}")
        print("Press Ctrl-C to stop every process.\n")
        while not (dead := stack.dead_components()):
            time.sleep(1)
        print(f"{dead[0].name} exited (code {dead[0].popen.returncode}); log {dead[0].log_path}:", file=sys.stderr)
        print(_tail(dead[0].log_path), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        if stack.components:
            print("Stopping the stack...")
            stack.stop()
            print("Stopped: no process of the stack is left.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airflow_stack", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    home_default = Path(os.environ.get("AIRFLOW_HOME") or DEFAULT_AIRFLOW_HOME)
    start = commands.add_parser("start", help="start the stack in the foreground (Ctrl-C stops it)")
    stop = commands.add_parser("stop", help="stop a stack that another process started")
    apply = commands.add_parser("apply-settings", help="apply airflow_settings.yaml to AIRFLOW_HOME")
    for command in (start, stop, apply):
        command.add_argument("--airflow-home", type=Path, default=home_default, help="default: %(default)s")
    for command in (start, apply):
        command.add_argument("--settings", type=Path, default=SETTINGS_FILE, help="default: %(default)s")
    start.add_argument("--port", type=int, default=DEFAULT_PORT, help="api-server port on 127.0.0.1")
    # Internal: the stack runs this in a process whose environment is already the stack's.
    apply.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.command == "start":
        return _run_foreground(StackConfig(airflow_home=args.airflow_home, port=args.port, settings_file=args.settings))
    if args.command == "stop":
        count = stop_from_state(args.airflow_home)
        print(f"stopped {count} component(s)" if count else "no stack was running")
        return 0
    if args.in_process:
        for line in apply_settings_in_this_process(read_settings(args.settings)):
            print(f"settings: {line}")
        return 0
    stack = AirflowStack(StackConfig(airflow_home=args.airflow_home, settings_file=args.settings))
    stack.stack_dir.mkdir(parents=True, exist_ok=True)
    stack.apply_settings()
    return 0


if __name__ == "__main__":
    sys.exit(main())
