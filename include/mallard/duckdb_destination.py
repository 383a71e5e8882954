"""dlt's DuckDB destination with a full refresh that writes each table once.

dlt's atomic full refresh (`insert-from-staging`) loads a `replace` table into the staging schema
and then copies it into the dataset (`DELETE`, `INSERT ... SELECT`) in one transaction: every
row is written twice, and the staging copy stays in the file until the next load. DuckDB cannot
clone a table or move it across schemas, but it can drop and rename tables inside one schema in
one transaction. So here a `replace` table loads into `<table>~swap` beside it (created empty
with the table's columns and NOT NULL constraints once the schema is migrated, before any file
is copied), and a follow-up job swaps it in: `DROP TABLE <table>; ALTER TABLE "<table>~swap"
RENAME TO <table>` in one transaction. A failed load never reaches the swap, so readers keep
the previous table whole; the next load starts a new swap table. Append is dlt's; merge is dlt's
after the staged rows older than the table's are dropped (merge_jobs.py).

The client also sizes DuckDB's `memory_limit` for the load from the widest table it loads
(`memory_limit_for`), unless MALLARD_DUCKDB_MEMORY_LIMIT sets it: DuckDB keeps the blocks a load
writes in its buffer pool up to the limit, so a load's memory grew with its rows up to a fixed
256MB; an insert's working memory grows with the table's columns, not its rows.

Import this module only where dlt is already being imported (it loads dlt's DuckDB client).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any

from dlt.common.destination.client import LoadJob, PreparedTableSchema
from dlt.common.destination.exceptions import DestinationTerminalException
from dlt.common.destination.reference import DestinationReference
from dlt.common.schema import Schema
from dlt.common.schema.utils import get_nested_tables, has_table_seen_data
from dlt.common.storages import FileStorage
from dlt.common.storages.load_storage import ParsedLoadJobFileName
from dlt.destinations import duckdb as dlt_duckdb
from dlt.destinations.impl.duckdb.duck import DuckDbClient, DuckDbCopyJob
from dlt.destinations.job_client_impl import SqlLoadJob
from dlt.destinations.job_impl import FollowupJobRequestImpl
from dlt.destinations.sql_client import SqlClientBase
from dlt.destinations.sql_jobs import SqlFollowupJob

from include.mallard.merge_jobs import newest_version_merge_jobs, newest_version_merge_load_job
from include.mallard.warehouse import FULL_REFRESH_SWAP_SUFFIX

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# An insert buffers a row group per column per DuckDB thread, so the limit follows the widest
# table (bench/load_memory.py, 2 cores): 20 tables of 50 columns get 150 MiB (60 s; 45 s at 4GB)
# and 300 columns 900 MiB (40 s; 20 s at 4GB); both ran out of the fixed 256MB used before.
MEMORY_PER_COLUMN_PER_THREAD = 1.5 * MIB
MEMORY_LIMIT_FLOOR = 64 * MIB  # flat from 100k to 5M rows for a narrow table (bench/scale.py)
SHARE_OF_RAM_AT_MOST = 0.8  # DuckDB's own default limit

# Load file formats DuckDB copies with one `INSERT ... SELECT` from a reader function.
_READERS = {
    "parquet": "read_parquet('{path}', union_by_name=true)",
    "jsonl": "read_json('{path}')",
    "typed-jsonl": "read_json('{path}')",
}


def memory_limit_for(widest_columns: int, threads: int, ram_bytes: int) -> str:
    """DuckDB's `memory_limit` for a load whose widest table has `widest_columns` columns (dlt's included)."""
    wanted = max(widest_columns * threads * MEMORY_PER_COLUMN_PER_THREAD, MEMORY_LIMIT_FLOOR)
    return f"{int(min(wanted, ram_bytes * SHARE_OF_RAM_AT_MOST)) // MIB}MiB"


def machine_ram_bytes() -> int:
    """This machine's physical memory (what DuckDB's default limit is a share of)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def widest_table_columns(schema: Schema) -> int:
    """The most columns of any table `schema` loads (nested tables included, dlt's own tables not)."""
    return max((len(table.get("columns", {})) for table in schema.data_tables(include_incomplete=True)), default=0)


class LoadOutOfMemory(MemoryError):
    """DuckDB ran out of the load's `memory_limit`; the load package is kept for the retry."""


