"""A local Airflow stack without Docker: the twin of `astro dev start`.

    python scripts/airflow_stack.py start [--port 8080] [--airflow-home PATH] [--dags-folder PATH]
    python scripts/airflow_stack.py start --executor celery [--workers 2]
    python scripts/airflow_stack.py stop [--airflow-home PATH]
    python scripts/airflow_stack.py apply-settings [--airflow-home PATH] [--settings FILE]

`start` migrates the metadata database, applies `airflow_settings.yaml` the way the Astro CLI
does, then runs api-server, scheduler, dag-processor and triggerer as separate processes with
LocalExecutor and SimpleAuthManager, like `astro dev start` on Airflow 3. It prints the UI URL and
login and stays in the foreground; Ctrl-C stops every process. The environment follows
`scripts/env.sh`, which is sourced for it.

The metadata database (`--metadata-db`) is, as under the Astro CLI, PostgreSQL: the stack's own
cluster under AIRFLOW_HOME/stack (below). Without PostgreSQL's server programs it falls back to
SQLite in AIRFLOW_HOME, which Airflow supports for trying things only: its scheduler can die at the
start of a backfill ("database is locked", then a DagRun it no longer finds).

Network: the api-server binds 127.0.0.1. The scheduler and the triggerer run with
`--skip-serve-logs`, because their log servers bind every interface (`[::]:8793`/`8794`) and have
no host setting; every component shares AIRFLOW_HOME/logs, so the UI reads task logs from the files.
After start-up the stack checks that no process of it listens beyond loopback, and stops if one does.

PostgreSQL: a private cluster under AIRFLOW_HOME/stack (initdb on the first start, pg_ctl) with
the metadata database `airflow` and a warehouse database `mallard`, whose URI every Airflow process
gets as connection `mallard_warehouse_prod` (AIRFLOW_CONN_MALLARD_WAREHOUSE_PROD) and which is
printed and kept in the state file.

`--executor celery` runs the CeleryExecutor instead, which always uses that PostgreSQL; also
redis-server as the broker (the result backend is the metadata database) and N
`airflow celery worker` processes. Each worker has its own celery
hostname (`worker1@mallard`), task-instance hostname (`mallard-worker1`, through
`[core] hostname_callable`), HOME, TMPDIR, MALLARD_WORK_DIR and Cosmos cache, so that workers share
no local storage except AIRFLOW_HOME/logs: their log servers are off, as the scheduler's are, so
the UI reads task logs from the files. PostgreSQL and Redis listen on free ports of 127.0.0.1 only,
with passwords. As root, PostgreSQL runs as the `postgres` user (it refuses root), which must be
able to reach AIRFLOW_HOME/stack.

Linux only: processes are found through /proc. Standard library plus PyYAML.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import datetime as dt
import json
import os
import re
import secrets
import shutil
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
from typing import Any, ClassVar

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))  # run as a script: make the project importable

from include.mallard.environment import project_environment  # noqa: E402

SETTINGS_FILE = PROJECT_ROOT / "airflow_settings.yaml"
PROJECT_CODE_FOLDERS = (PROJECT_ROOT / "include", PROJECT_ROOT / "plugins")
DEFAULT_AIRFLOW_HOME = PROJECT_ROOT / ".airflow"
LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 8080
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
STATE_FILE_NAME = "stack.json"
# Where tasks report to the api-server; its first request builds the app (warm_execution_api).
EXECUTION_API_HEALTH = "/execution/health"

# Start order; stop order is scheduler first (no new task starts), then the Celery workers, then
# the api-server with the rest (running tasks report their final state through it while they shut
# down), Redis after every Airflow process, and PostgreSQL last.
COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server"],  # host and port come from [api] in the environment
    "dag-processor": ["dag-processor"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
CELERY_CONFIG_OPTIONS = "include.mallard.celery_worker.CELERY_CONFIG"  # docs/scale-out.md
METADATA_DATABASES = ("postgres", "sqlite")
REDIS = "redis"
WORKER_PREFIX = "worker"  # Celery workers are components worker1, worker2, ...
DEFAULT_WORKERS = 2
DEFAULT_WORKER_CONCURRENCY = 2  # task processes per worker: each is a full Python with Airflow
WAREHOUSE_CONN_ID = "mallard_warehouse_prod"
HOSTNAME_ENV = "MALLARD_STACK_HOSTNAME"  # read by stack_hostname(), set per worker


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
# The Celery stack's services: a private PostgreSQL cluster and Redis, under AIRFLOW_HOME/stack
# --------------------------------------------------------------------------------------------


class ServiceUnavailable(StackError):
    """A program (or user) PostgreSQL or the Celery stack needs is not on this machine."""


def _major_version(pg_ctl: Path) -> int:
    version = pg_ctl.parts[-3]  # /usr/lib/postgresql/<major>/bin/pg_ctl
    return int(version) if version.isdigit() else 0


def _postgres_bindir() -> Path:
    """The folder of initdb, pg_ctl and psql: PATH first, else Debian's newest /usr/lib/postgresql/<major>/bin."""
    candidates = [Path(found)] if (found := shutil.which("pg_ctl")) else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=_major_version, reverse=True)
    for pg_ctl in candidates:
        if (pg_ctl.resolve().parent / "initdb").is_file():
            return pg_ctl.resolve().parent
    raise ServiceUnavailable("PostgreSQL's initdb and pg_ctl are not installed (Debian: apt-get install postgresql)")


