"""`kind: sql_database`: tables of a SQL database, read with dlt's `sql_table` (SQLAlchemy, chunked).

An incremental table's interval becomes a WHERE clause (start <= cursor < end), so each run
reads only its slice from the database. A DATE cursor gets date bounds (the days whose midnight
falls in the interval). SQLite keeps dates as text, where comparing '2024-01-02 00:00:00' with
SQLAlchemy's '2024-01-02 00:00:00.000000' is wrong at the boundary, so there the comparison goes
through julianday().
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from dlt.common.libs.sql_alchemy import sa
from dlt.extract import DltResource
from dlt.sources.sql_database import sql_table

from include.mallard.config import SqlDatabaseSource, SqlTable
from include.mallard.interval import Interval
from include.mallard.secrets import resolve_sql_url
from include.mallard.sources.hints import apply_table_hints


def _is_date_only(column_type: Any) -> bool:
    return isinstance(column_type, sa.Date) and not isinstance(column_type, sa.DateTime)


def _sqlite_bound(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _sqlite_interval_query(query: Any, table: Any, incremental: Any = None, engine: Any = None) -> Any:
    """On SQLite, compare the cursor as a time (julianday), not as text."""
    if incremental is None or engine is None or engine.dialect.name != "sqlite":
        return query
    column = table.c[incremental.get_cursor_column_name()]
    start, end = incremental.get_current_range()
    condition = sa.func.julianday(column) >= sa.func.julianday(_sqlite_bound(start))
    if end is not None:
        condition = sa.and_(condition, sa.func.julianday(column) < sa.func.julianday(_sqlite_bound(end)))
    if incremental.on_cursor_value_missing == "include":  # as dlt's own query: `on_null_cursor` decides
        # Text SQLite cannot read as a time ('' too) has no julianday: dlt then reports the value.
        condition = sa.or_(condition, column.is_(None), sa.func.julianday(column).is_(None))
    return table.select().where(condition)


def _column_types(engine: sa.engine.Engine, table: SqlTable, schema: str | None) -> dict[str, Any]:
    try:
        columns = sa.inspect(engine).get_columns(table.name, schema=schema)
    except sa.exc.NoSuchTableError as error:
        where = f"{schema}.{table.name}" if schema else table.name
        raise LookupError(f"table {where!r} does not exist in the database") from error
    return {column["name"]: column["type"] for column in columns}


def build(config: SqlDatabaseSource, interval: Interval) -> list[DltResource]:
    """One `sql_table` resource per configured table."""
    engine = sa.create_engine(resolve_sql_url(config.credentials))
    resources = []
    for table in config.tables:
        as_dates = False
        if table.cursor:
            types = _column_types(engine, table, config.db_schema)
            if table.cursor not in types:
                raise LookupError(
                    f"table {table.name!r} has no cursor column {table.cursor!r}; it has: {sorted(types)}"
                )
            as_dates = _is_date_only(types[table.cursor])
        resource = sql_table(
            credentials=engine,
            table=table.name,
            schema=config.db_schema,
            backend=config.backend,
            chunk_size=config.chunk_size,
            included_columns=table.columns or None,
            query_adapter_callback=_sqlite_interval_query if engine.dialect.name == "sqlite" else None,
        )
        resources.append(
            apply_table_hints(
                resource, config.settings_of(table), cursor=table.cursor, interval=interval, as_dates=as_dates
            )
        )
    return resources