def out_of_memory(source_name: str, error: BaseException, env_var: str) -> LoadOutOfMemory | None:
    """A readable error for `error` if DuckDB ran out of its `memory_limit` in the load, else None."""
    cause: BaseException | None = error
    while cause is not None and "Out of Memory Error" not in (said := str(cause).partition("\n")[0]):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    limit = os.environ.get(env_var)
    chosen = f"{env_var}={limit}" if limit else "sized by Mallard from the widest table's columns"
    return LoadOutOfMemory(
        f"source {source_name!r}: DuckDB ran out of memory loading into the warehouse "
        f"({said}; memory_limit {chosen}). The extracted rows are kept: "
        f"set {env_var} higher (e.g. 1GB) for the load task and clear it to load them."
    )


def swap_table_name(table_name: str) -> str:
    """The table a full refresh of `table_name` loads into before it is swapped in."""
    return f"{table_name}{FULL_REFRESH_SWAP_SUFFIX}"


class SwapTableCopyJob(DuckDbCopyJob):
    """Copies one load file of a `replace` table into its swap table."""

    def run(self) -> None:
        self._sql_client = self._job_client.sql_client
        target = self._sql_client.make_qualified_table_name(swap_table_name(self.load_table_name))
        file_format = ParsedLoadJobFileName.parse(self._file_path).file_format
        self._sql_client.execute_sql(
            f"INSERT INTO {target} BY NAME SELECT * FROM {_READERS[file_format].format(path=self._file_path)}"
        )


class SwapInFollowupJob(SqlFollowupJob):
    """The SQL that replaces each table of a chain with its swap table (run by `SwapInJob`)."""

    @classmethod
    def generate_sql(cls, table_chain: Sequence[PreparedTableSchema], sql_client: SqlClientBase[Any]) -> list[str]:
        statements = []
        for table in table_chain:
            swap = sql_client.make_qualified_table_name(swap_table_name(table["name"]))
            statements.append(f"DROP TABLE IF EXISTS {sql_client.make_qualified_table_name(table['name'])}")
            statements.append(f"ALTER TABLE {swap} RENAME TO {sql_client.escape_column_name(table['name'])}")
        return statements


class SwapInJob(SqlLoadJob):
    """Runs a chain's swap in one transaction, once: a retry after it committed changes nothing.

    A load killed between the commit and dlt marking the job done runs it again on the retry;
    the root's swap table is gone by then (all of the chain's are renamed together), and running
    the `DROP` again would drop the new table.

    The same transaction empties the root's nested tables that this load has no table for: a
    run whose rows all lack a nested list (`lines` missing, not `[]`) gives dlt no `orders__lines`
    at all (Mallard's schema starts fresh each run), so that table would keep the previous
    version's rows, pointing at parents that are gone.
    """

    def run(self) -> None:
        self._sql_client = self._job_client.sql_client
        with FileStorage.open_zipsafe_ro(self._file_path, "r", encoding="utf-8") as f:
            statements = self._split_fragments(f.read())
        root = self.load_table_name
        with self._sql_client.begin_transaction():
            pending = self._sql_client.execute_sql(
                "select count(*) from duckdb_tables() where database_name = current_database() "
                "and schema_name = %s and table_name = %s",
                self._sql_client.dataset_name,
                swap_table_name(root),
            )
            if not pending[0][0]:
                log.warning("%s is already swapped in (an earlier try of this job committed)", root)
                return
            self._sql_client.execute_many(statements)
            for stale in self._nested_tables_not_loaded(root):
                log.warning("Emptying %s: this full refresh of %s has no rows for it", stale, root)
                self._sql_client.execute_sql(f"DELETE FROM {self._sql_client.make_qualified_table_name(stale)}")

    def _nested_tables_not_loaded(self, root: str) -> list[str]:
        """The root's nested tables in the dataset (named `<root>__...`, with dlt's parent key) outside this load."""
        loaded = {t["name"] for t in get_nested_tables(self._job_client.schema.tables, root) if has_table_seen_data(t)}
        rows = self._sql_client.execute_sql(
            "select table_name from duckdb_columns() where database_name = current_database() and schema_name = %s "
            "and column_name = %s and starts_with(table_name, %s) order by table_name",
            self._sql_client.dataset_name,
            self._job_client.schema.naming.normalize_identifier("_dlt_parent_id"),  # dlt's parent key
            f"{root}__",
        )
        return [name for (name,) in rows if name not in loaded and not name.endswith(FULL_REFRESH_SWAP_SUFFIX)]


