"""dlt's merge, with the newest version of a row winning also against the rows already loaded.

An incremental table merges each interval's rows on its primary key, and its cursor (the column
that places a row in an interval) carries dlt's `dedup_sort: desc` hint (sources/hints.py), so
within one load the newest version wins. Across loads dlt replaces a key's row with whatever the
load brings: rerunning or backfilling an earlier interval after a later one brought back the
older version of every row that changed since, and side-by-side backfill runs left whichever
finished last. Here the merge first drops from the staging tables the rows whose key the table
already holds with a *newer* cursor (and their nested rows), then runs dlt's own merge: a row is
replaced by the same or a newer version, never by an older one.

The rule reads the cursor as the row's version. With a business date as the cursor, a correction
that moves a row's date earlier is not applied, so the load counts the rows it did not apply and
logs a warning naming the table and the fix (`NewestVersionMergeLoadJob`).

Used by both warehouses' dlt clients (duckdb_destination.py, and `postgres_newest_wins` below).
Import this module only where dlt is already being imported.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from dlt.common.destination.client import LoadJob, PreparedTableSchema
from dlt.common.schema.utils import get_columns_names_with_prop, get_dedup_sort_tuple
from dlt.common.storages import FileStorage
from dlt.destinations import postgres as dlt_postgres
from dlt.destinations.impl.postgres.postgres import PostgresClient
from dlt.destinations.impl.postgres.sql_client import Psycopg2SqlClient
from dlt.destinations.job_client_impl import SqlLoadJob
from dlt.destinations.job_impl import FollowupJobRequestImpl
from dlt.destinations.sql_client import SqlClientBase
from dlt.destinations.sql_jobs import SqlMergeFollowupJob

log = logging.getLogger(__name__)
# Starts the statement whose result is the number of staged rows older than the table's.
OLDER_VERSIONS_MARK = "/* mallard: older versions dropped */"


class NewestVersionMergeJob(SqlMergeFollowupJob):
    """dlt's delete-insert merge, after dropping the staged rows that are older than the table's."""

    @classmethod
    def gen_merge_sql(cls, table_chain: Sequence[PreparedTableSchema], sql_client: SqlClientBase[Any]) -> list[str]:
        return cls.older_versions_dropped(table_chain, sql_client) + super().gen_merge_sql(table_chain, sql_client)

    @classmethod
    def older_versions_dropped(
        cls, table_chain: Sequence[PreparedTableSchema], sql_client: SqlClientBase[Any]
    ) -> list[str]:
        """The statements that remove from staging each row the table holds a newer version of."""
        root = table_chain[0]
        sort = get_dedup_sort_tuple(root)
        keys = get_columns_names_with_prop(root, "primary_key")
        if sort is None or sort[1] != "desc" or not keys:
            return []
        escape = sql_client.escape_column_name
        table, staging = sql_client.get_qualified_table_names(root["name"])
        same_key = " AND ".join(f"loaded.{escape(key)} = {staging}.{escape(key)}" for key in keys)
        cursor = escape(sort[0])
        delete = (
            f"DELETE FROM {staging} WHERE EXISTS (SELECT 1 FROM {table} AS loaded "
            f"WHERE {same_key} AND loaded.{cursor} > {staging}.{cursor})"
        )
        # DuckDB's DELETE returns its count; PostgreSQL's returns rows only through RETURNING.
        if isinstance(sql_client, Psycopg2SqlClient):
            delete = f"WITH dropped AS ({delete} RETURNING 1) SELECT count(*) FROM dropped"
        statements = [f"{OLDER_VERSIONS_MARK} {delete}"]
        if len(table_chain) > 1:
            dataset, staging_dataset = (
                sql_client.fully_qualified_dataset_name(),
                sql_client.fully_qualified_dataset_name(staging=True),
            )
            row_key = escape(cls.get_row_key_col(table_chain, root, dataset, staging_dataset))
            for nested in table_chain[1:]:
                root_key = escape(cls.get_root_key_col(table_chain, nested, dataset, staging_dataset))
                _, nested_staging = sql_client.get_qualified_table_names(nested["name"])
                statements.append(
                    f"DELETE FROM {nested_staging} WHERE {root_key} NOT IN (SELECT {row_key} FROM {staging})"
                )
        return statements


class NewestVersionMergeLoadJob(SqlLoadJob):
    """Runs a merge's SQL (one transaction, as dlt's), warning when it left staged rows unapplied."""

    def run(self) -> None:
        self._sql_client = self._job_client.sql_client
        with FileStorage.open_zipsafe_ro(self._file_path, "r", encoding="utf-8") as f:
            sql = f.read()
        with self.maybe_transaction(sql):
            for statement in self._split_fragments(sql):
                result = self._sql_client.execute_sql(statement)
                if statement.startswith(OLDER_VERSIONS_MARK) and result and result[0][0]:
                    self._warn_not_applied(int(result[0][0]))

    def _warn_not_applied(self, rows: int) -> None:
        sort = get_dedup_sort_tuple(self._job_client.prepare_load_table(self.load_table_name))
        cursor = sort[0] if sort else "cursor"
        log.warning(
            "%s.%s: %d row(s) of this load were not applied: the table holds a newer version of their key "
            "(a later %s). Expected when an earlier interval is reprocessed after later ones. If a correction "
            "moved a row's %s earlier, delete that row from the table and reprocess the interval "
            "(docs/sources.md, incremental tables).",
            self._job_client.config.normalize_dataset_name(self._job_client.schema),  # not the staging one
            self.load_table_name,
            rows,
            cursor,
            cursor,
        )


def newest_version_merge_load_job(table: PreparedTableSchema, file_path: str) -> LoadJob | None:
    """The job for a merge's SQL file (written by `NewestVersionMergeJob`), else None."""
    if SqlLoadJob.is_sql_job(file_path) and table.get("write_disposition") == "merge":
        return NewestVersionMergeLoadJob(file_path)
    return None


def newest_version_merge_jobs(
    table_chain: Sequence[PreparedTableSchema], sql_client: SqlClientBase[Any]
) -> list[FollowupJobRequestImpl]:
    """What a client's `_create_merge_followup_jobs` returns instead of dlt's plain merge."""
    return [NewestVersionMergeJob.from_table_chain(table_chain, sql_client)]


class NewestVersionPostgresClient(PostgresClient):
    """dlt's PostgreSQL client with `NewestVersionMergeJob` as its merge."""

    def _create_merge_followup_jobs(self, table_chain: Sequence[PreparedTableSchema]) -> list[Any]:
        return newest_version_merge_jobs(table_chain, self.sql_client)

    def create_load_job(
        self, table: PreparedTableSchema, file_path: str, load_id: str, restore: bool = False
    ) -> LoadJob:
        return newest_version_merge_load_job(table, file_path) or super().create_load_job(
            table, file_path, load_id, restore
        )


class postgres_newest_wins(dlt_postgres):
    """dlt's `postgres` destination factory with `NewestVersionPostgresClient`."""

    @property
    def client_class(self) -> type[NewestVersionPostgresClient]:
        return NewestVersionPostgresClient
