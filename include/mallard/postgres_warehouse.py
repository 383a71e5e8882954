"""A PostgreSQL server as the warehouse: its credentials from the Airflow connection, checked before use.

The credentials live only in the environment's Airflow connection (for example env
AIRFLOW_CONN_MALLARD_WAREHOUSE_PROD). dlt gets them as a URI; dbt's `postgres` target in
`include/dbt/profiles.yml` reads them from this process's env (`export_for_dbt`), so they are never
a rendered template field, and the password goes in a `DBT_ENV_SECRET_` variable, which dbt masks.
Everything here runs when a task runs, never at DAG parse time.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from include.mallard.warehouse import Warehouse

CONNECT_TIMEOUT_SECONDS = 10
# dbt's `postgres` target reads these (include/dbt/profiles.yml).
DBT_ENV = {
    "host": "MALLARD_POSTGRES_HOST",
    "port": "MALLARD_POSTGRES_PORT",
    "user": "MALLARD_POSTGRES_USER",
    "password": "DBT_ENV_SECRET_MALLARD_POSTGRES_PASSWORD",
    "database": "MALLARD_POSTGRES_DATABASE",
}


class WarehouseUnavailable(RuntimeError):
    """The environment's warehouse cannot be used: no connection, or the server does not answer."""


@dataclass(frozen=True)
class PostgresCredentials:
    host: str
    port: int
    user: str
    password: str
    database: str

    def uri(self) -> str:
        """`postgresql://user:password@host:port/database`, for dlt's `postgres` destination."""
        login = quote(self.user, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")
        return f"postgresql://{login}@{self.host}:{self.port}/{quote(self.database, safe='')}"

    def where(self) -> str:
        return f"{self.host}:{self.port}/{self.database} as {self.user}"


def _fix(warehouse: Warehouse) -> str:
    variable = "AIRFLOW_CONN_" + warehouse.connection_id.upper()
    return (
        f"define Airflow connection `{warehouse.connection_id}` (type postgres: host, port, login, password, and "
        f"the database in `schema`), e.g. env {variable}='postgresql://user:password@host:5432/database'"
    )


def credentials(warehouse: Warehouse) -> PostgresCredentials:
    """The server's credentials from the environment's Airflow connection; WarehouseUnavailable if it is missing."""
    from airflow.sdk import Connection

    try:
        connection = Connection.get(warehouse.connection_id)
    except Exception as error:
        raise WarehouseUnavailable(
            f"{warehouse.describe()}: the connection cannot be read ({type(error).__name__}: {error}). "
            f"Fix: {_fix(warehouse)}."
        ) from None
    missing = [name for name, value in (("host", connection.host), ("schema", connection.schema)) if not value]
    if missing:
        raise WarehouseUnavailable(
            f"{warehouse.describe()}: the connection has no {' or '.join(missing)} (the server and the database). "
            f"Fix: {_fix(warehouse)}."
        )
    return PostgresCredentials(
        host=connection.host,
        port=int(connection.port or 5432),
        user=connection.login or "postgres",
        password=connection.password or "",
        database=connection.schema,
    )


def _open(warehouse: Warehouse, found: PostgresCredentials) -> Any:
    """A psycopg2 connection (10 s timeout); WarehouseUnavailable saying which server and how to fix it."""
    import psycopg2

    try:
        return psycopg2.connect(found.uri(), connect_timeout=CONNECT_TIMEOUT_SECONDS)
    except psycopg2.Error as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WarehouseUnavailable(
            f"{warehouse.describe()}: cannot connect to PostgreSQL at {found.where()}: {reason}. Fix: start the "
            f"server or correct connection `{warehouse.connection_id}` (host, port, login, password, schema)."
        ) from None


def check_reachable(warehouse: Warehouse) -> PostgresCredentials:
    """Connect once so that an unreachable server fails the task saying which and how to fix it."""
    found = credentials(warehouse)
    _open(warehouse, found).close()
    return found


@contextlib.contextmanager
def connect(warehouse: Warehouse) -> Iterator[Any]:
    """An autocommit connection to the server (what the run history writes through), closed on exit."""
    connection = _open(warehouse, credentials(warehouse))
    connection.autocommit = True
    try:
        yield connection
    finally:
        connection.close()


def export_for_dbt(warehouse: Warehouse) -> PostgresCredentials:
    """Put the server's credentials in this process's env for dbt's `postgres` target; day boundaries in UTC."""
    found = check_reachable(warehouse)
    values = {"host": found.host, "port": str(found.port), "user": found.user, "password": found.password}
    os.environ.update({DBT_ENV[name]: value for name, value in {**values, "database": found.database}.items()})
    # libpq sends this as the session's TimeZone: `cast(ts as date)` cuts days in UTC, as on DuckDB.
    os.environ["PGTZ"] = "UTC"
    return found