class SwapReplaceDuckDbClient(DuckDbClient):
    """dlt's DuckDB client, with `replace` tables loaded beside the table and swapped in.

    Its connections get a `memory_limit` sized for the schema's widest table, unless the
    credentials set one (MALLARD_DUCKDB_MEMORY_LIMIT).
    """

    def __init__(self, schema: Schema, config: Any, capabilities: Any) -> None:
        super().__init__(schema, config, capabilities)
        if "memory_limit" not in (config.credentials.global_config or {}):
            limit = memory_limit_for(widest_table_columns(schema), os.cpu_count() or 1, machine_ram_bytes())
            self.sql_client._global_config["memory_limit"] = limit  # dlt's hook for subclasses

    def _swaps(self, table_name: str) -> bool:
        table = self.prepare_load_table(table_name)
        return table["write_disposition"] == "replace" and table.get("x-replace-strategy") != "truncate-and-insert"

    def should_load_data_to_staging_dataset(self, table_name: str) -> bool:
        return not self._swaps(table_name) and super().should_load_data_to_staging_dataset(table_name)

    def should_truncate_table_before_load(self, table_name: str) -> bool:
        # dlt calls `initialize_storage(truncate_tables=...)` once per load package with these,
        # after the schema migration and before any copy job: where the swap tables start empty.
        return self._swaps(table_name) or super().should_truncate_table_before_load(table_name)

    def initialize_storage(self, truncate_tables: Iterable[str] | None = None) -> None:
        if not truncate_tables or self.in_staging_dataset_mode:
            super().initialize_storage(truncate_tables)
            return
        tables = list(truncate_tables)
        swapped = [name for name in tables if self._swaps(name)]
        others = [name for name in tables if name not in swapped]
        if others:
            super().initialize_storage(others)
        for name in swapped:
            self._create_empty_swap_table(name)

    def _create_empty_swap_table(self, table_name: str) -> None:
        sql = self.sql_client
        table = sql.make_qualified_table_name(table_name)
        swap = sql.make_qualified_table_name(swap_table_name(table_name))
        # `AS ... LIMIT 0` keeps the columns, their order and types; NOT NULL is set again below.
        statements = [f"CREATE OR REPLACE TABLE {swap} AS SELECT * FROM {table} LIMIT 0"]
        required = sql.execute_sql(
            "select column_name from duckdb_columns() where database_name = current_database() "
            "and schema_name = %s and table_name = %s and not is_nullable order by column_index",
            sql.dataset_name,
            table_name,
        )
        statements += [f"ALTER TABLE {swap} ALTER COLUMN {sql.escape_column_name(c)} SET NOT NULL" for (c,) in required]
        # dlt's `insert-from-staging`, used before, left a whole copy of the table in the staging schema.
        with sql.with_staging_dataset():
            statements.append(f"DROP TABLE IF EXISTS {sql.make_qualified_table_name(table_name)}")
        sql.execute_many(statements)

    def create_load_job(
        self, table: PreparedTableSchema, file_path: str, load_id: str, restore: bool = False
    ) -> LoadJob:
        if merge_job := newest_version_merge_load_job(table, file_path):
            return merge_job
        job = super().create_load_job(table, file_path, load_id, restore)
        if self.in_staging_dataset_mode or not self._swaps(table["name"]):
            return job
        if SqlLoadJob.is_sql_job(file_path):  # the chain's swap, written by `SwapInFollowupJob`
            return SwapInJob(file_path)
        file_format = ParsedLoadJobFileName.parse(file_path).file_format
        if file_format not in _READERS:
            # Anything else would load into the table itself, which the swap then drops.
            raise DestinationTerminalException(
                f"full refresh of {table['name']} on DuckDB loads {', '.join(_READERS)} files, not "
                f"{file_format} ({file_path}): leave the resource's file format to Mallard (Parquet)"
            )
        return SwapTableCopyJob(file_path)

    def _create_merge_followup_jobs(self, table_chain: Sequence[PreparedTableSchema]) -> list[FollowupJobRequestImpl]:
        return newest_version_merge_jobs(table_chain, self.sql_client)  # an older version never replaces a row

    def _create_replace_followup_jobs(self, table_chain: Sequence[PreparedTableSchema]) -> list[FollowupJobRequestImpl]:
        if not self._swaps(table_chain[0]["name"]):
            return super()._create_replace_followup_jobs(table_chain)  # type: ignore[return-value]
        return [SwapInFollowupJob.from_table_chain(table_chain, self.sql_client)]


class duckdb_swapping_full_refresh(dlt_duckdb):
    """dlt's `duckdb` destination factory with `SwapReplaceDuckDbClient`; dlt still sees a `duckdb` destination."""

    @property
    def client_class(self) -> type[SwapReplaceDuckDbClient]:
        return SwapReplaceDuckDbClient

    @property
    def destination_type(self) -> str:
        return DestinationReference.normalize_type("duckdb")
