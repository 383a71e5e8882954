"""Environments (`environments:` in mallard.yml): which warehouse a deployment writes, chosen by MALLARD_ENV.

Each environment names a warehouse kind, the Airflow connection holding its credentials (never
the YAML), and the dbt target of `include/dbt/profiles.yml` that points at the same warehouse;
its writers share the pool `mallard_<kind>`. Without an `environments:` section there is one, `dev`: the
embedded DuckDB file, so a fresh clone behaves as it always has.

Nothing here reads a connection or opens a warehouse: it runs at DAG parse time.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field

from include.mallard.config.base import StrictModel

ENVIRONMENT_ENV = "MALLARD_ENV"
DEFAULT_ENVIRONMENT = "dev"
DEFAULT_CONNECTION_ID = "mallard_warehouse"

WarehouseKind = Literal["duckdb", "postgres"]


class EnvironmentSettings(StrictModel):
    """One environment: `environments.<name>` in mallard.yml."""

    warehouse: WarehouseKind = Field(
        "duckdb",
        description=(
            "`duckdb`: the embedded file (env MALLARD_WAREHOUSE_PATH, default warehouse/mallard.duckdb). "
            "`postgres`: a PostgreSQL server; dlt's `postgres` destination and dbt-postgres write it."
        ),
    )
    connection: str = Field(
        DEFAULT_CONNECTION_ID,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description=(
            "The Airflow connection with the warehouse's credentials (for postgres: host, port, login, password "
            "and the database in `schema`), e.g. from env AIRFLOW_CONN_<ID>."
        ),
    )
    dbt_target: str | None = Field(
        None,
        min_length=1,
        description="The target in include/dbt/profiles.yml for this warehouse; default: the warehouse kind.",
    )

    @property
    def target(self) -> str:
        """The dbt target that points at this environment's warehouse."""
        return self.dbt_target or self.warehouse

    @property
    def pool(self) -> str:
        """The Airflow pool of the tasks that write this warehouse: `mallard_duckdb` or `mallard_postgres`.

        Its size is Airflow's own setting (airflow_settings.yaml, Admin > Pools): 1 for DuckDB,
        which lets one process write its file at a time; what the server takes for a server.
        """
        return f"mallard_{self.warehouse}"


def default_environments() -> dict[str, EnvironmentSettings]:
    return {DEFAULT_ENVIRONMENT: EnvironmentSettings()}


def selected_environment_name() -> str:
    """The environment this process runs in: env MALLARD_ENV, else `dev`."""
    return os.environ.get(ENVIRONMENT_ENV, "").strip() or DEFAULT_ENVIRONMENT
