"""Raw and mart tables of a DuckDB file or a PostgreSQL database, digested so that the two compare row for row."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from pathlib import Path

import duckdb

# What dlt adds per load (ids differ between any two loads by design): the data is the rest.
PER_LOAD_COLUMNS = {"_dlt_load_id", "_dlt_id"}
COMPARED = (
    "(table_schema like 'raw\\_%' escape '\\' and table_name not like '\\_dlt%' escape '\\') or table_schema = 'marts'"
)


def _value(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, float):
        return format(Decimal(repr(value)).normalize(), "f")
    return value if value is None else str(value)


def _digests(execute) -> dict[str, tuple[int, str]]:
    """Rows and an order-independent digest of each raw and mart table, values normalized across engines."""
    found = {}
    tables = execute(f"select table_schema, table_name from information_schema.tables where {COMPARED}")
    for schema, table in tables:
        columns = execute(
            "select column_name from information_schema.columns where table_schema = %s and table_name = %s",
            (schema, table),
        )
        names = sorted(name for (name,) in columns if name not in PER_LOAD_COLUMNS)
        rows = execute(f'select {", ".join(chr(34) + n + chr(34) for n in names)} from "{schema}"."{table}"')
        lines = sorted(repr(tuple(_value(v) for v in row)) for row in rows)
        found[f"{schema}.{table}"] = (len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest())
    return found


def duckdb_digests(path: Path) -> dict[str, tuple[int, str]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return _digests(lambda sql, params=(): connection.execute(sql.replace("%s", "?"), list(params)).fetchall())


def postgres_digests(url: str) -> dict[str, tuple[int, str]]:
    import psycopg2

    with psycopg2.connect(url) as connection, connection.cursor() as cursor:

        def execute(sql: str, params: tuple = ()) -> list[tuple]:
            cursor.execute(sql, params or None)
            return cursor.fetchall()

        return _digests(execute)