RUNUSER_PATHS = (Path("/usr/sbin/runuser"), Path("/sbin/runuser"))


def _postgres_owner() -> tuple[list[str], tuple[int, int] | None]:
    """How to run PostgreSQL's server programs: as root, as the `postgres` user (the server refuses root)."""
    if os.geteuid() != 0:
        return [], None
    import pwd

    try:
        user = pwd.getpwnam("postgres")
    except KeyError as error:
        raise ServiceUnavailable("running as root, and there is no `postgres` user to run PostgreSQL as") from error
    # util-linux puts runuser in /usr/sbin, which a minimal PATH (cron, `env -i`) leaves out.
    runuser = shutil.which("runuser") or next((str(p) for p in RUNUSER_PATHS if p.is_file()), None)
    if runuser is None:
        raise ServiceUnavailable("running as root, and util-linux's `runuser` is neither on PATH nor in /usr/sbin")
    return [runuser, "-u", "postgres", "--"], (user.pw_uid, user.pw_gid)


def _redis_server() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise ServiceUnavailable("redis-server is not installed (Debian: apt-get install redis-server)")
    return found


def postgres_unavailable() -> str | None:
    """Why the stack cannot run its own PostgreSQL on this machine, or None if it can."""
    try:
        _postgres_bindir()
        _postgres_owner()
    except ServiceUnavailable as error:
        return str(error)
    return None


def celery_stack_unavailable() -> str | None:
    """Why the Celery stack cannot run on this machine, or None if it can."""
    try:
        _redis_server()
    except ServiceUnavailable as error:
        return str(error)
    return postgres_unavailable()


def postgres_unavailable_for(folder: Path) -> str | None:
    """Why the stack cannot run its own PostgreSQL with its cluster under `folder`, or None if it can."""
    if reason := postgres_unavailable():
        return reason
    prefix, _ = _postgres_owner()
    existing = next(path for path in (folder.resolve(), *folder.resolve().parents) if path.exists())
    if prefix and subprocess.run([*prefix, "test", "-x", str(existing)], check=False).returncode != 0:
        return f"user postgres cannot reach {existing}"
    return None


