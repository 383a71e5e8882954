"""Airflow UI plugin: the Mallard pages (Sources, Runs, Tables) and Airflow's login in front of them
and of Cosmos's dbt docs view.

- The FastAPI app of include/mallard/ui/app.py is mounted at /mallard; every route requires an
  Airflow user (Airflow's own security dependencies).
- An external view puts the pages in the Airflow UI's navigation ("Mallard", shown inside the UI
  at /plugin/mallard), and a tab "Mallard" on every DAG run shows that run's summary.
- A root middleware (`fastapi_root_middlewares`) puts the same check in front of Cosmos's app at
  /cosmos (the dbt docs view, Browse > Mallard dbt docs, configured by
  AIRFLOW__COSMOS__DBT_DOCS_PROJECTS in scripts/env.sh and the Dockerfile), which Cosmos
  registers through its own entry point without any.

- A listener (include/mallard/worker_preload.py) imports dlt, dbt and Mallard's modules into the scheduler before the
  LocalExecutor forks the processes that run tasks, so each task starts with them imported.

Every Airflow process imports plugins (task processes for listeners and macros), but only the
api-server serves the apps: the app is built on first access of `fastapi_apps`, so the other
processes never import Airflow's FastAPI security module.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from include.mallard import worker_preload
from include.mallard.ui.html import ICON

URL_PREFIX = "/mallard"
log = logging.getLogger(__name__)


@cache
def _apps() -> list[dict[str, Any]]:
    # A broken Mallard app must not take down Airflow's api-server: log it, serve no /mallard (a 404,
    # never an open route). The Cosmos middleware below has no such guard: it fails closed.
    try:
        from include.mallard.ui.app import create_app

        return [{"name": "mallard", "app": create_app(), "url_prefix": URL_PREFIX}]
    except Exception:
        log.exception("The Mallard UI app could not be built; /mallard is not served")
        return []


def _cosmos_auth() -> Any:
    from include.mallard.ui.auth import CosmosDocsAuthMiddleware

    return CosmosDocsAuthMiddleware


class MallardPlugin(AirflowPlugin):
    name = "mallard"
    # In the scheduler: imports dlt and dbt before the LocalExecutor forks its task processes.
    listeners = [worker_preload]
    external_views = [
        {
            "name": "Mallard",
            "href": f"{URL_PREFIX}/sources",
            "url_route": "mallard",
            "icon": ICON,
            "destination": "nav",
            "nav_top_level": True,
        },
        {
            "name": "Mallard run",
            "href": f"{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}",
            "url_route": "mallard-run",
            "icon": ICON,
            "destination": "dag_run",
        },
    ]

    @property  # type: ignore[override]
    def fastapi_apps(self) -> list[dict[str, Any]]:
        return _apps()

    @property  # type: ignore[override]
    def fastapi_root_middlewares(self) -> list[dict[str, Any]]:
        return [{"name": "mallard_cosmos_auth", "middleware": _cosmos_auth()}]
