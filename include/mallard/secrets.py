"""Secrets by reference: resolved at task run time, checked on demand, never read at DAG parse time.

A config names where a secret lives, `{env: NAME}` or `{connection: ID}`; the value is looked
up only inside the task that needs it (an Airflow connection through the Task SDK, which also
masks it in the task log). `reference_issues()` is the explicit check behind `cli validate`:
it looks connections up in env vars, secrets backends and the metadata database.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from include.mallard.config import ExternalReference, Issue, SecretRef, SourceConfig, SqlCredentials
from include.mallard.config.base import is_reference_mapping
from include.mallard.paths import resolve_project_path

# Airflow connection types whose name is not a SQLAlchemy dialect.
_SQLALCHEMY_SCHEME = {"postgres": "postgresql", "postgresql": "postgresql", "sqlite": "sqlite", "mssql": "mssql"}


class SecretNotFoundError(LookupError):
    """A referenced env var or connection does not exist where the task runs."""


def connection_env_var(conn_id: str) -> str:
    """The env var Airflow reads a connection from (AIRFLOW_CONN_<ID>)."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def _mask(value: str) -> None:
    # Keep env-var secrets out of the task log like Airflow does for connection passwords.
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # outside Airflow (plain scripts): nothing to mask with
        return
    mask_secret(value)


def get_connection(conn_id: str) -> Any:
    """An Airflow connection at task run time (Task SDK: env vars, secrets backends, the API server)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as error:
        raise SecretNotFoundError(
            f"Airflow connection {conn_id!r} does not exist; create it (UI, `airflow connections add`, "
            f"airflow_settings.yaml) or set {connection_env_var(conn_id)}"
        ) from error


def _env(name: str) -> str:
    value = os.environ.get(name)
    if value is None or value == "":
        raise SecretNotFoundError(f"environment variable {name} is not set where this task runs")
    _mask(value)
    return value


def _connection_part(connection: Any, field: str) -> str:
    if field.startswith("extra."):
        value = connection.extra_dejson.get(field.removeprefix("extra."))
    else:
        value = getattr(connection, field, None)
    if value in (None, ""):
        raise SecretNotFoundError(f"Airflow connection {connection.conn_id!r} has no {field}")
    return str(value)


def resolve_secret(ref: SecretRef) -> str:
    """The secret value a reference points to."""
    if ref.env:
        return _env(ref.env)
    assert ref.connection is not None
    return _connection_part(get_connection(ref.connection), ref.field)


def connection_login(ref: SecretRef) -> str | None:
    """The login of the connection a reference points to (basic auth without a username)."""
    if not ref.connection:
        return None
    return get_connection(ref.connection).login


def connection_sqlalchemy_url(connection: Any) -> str:
    """A SQLAlchemy URL from an Airflow connection: extra `sqlalchemy_url` if set, else built from its parts."""
    from dlt.common.libs.sql_alchemy import sa

    explicit = connection.extra_dejson.get("sqlalchemy_url")
    if explicit:
        return str(explicit)
    conn_type = (connection.conn_type or "").lower()
    scheme = _SQLALCHEMY_SCHEME.get(conn_type, conn_type)
    if scheme == "sqlite":
        return f"sqlite:///{connection.host or connection.schema}"
    url = sa.engine.URL.create(
        scheme,
        username=connection.login or None,
        password=connection.password or None,
        host=connection.host or None,
        port=connection.port or None,
        database=connection.schema or None,
    )
    return url.render_as_string(hide_password=False)


def _absolute_sqlite(url: str) -> str:
    # sqlite:///relative.db is relative to the working directory in SQLAlchemy; Mallard resolves
    # relative paths against the project root, like every other path in a config.
    from dlt.common.libs.sql_alchemy import sa

    parsed = sa.engine.make_url(url)
    database = parsed.database
    is_file = parsed.drivername.startswith("sqlite") and database and database != ":memory:"
    if is_file and not Path(database).is_absolute():
        return parsed.set(database=str(resolve_project_path(database))).render_as_string(hide_password=False)
    return url


def resolve_sql_url(credentials: SqlCredentials) -> str:
    """The SQLAlchemy URL of a sql_database source."""
    if credentials.url:
        url = credentials.url
    elif credentials.env:
        url = _env(credentials.env)
    else:
        assert credentials.connection is not None
        url = connection_sqlalchemy_url(get_connection(credentials.connection))
    if url.startswith("postgres://"):  # Airflow's URI spelling; SQLAlchemy wants postgresql://
        url = "postgresql://" + url.removeprefix("postgres://")
    return _absolute_sqlite(url)


def resolve_args(args: dict[str, Any]) -> dict[str, Any]:
    """A python source's keyword arguments, with {env: ...}/{connection: ...} values resolved."""
    resolved = {}
    for key, value in args.items():
        if is_reference_mapping(value):
            value = resolve_secret(SecretRef.model_validate(value))
        resolved[key] = value
    return resolved


# --- the explicit check (cli validate) -----------------------------------------------------------


def connection_exists(conn_id: str) -> tuple[bool, str]:
    """Whether Airflow knows `conn_id`: env var, secrets backends or the metadata database; and where it looked."""
    looked = f"env var {connection_env_var(conn_id)}, Airflow's secrets backends and its metadata database"
    if os.environ.get(connection_env_var(conn_id)):
        return True, looked
    try:
        # The core lookup (not the Task SDK's): outside a task it also reads the metadata database.
        from airflow.models.connection import Connection
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:
        return False, f"env var {connection_env_var(conn_id)} (Airflow is not installed here)"
    try:
        Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        return False, looked
    except Exception as error:  # e.g. no metadata database here: say so rather than guess
        return False, f"{looked} (lookup failed: {type(error).__name__}: {error})"
    return True, looked


def _reference_issue(where: str, ref: ExternalReference) -> Issue | None:
    if ref.env is not None and not os.environ.get(ref.env):
        return Issue(
            f"{where}.env",
            f"environment variable {ref.env} is not set here",
            "set it wherever the tasks run (and in the shell that runs validate), or fix the name",
        )
    if ref.connection is not None:
        found, looked = connection_exists(ref.connection)
        if not found:
            return Issue(
                f"{where}.connection",
                f"no Airflow connection {ref.connection!r} (looked in {looked})",
                f"create it (`airflow connections add {ref.connection} --conn-uri ...`, airflow_settings.yaml, or "
                f"env {connection_env_var(ref.connection)}) or fix the connection id",
            )
    return None


def reference_issues(source: SourceConfig) -> list[Issue]:
    """Everything a config points at outside itself, checked now (`mallard validate`; never at parse time)."""
    issues = [issue for where, ref in source.secret_references() if (issue := _reference_issue(where, ref))]
    return issues + source.external_issues()
