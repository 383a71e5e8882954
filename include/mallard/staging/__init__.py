"""Generate a source's dbt layer from what dlt loaded: `_<source>__sources.yml` and one staging model per table.

The input is dlt's own schema, stored with every load in `raw_<source>._dlt_version` (newest row):
tables, columns, data types, descriptions, primary keys, incremental cursors and the parent-child
links of nested data. The output goes to `<dbt project>/models/staging/<source>/`.

- `schema`: dlt's schema dict -> `Table`s and `Column`s, typed by dlt's own DuckDB type mapper.
- `render`: the model SQL, its YAML and the sources YAML (pure).
- `ownership`: the marker line that keeps generated files Mallard's until a user edits them.
- `sync`: plan which files to create, update, remove or leave alone, then apply the plan.
- `generate`: the warehouse side, the manifest rebuild and the `mallard staging` command.

Rules for dlt's own columns, applied to every model:
- `_dlt_load_id` (the load that wrote the row) is kept: downstream incremental models filter on it.
- `_dlt_parent_id`, `_dlt_root_id`, `_dlt_list_idx` of nested (child) tables are kept: join keys.
- `_dlt_id` is kept where something needs it: a table with child tables (they join to it) or a
  table without a primary key (it is the only row key). Elsewhere it is dropped.
- They keep their dlt names and come last, in a `dlt` group.

Nothing here imports dlt, dbt or duckdb at module level: the package is safe to import at DAG
parse time.
"""

from include.mallard.staging.generate import (
    config_facts,
    generate_and_rebuild,
    generate_staging,
    loaded_sources,
    read_dlt_schema,
    run_command,
)
from include.mallard.staging.ownership import file_state
from include.mallard.staging.render import DEFAULT_FRESHNESS
from include.mallard.staging.schema import Column, Table, tables_from_dlt_schema
from include.mallard.staging.sync import StagingError, StagingResult, sync_staging

__all__ = [
    "DEFAULT_FRESHNESS",
    "Column",
    "StagingError",
    "StagingResult",
    "Table",
    "config_facts",
    "file_state",
    "generate_and_rebuild",
    "generate_staging",
    "loaded_sources",
    "read_dlt_schema",
    "run_command",
    "sync_staging",
    "tables_from_dlt_schema",
]
