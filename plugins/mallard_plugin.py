"""Airflow UI plugin: a Browse > Mallard sources page listing the source configs (or their errors).

The dbt docs view (Browse > Mallard dbt docs) comes from Cosmos's own plugin, configured by
AIRFLOW__COSMOS__DBT_DOCS_PROJECTS (scripts/env.sh, Dockerfile).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from include.mallard.paths import SOURCES_DIR
from include.mallard.ui import render_sources_page


def create_app() -> FastAPI:
    """The FastAPI app mounted at /mallard in the API server."""
    app = FastAPI(title="Mallard")

    @app.get("/sources", response_class=HTMLResponse)
    def sources() -> str:
        # Read on every request: the page shows the configs as they are on disk now.
        return render_sources_page(SOURCES_DIR)

    return app


class MallardPlugin(AirflowPlugin):
    name = "mallard"
    fastapi_apps = [{"name": "mallard", "app": create_app(), "url_prefix": "/mallard"}]
    external_views = [{"name": "Mallard sources", "category": "Browse", "href": "/mallard/sources"}]
