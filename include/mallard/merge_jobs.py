"""dlt's merge, with the newest version of a row winning also against the rows already loaded.

An incremental table merges each interval's rows on its primary key, and its cursor (the column
that places a row in an interval) carries dlt's `dedup_sort: desc` hint (sources/hints.py), so
within one load the newest version wins. Across loads dlt replaces a key's row with whatever the
load brings: rerunning or backfilling an earlier interval after a later one brought back the
older version of every row that changed since, and side-by-side backfill runs left whichever
finished last. Here the merge first drops from the staging tables the rows whose key the table
already holds with a *newer* cursor (and their nested rows), then runs dlt's own merge: a row is
replaced by the same or a newer version, never by an older one.

Used by both warehouses' dlt clients (duckdb_destination.py, and `postgres_newest_wins` below).
Import this module only where dlt is already being imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dlt.common.destination.client import PreparedTableSchema
from dlt.common.schema.utils import get_columns_names_with_prop, get_dedup_sort_tuple
from dlt.destinations import postgres as dlt_postgres
from dlt.destinations.impl.postgres.postgres import PostgresClient
from dlt.destinations.job_impl import FollowupJobRequestImpl
from dlt.destinations.sql_client import SqlClientBase
from dlt.destinations.sql_jobs import SqlMergeFollowupJob


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
        statements = [
            f"DELETE FROM {staging} WHERE EXISTS (SELECT 1 FROM {table} AS loaded "
            f"WHERE {same_key} AND loaded.{cursor} > {staging}.{cursor})"
        ]
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


def newest_version_merge_jobs(
    table_chain: Sequence[PreparedTableSchema], sql_client: SqlClientBase[Any]
) -> list[FollowupJobRequestImpl]:
    """What a client's `_create_merge_followup_jobs` returns instead of dlt's plain merge."""
    return [NewestVersionMergeJob.from_table_chain(table_chain, sql_client)]


class NewestVersionPostgresClient(PostgresClient):
    """dlt's PostgreSQL client with `NewestVersionMergeJob` as its merge."""

    def _create_merge_followup_jobs(self, table_chain: Sequence[PreparedTableSchema]) -> list[Any]:
        return newest_version_merge_jobs(table_chain, self.sql_client)


class postgres_newest_wins(dlt_postgres):
    """dlt's `postgres` destination factory with `NewestVersionPostgresClient`."""

    @property
    def client_class(self) -> type[NewestVersionPostgresClient]:
        return NewestVersionPostgresClient