def _write_private(path: Path, text: str) -> None:
    """Write a file that only its owner may read: it holds a password."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


@dataclass
class PostgresCluster:
    """The stack's own PostgreSQL cluster in `root`: metadata database `airflow`, warehouse database `mallard`.

    initdb runs on the first start only, so the metadata and the warehouse outlive a restart, as the
    SQLite file of the LocalExecutor stack does; the passwords are made then and kept in
    `root/passwords.json` (mode 600). It listens on 127.0.0.1 only (no Unix socket), with
    scram-sha-256 passwords. The warehouse role `mallard` owns its database and cannot connect to
    the metadata one.
    """

    root: Path
    port: int = 0

    SUPERUSER: ClassVar[str] = "airflow"  # also the metadata database's name
    WAREHOUSE: ClassVar[str] = "mallard"  # the warehouse's role and database

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def _passwords_file(self) -> Path:
        return self.root / "passwords.json"

    @property
    def _initialised_marker(self) -> Path:
        return self.root / "initialised"  # written once initdb and the databases are done

    def uri(self, database: str, scheme: str = "postgresql") -> str:
        """The URI of `database` as its owner (the warehouse role for the warehouse, else the superuser)."""
        user = self.WAREHOUSE if database == self.WAREHOUSE else self.SUPERUSER
        return f"{scheme}://{user}:{self.password(user)}@{LOOPBACK}:{self.port}/{database}"

    def password(self, user: str) -> str:
        """The password initdb gave `user` (the superuser or the warehouse role)."""
        return json.loads(self._passwords_file.read_text())[user]

    @property
    def warehouse_uri(self) -> str:
        return self.uri(self.WAREHOUSE)

    def postmaster(self) -> ProcInfo | None:
        """The server's main process if it runs, from postmaster.pid (a stale file names no postgres)."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            if Path(f"/proc/{pid}/comm").read_text().strip() == "postgres":
                info = _proc_info(pid)
                return info if info is not None and _is_alive(info) else None
        return None

    def _run(self, command: list[str], **kwargs: Any) -> None:
        result = subprocess.run(command, capture_output=True, text=True, timeout=180, **kwargs)
        if result.returncode != 0:
            program = Path(next(arg for arg in command if "/" in arg)).name
            raise StackError(
                f"{program} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}\n"
                f"server log {self.log_file}:\n{_tail(self.log_file)}"
            )

    def start(self) -> None:
        """initdb on the first start, then start the server on `port` (a free one if 0) and wait for it.

        The caller makes sure that no server runs on `data_dir` yet (`postmaster()`).
        """
        bindir = _postgres_bindir()
        prefix, _ = _postgres_owner()
        fresh = not self._initialised_marker.exists()
        if fresh:
            self._initdb(bindir)
        self.port = self.port or free_port()
        # synchronous_commit=off: a crash may lose the last commits, never corrupt; migrations run faster.
        options = f"-c listen_addresses={LOOPBACK} -p {self.port} -c unix_socket_directories=''"
        options += " -c synchronous_commit=off"
        pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file)]
        self._run([*pg_ctl, "-o", options, "-w", "-t", "60", "start"])
        if fresh:
            self._create_databases(bindir)
            self._initialised_marker.touch()

    def _initdb(self, bindir: Path) -> None:
        prefix, owner = _postgres_owner()
        shutil.rmtree(self.data_dir, ignore_errors=True)  # what an interrupted first start left
        self.root.mkdir(parents=True, exist_ok=True)
        passwords = {self.SUPERUSER: secrets.token_hex(16), self.WAREHOUSE: secrets.token_hex(16)}
        _write_private(self._passwords_file, json.dumps(passwords) + "\n")
        superuser_password = self.root / "initdb-password"
        _write_private(superuser_password, passwords[self.SUPERUSER])
        try:
            if owner is not None:
                for path in (self.root, superuser_password):
                    os.chown(path, *owner)
                if subprocess.run([*prefix, "test", "-w", str(self.root)], check=False).returncode != 0:
                    raise StackError(
                        f"user postgres cannot reach {self.root}: as root, put --airflow-home where every "
                        "parent folder is searchable by others (chmod o+x), or run as another user"
                    )
            initdb = [*prefix, str(bindir / "initdb"), "-D", str(self.data_dir), "-U", self.SUPERUSER]
            self._run([*initdb, f"--pwfile={superuser_password}", "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"])
        finally:
            superuser_password.unlink(missing_ok=True)

    def _create_databases(self, bindir: Path) -> None:
        passwords = json.loads(self._passwords_file.read_text())
        sql = "\n".join(
            [
                f"CREATE DATABASE {self.SUPERUSER};",
                f"REVOKE ALL ON DATABASE {self.SUPERUSER} FROM PUBLIC;",
                f"CREATE ROLE {self.WAREHOUSE} LOGIN PASSWORD '{passwords[self.WAREHOUSE]}';",
                f"CREATE DATABASE {self.WAREHOUSE} OWNER {self.WAREHOUSE};",
            ]
        )
        psql = [str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", LOOPBACK, "-p", str(self.port)]
        env = {**os.environ, "PGPASSWORD": passwords[self.SUPERUSER]}
        self._run([*psql, "-U", self.SUPERUSER, "-d", "postgres"], input=sql, env=env)

    def stop(self, timeout: float = 60.0) -> bool:
        """`pg_ctl stop` (fast: open transactions roll back; immediate if that fails). Whether one ran."""
        server = self.postmaster()
        if server is None:
            return False
        prefix, _ = _postgres_owner()
        pg_ctl = [*prefix, str(_postgres_bindir() / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", str(int(timeout))]
        for mode in ("fast", "immediate"):
            subprocess.run([*pg_ctl, "-m", mode, "stop"], capture_output=True, timeout=timeout + 30, check=False)
            if _wait_until_gone([server], 5):
                return True
        raise StackError(f"PostgreSQL (pid {server.pid}) did not stop; log {self.log_file}")


@dataclass
class CeleryServices:
    """What the Airflow processes of the Celery stack are pointed at."""

    postgres: PostgresCluster
    redis_dir: Path
    redis_port: int = field(default_factory=free_port)
    redis_password: str = field(default_factory=lambda: secrets.token_hex(16))

    def redis_command(self) -> list[str]:
        """redis-server on 127.0.0.1 with a password and no persistence (the broker's queue is transient)."""
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        config = self.redis_dir / "redis.conf"
        lines = [f"bind {LOOPBACK}", f"port {self.redis_port}", "protected-mode yes"]
        lines += [f"requirepass {self.redis_password}", f"dir {self.redis_dir}", 'save ""', "appendonly no"]
        lines += ["daemonize no", 'logfile ""']  # in the foreground, logging to its component log
        _write_private(config, "\n".join(lines) + "\n")  # a file, so that the password is not in `ps`
        return [_redis_server(), str(config)]

    def env(self, worker_concurrency: int) -> dict[str, str]:
        return {
            "AIRFLOW__CORE__EXECUTOR": EXECUTORS["celery"],
            "AIRFLOW__CELERY__BROKER_URL": f"redis://:{self.redis_password}@{LOOPBACK}:{self.redis_port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": self.postgres.uri(PostgresCluster.SUPERUSER, "db+postgresql"),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker_concurrency),
            # Airflow's Celery settings, and a worker that preloads what the tasks import (celery_worker.py).
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": CELERY_CONFIG_OPTIONS,
            # A task instance's `hostname` (sent by the worker's supervisor when the task starts and
            # with each heartbeat) names the worker, not the one machine they all run on.
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "scripts.airflow_stack.stack_hostname",
        }


def postgres_env(postgres: PostgresCluster) -> dict[str, str]:
    """The metadata database and the warehouse connection on the stack's own PostgreSQL."""
    superuser = PostgresCluster.SUPERUSER
    return {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.uri(superuser, "postgresql+psycopg2"),
        # Airflow 3 also opens an async engine; it would pick asyncpg, which is not installed.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": postgres.uri(superuser, "postgresql+psycopg_async"),
        f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}": postgres.warehouse_uri,
    }


def compile_project_code(folders: Iterable[Path]) -> None:
    """Write the bytecode of the project's Python files, so task processes do not compile them.

    Every task process imports the DAG file and `include.mallard` afresh; where Python writes no
    bytecode (PYTHONDONTWRITEBYTECODE, set in many images and shells) each one compiled them again,
    45 ms of a watcher task's ~280 ms of CPU (docs/benchmarks.md). An edited file is newer than its
    bytecode, so Python compiles it again: never stale. A file that does not compile is left to
    the dag-processor, which reports it as an import error.
    """
    for folder in folders:
        if folder.is_dir():
            compileall.compile_dir(folder, quiet=2)


def stack_hostname() -> str:
    """`[core] hostname_callable` of the Celery stack: the worker's own name, else Airflow's default (FQDN)."""
    from airflow.utils.net import getfqdn

    return os.environ.get(HOSTNAME_ENV) or getfqdn()


def celery_hostname(worker: str) -> str:
    """The Celery node name of worker `worker` (e.g. worker1)."""
    return f"{worker}@mallard"


def worker_hostname(worker: str) -> str:
    """The hostname that task instances run by Celery worker `worker` (e.g. worker1) record."""
    return f"mallard-{worker}"


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
    dags_folder: Path | None = None  # None: scripts/env.sh's (the project's dags/)
    executor: str = "local"  # a key of EXECUTORS
    metadata_db: str = "sqlite"  # one of METADATA_DATABASES; the celery executor always uses postgres
    # Where the stack's PostgreSQL keeps its cluster (default AIRFLOW_HOME/stack/postgres). As root
    # the server runs as user `postgres`, who must be able to reach it.
    postgres_dir: Path | None = None
    workers: int = DEFAULT_WORKERS  # Celery workers (celery executor only)
    worker_concurrency: int = DEFAULT_WORKER_CONCURRENCY

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def stack_env(
    config: StackConfig,
    base: Mapping[str, str] | None = None,
    postgres: PostgresCluster | None = None,
    celery: CeleryServices | None = None,
) -> dict[str, str]:
    """The environment of every Airflow process of the stack, on `postgres` if given, Celery's with `celery`."""
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
    if config.dags_folder is not None:
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(config.dags_folder.resolve())
    if postgres is not None:
        env.update(postgres_env(postgres))
    if celery is not None:
        env.update(celery.env(config.worker_concurrency))
    env.update(config.extra_env)
    return env


def worker_env(worker_dir: Path, worker: str) -> dict[str, str]:
    """What a Celery worker has of its own: hostname, HOME, TMPDIR, dlt work folder, Cosmos cache."""
    return {
        HOSTNAME_ENV: worker_hostname(worker),
        "HOME": str(worker_dir / "home"),
        "TMPDIR": str(worker_dir / "tmp"),
        "MALLARD_WORK_DIR": str(worker_dir / "work"),
        "AIRFLOW__COSMOS__CACHE_DIR": str(worker_dir / "cosmos"),
    }


def _passwords_file(home: Path) -> Path:
    return home / "simple_auth_manager_passwords.json"


@dataclass
class Component:
    name: str
    popen: subprocess.Popen[bytes]
    info: ProcInfo
    log_path: Path
    log_offset: int = 0  # the log's size before this start: what follows is this run's


class AirflowStack:
    """api-server, scheduler, dag-processor and triggerer on one AIRFLOW_HOME, each its own process.

    On PostgreSQL (started by `prepare`) unless the metadata database is SQLite; with the celery
    executor also Redis and the Celery workers.
    """

    def __init__(self, config: StackConfig) -> None:
        if config.executor not in EXECUTORS:
            raise StackError(f"unknown executor {config.executor!r}; one of {', '.join(EXECUTORS)}")
        if config.metadata_db not in METADATA_DATABASES:
            choices = ", ".join(METADATA_DATABASES)
            raise StackError(f"unknown metadata database {config.metadata_db!r}; one of {choices}")
        self.config = config
        self.home = config.airflow_home.resolve()
        self.env = stack_env(config)  # on PostgreSQL once `prepare` has started it
        self.components: list[Component] = []
        self.postgres: PostgresCluster | None = None
        self.services: CeleryServices | None = None
        self.started_at = dt.datetime.now(dt.UTC)
        self._state_written = False

    @property
    def celery(self) -> bool:
        return self.config.executor == "celery"

    @property
    def on_postgres(self) -> bool:
        return self.celery or self.config.metadata_db == "postgres"

    @property
    def warehouse_uri(self) -> str | None:
        """The stack's PostgreSQL warehouse database (Airflow connection mallard_warehouse_prod)."""
        return self.postgres.warehouse_uri if self.postgres else None

    def worker_dir(self, worker: str) -> Path:
        return self.stack_dir / "workers" / worker

    @property
    def worker_names(self) -> list[str]:
        return [f"{WORKER_PREFIX}{number}" for number in range(1, self.config.workers + 1)] if self.celery else []

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
        if self.on_postgres:
            self._start_postgres()
        self._run_once("db-migrate", self._airflow("db", "migrate"))
        compile_project_code([self.config.dags_folder or PROJECT_ROOT / "dags", *PROJECT_CODE_FOLDERS])

    def _start_postgres(self) -> None:
        postgres = PostgresCluster(self.config.postgres_dir or _stack_postgres(self.stack_dir).root)
        if running := postgres.postmaster():  # not ours: never stop it
            raise StackError(f"PostgreSQL runs on {postgres.data_dir} (pid {running.pid}): {_stop_hint(self.home)}")
        self.postgres = postgres
        if self.celery:
            self.services = CeleryServices(postgres, redis_dir=self.stack_dir / "redis")
        postgres.start()
        self.env = stack_env(self.config, postgres=postgres, celery=self.services)
        self._write_state()  # so that `stop` finds PostgreSQL from now on

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
        if not self._state_written and _stack_is_running(self.state_file):
            raise StackError(f"a stack already runs on {self.home}: stop it with `{_stop_hint(self.home)}`")
        if not port_is_free(self.config.port):
            raise StackError(f"port {self.config.port} on {LOOPBACK} is in use; pick another with --port")

    def start(self, timeout: float = 180.0) -> None:
        """Start every component and wait until the api-server reports all of them healthy."""
        self.check_can_start()
        if self.on_postgres and self.postgres is None:
            raise StackError("the stack starts PostgreSQL in prepare(): call it first")
        self.started_at = dt.datetime.now(dt.UTC)
        try:
            if self.services is not None:
                self._spawn(REDIS, self.services.redis_command())
                self._wait_for_redis(timeout)
            for name, args in COMPONENTS.items():
                self._spawn(name, self._airflow(*args))
            for worker in self.worker_names:
                self._spawn_worker(worker)
            self._write_state()
            self.wait_until_healthy(timeout)
            self.warm_execution_api()
            self.check_loopback_only()
        except BaseException:
            self.stop()
            raise

    def _spawn_worker(self, worker: str) -> None:
        root = self.worker_dir(worker)
        env = {**self.env, **worker_env(root, worker)}
        for folder in ("HOME", "TMPDIR", "MALLARD_WORK_DIR"):
            Path(env[folder]).mkdir(parents=True, exist_ok=True)
        # Its log server would bind every interface (as the scheduler's would); mingle and gossip
        # are worker-to-worker chatter over the broker that nothing here uses.
        args = ["celery", "worker", "--celery-hostname", celery_hostname(worker), "--skip-serve-logs"]
        args += ["--concurrency", str(self.config.worker_concurrency), "--without-mingle", "--without-gossip"]
        self._spawn(worker, self._airflow(*args), env)

    def _wait_for_redis(self, timeout: float) -> None:
        assert self.services is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if dead := self.dead_components():
                raise StackError(f"{dead[0].name} exited; log {dead[0].log_path}:\n{_tail(dead[0].log_path)}")
            with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, self.services.redis_port), 1):
                return
            time.sleep(0.2)
        raise StackError(f"redis-server did not listen on port {self.services.redis_port} within {timeout:.0f} s")

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        log_path = self.stack_dir / f"{name}.log"
        log_offset = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                command,
                env=self.env if env is None else env,
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
        self.components.append(Component(name, popen, info, log_path, log_offset))

    def _write_state(self) -> None:
        state: dict[str, Any] = {
            str(c.info.pid): {"name": c.name, "start_time": c.info.start_time} for c in self.components
        }
        if self.postgres is not None:
            state["postgres"] = {"data_dir": str(self.postgres.data_dir), "port": self.postgres.port}
            state["warehouse_uri"] = self.postgres.warehouse_uri  # Airflow connection mallard_warehouse_prod
        _write_private(self.state_file, json.dumps(state, indent=2) + "\n")
        self._state_written = True

    def dead_components(self) -> list[Component]:
        return [component for component in self.components if component.popen.poll() is not None]

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.config.url}/api/v2/monitor/health", timeout=5) as response:
            return json.load(response)

    def warm_execution_api(self) -> None:
        """Ask the api-server's task execution API once before any task does.

        Its first request builds the versioned app (~3 s on 2 cores, docs/benchmarks.md), and the
        first tasks of the first run otherwise wait for it, each one holding a worker.
        """
        try:
            with urllib.request.urlopen(f"{self.config.url}{EXECUTION_API_HEALTH}", timeout=60) as response:
                response.read()
        except OSError as error:
            raise StackError(
                f"the api-server's task execution API ({self.config.url}{EXECUTION_API_HEALTH}) did not answer: "
                f"{error}; tasks could not start. Log: {self.stack_dir / 'api-server.log'}"
            ) from error

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
                if self._all_healthy(status) and self._workers_ready():
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

    def _workers_ready(self) -> bool:
        """Whether every Celery worker has logged, since this start, that it takes tasks."""
        for component in self.components:
            if component.name.startswith(WORKER_PREFIX):
                with component.log_path.open("rb") as log:
                    log.seek(component.log_offset)
                    if f"{celery_hostname(component.name)} ready.".encode() not in log.read():
                        return False
        return True

    def check_loopback_only(self) -> None:
        """Fail if any process of the stack listens on an address other than loopback."""
        roots = [c.info.pid for c in self.components]
        if self.postgres is not None and (server := self.postgres.postmaster()):
            roots.append(server.pid)
        pids = stack_processes(roots)
        exposed = [s for s in listening_sockets(pids) if not _is_loopback(s[1])]
        if exposed:
            described = ", ".join(f"pid {pid} on {address}:{port}" for pid, address, port in exposed)
            raise StackError(f"a stack process listens beyond loopback: {described}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the components (scheduler first), SIGKILL what is left after `timeout`; verify.

        Then PostgreSQL, if this stack started it, with `pg_ctl stop`.
        """
        try:
            stop_processes([(c.name, c.info) for c in self.components], timeout)
            for component in self.components:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    component.popen.wait(timeout=5)  # reap, so that no zombie is left behind
            self.components = []
        finally:
            if self.postgres is not None:
                self.postgres.stop()
                self.postgres = None
                self.services = None
        if self._state_written:
            self.state_file.unlink(missing_ok=True)
            self._state_written = False

    def kill(self, name: str) -> None:
        """SIGKILL a component and every process it started, as if its machine died; forget it."""
        component = next(c for c in self.components if c.name == name)
        _signal(component.info, signal.SIGKILL)  # first: a dead leader starts no replacement child
        while processes := stack_processes([component.info.pid]):  # its session outlives the leader
            for info in processes.values():
                _signal(info, signal.SIGKILL)
            if not _wait_until_gone(processes.values(), 10):
                raise StackError(f"processes of {name} survived SIGKILL: {sorted(processes)}")
        component.popen.wait(timeout=10)
        self.components.remove(component)
        self._write_state()

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

    Each component gets SIGTERM to its process group, then SIGKILL after `timeout`, in the groups of
    `_stop_rank`. The scheduler goes first, so that its executor stops the running tasks while the
    api-server still answers them. Task processes (own process group, same session) still alive
    after that are killed.
    """
    live = [(name, info) for name, info in roots if _is_alive(info)]
    root_pids = [info.pid for _, info in live]
    known = stack_processes(root_pids)
    ranks = sorted({_stop_rank(name) for name, _ in live})
    for group in ([info for name, info in live if _stop_rank(name) == rank] for rank in ranks):
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


def _stop_rank(name: str) -> int:
    """When a component stops: scheduler, then Celery workers, then the other Airflow components, then Redis."""
    if name == "scheduler":
        return 0
    if name.startswith(WORKER_PREFIX):
        return 1  # a worker's warm shutdown lets its running tasks report through the api-server
    return 3 if name == REDIS else 2


def _read_state(path: Path) -> list[tuple[str, ProcInfo]]:
    """The components recorded in a state file that are still the same processes."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    roots = []
    for pid, entry in state.items():
        if not pid.isdigit():  # not a component: the stack's PostgreSQL and warehouse URI
            continue
        info = _proc_info(int(pid))
        if info is not None and info.start_time == entry["start_time"] and _is_alive(info):
            roots.append((entry["name"], info))
    return roots


def _stack_postgres(stack_dir: Path) -> PostgresCluster:
    return PostgresCluster(stack_dir / "postgres")


def _state_postgres(state_file: Path) -> PostgresCluster:
    """The PostgreSQL cluster of the stack of this state file (recorded there with its port, else the
    default place, port unknown)."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        recorded = json.loads(state_file.read_text())["postgres"]
        return PostgresCluster(Path(recorded["data_dir"]).parent, port=int(recorded["port"]))
    return _stack_postgres(state_file.parent)


def _stack_is_running(state_file: Path) -> bool:
    """Whether the stack of this state file still has a component, or its PostgreSQL, running."""
    return bool(_read_state(state_file)) or _state_postgres(state_file).postmaster() is not None


def running_stack_env(airflow_home: Path) -> dict[str, str]:
    """The environment a CLI command needs to act on the stack running in `airflow_home`.

    A stack on PostgreSQL keeps its metadata there, where a plain `airflow` command (whose
    env.sh names the SQLite file) never looks: its backfills and triggers went to a database no
    scheduler reads. Raises StackError when no stack runs there.
    """
    state_file = airflow_home.resolve() / "stack" / STATE_FILE_NAME
    if not _read_state(state_file):
        raise StackError(
            f"no stack is running in {airflow_home} (no live process in {state_file}): start one with `make stack` "
            "in another terminal, or run the command without this prefix to act on the SQLite database"
        )
    environment = dict(os.environ) | {"AIRFLOW_HOME": str(airflow_home)}
    cluster = _state_postgres(state_file)
    if cluster.port and cluster.postmaster() is not None:  # a SQLite stack records no PostgreSQL
        environment |= postgres_env(cluster)
    return environment


def stop_from_state(airflow_home: Path, timeout: float = 30.0) -> int:
    """Stop a stack started by another process, from the PIDs it recorded. Returns how many."""
    state_file = airflow_home.resolve() / "stack" / STATE_FILE_NAME
    roots = _read_state(state_file)
    postgres = _state_postgres(state_file)
    stop_processes(roots, timeout)
    stopped_postgres = postgres.stop()  # if it runs
    state_file.unlink(missing_ok=True)
    return len(roots) + stopped_postgres


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
    stack.check_can_start()
    try:  # the Celery stack's PostgreSQL runs from prepare() on
        stack.prepare()
        stack.apply_settings()
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
        database = "PostgreSQL in the stack folder, " if stack.on_postgres else "SQLite metadata database, "
        print(f"Preparing {stack.home} ({database}airflow db migrate, {config.settings_file or 'no settings file'})")
        stack.prepare()
        stack.apply_settings()
        names = "api-server, dag-processor, scheduler and triggerer"
        if stack.celery:
            names = f"redis, api-server, dag-processor, scheduler, triggerer and {config.workers} Celery worker(s)"
        print(f"Starting {names}...")
        stack.start()
        print(f"\nAirflow is ready after {time.monotonic() - started:.0f} s: {config.url}")
        print(f"Login: {config.username} / {config.password}")
        if stack.celery:
            print(f"CeleryExecutor: workers {', '.join(stack.worker_names)}, {config.worker_concurrency} task(s) each")
        if stack.warehouse_uri:
            # The password stays in the cluster's passwords.json (mode 600): never in a terminal or CI log.
            shown = re.sub(r":[^:@/]+@", ":***@", stack.warehouse_uri, count=1)
            print(f"Warehouse for MALLARD_ENV=prod (Airflow connection {WAREHOUSE_CONN_ID}): {shown}")
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
        if stack.components or stack.postgres:
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
    run_cli = commands.add_parser(
        "airflow",
        help="run an `airflow` CLI command against the running stack (as `astro dev run` does), e.g. "
        "`airflow backfill create --dag-id mallard_elt --from-date 2024-01-01 --to-date 2024-01-07`",
    )
    run_cli.add_argument("arguments", nargs=argparse.REMAINDER, help="the airflow command and its arguments")
    for command in (start, stop, apply, run_cli):
        command.add_argument("--airflow-home", type=Path, default=home_default, help="default: %(default)s")
    for command in (start, apply):
        command.add_argument("--settings", type=Path, default=SETTINGS_FILE, help="default: %(default)s")
    start.add_argument("--port", type=int, default=DEFAULT_PORT, help="api-server port on 127.0.0.1")
    start.add_argument("--dags-folder", type=Path, help="default: the project's dags/")
    start.add_argument("--executor", choices=EXECUTORS, default="local", help="default: %(default)s")
    start.add_argument("--workers", type=int, help=f"Celery workers (celery executor; default {DEFAULT_WORKERS})")
    start.add_argument(
        "--metadata-db",
        choices=METADATA_DATABASES,
        help="default: postgres when PostgreSQL's server programs are installed, else sqlite",
    )
    # Internal: the stack runs this in a process whose environment is already the stack's.
    apply.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.command == "start":
        if args.workers is not None and args.executor != "celery":
            parser.error("--workers needs --executor celery")
        if args.workers is not None and args.workers < 1:
            parser.error("--workers must be at least 1")
        if args.executor == "celery" and args.metadata_db == "sqlite":
            parser.error("the celery executor needs --metadata-db postgres")
        metadata_db = args.metadata_db or ("postgres" if args.executor == "celery" else None)
        if metadata_db is None:  # PostgreSQL, as under the Astro CLI, where it can run
            reason = postgres_unavailable_for(args.airflow_home)
            if reason:
                print(f"The metadata database is SQLite, for trying things only: {reason}")
            metadata_db = "sqlite" if reason else "postgres"
        config = StackConfig(
            airflow_home=args.airflow_home,
            port=args.port,
            settings_file=args.settings,
            dags_folder=args.dags_folder,
            executor=args.executor,
            metadata_db=metadata_db,
            workers=args.workers or DEFAULT_WORKERS,
        )
        return _run_foreground(config)
    if args.command == "airflow":
        try:
            environment = running_stack_env(args.airflow_home)
        except StackError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        return subprocess.run([sys.executable, "-m", "airflow", *args.arguments], env=environment).returncode
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
