"""Mallard's FastAPI app, mounted by the plugin at /mallard in Airflow's api-server.

Every route depends on Airflow's own security dependencies: `requires_access_dag("GET")` (which
resolves the user with `get_user`: the UI's `_token` cookie or a Bearer token) on the whole app,
and `requires_access_dag("GET", RUN)` on the run pages. An anonymous browser is sent to Airflow's
login page; other clients get Airflow's 401/403. There is no Swagger or OpenAPI route, and an
error page never shows a traceback (FastAPI's default) or a host path (`ui/text.py`).
"""

# No `from __future__ import annotations` here: FastAPI reads the routes' annotations, and the
# names they use (Request, SessionDep) are imported inside create_app, where strings would not resolve.
from typing import TYPE_CHECKING, Annotated

from include.mallard.paths import SOURCES_DIR
from include.mallard.ui.assets_panel import source_assets
from include.mallard.ui.auth import refusal, wants_html
from include.mallard.ui.html import Links, esc, frame
from include.mallard.ui.runs_page import AirflowRun, render_run_page, render_runs_page, runs_in_snapshot
from include.mallard.ui.sources_page import render_sources_page
from include.mallard.ui.tables_page import render_tables_page

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from sqlalchemy.orm import Session

URL_PREFIX = "/mallard"


def _links(request: "Request") -> Links:
    # root_path is Airflow's base path plus our mount point (/mallard): our pages live under it.
    base = request.scope.get("root_path", "").rstrip("/") or URL_PREFIX
    return Links(base=base, airflow=base.removesuffix(URL_PREFIX))


def airflow_runs(session: "Session", keys: list[tuple[str, str]]) -> dict[tuple[str, str], AirflowRun]:
    """Airflow's state and task ids of the runs `keys` (the metadata database, read-only)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select, tuple_

    if not keys:
        return {}
    found = {
        (dag_id, run_id): AirflowRun(state=str(state))
        for dag_id, run_id, state in session.execute(
            select(DagRun.dag_id, DagRun.run_id, DagRun.state).where(tuple_(DagRun.dag_id, DagRun.run_id).in_(keys))
        )
    }
    for dag_id, run_id, task_id in session.execute(
        select(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id).where(
            tuple_(TaskInstance.dag_id, TaskInstance.run_id).in_(keys)
        )
    ):
        found.setdefault((dag_id, run_id), AirflowRun()).task_ids.add(task_id)
    return found


def create_app() -> "FastAPI":
    """The app; called once, in the api-server (plugins/mallard_plugin.py builds it lazily)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.common.db.common import SessionDep
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from fastapi import Depends, FastAPI, HTTPException, Query, Request
    from fastapi.responses import HTMLResponse, RedirectResponse, Response

    app = FastAPI(
        title="Mallard",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        swagger_ui_oauth2_redirect_url=None,
        dependencies=[Depends(requires_access_dag("GET"))],
    )
    may_read_runs = [Depends(requires_access_dag("GET", DagAccessEntity.RUN))]

    @app.exception_handler(HTTPException)
    async def _refused(request: Request, error: HTTPException) -> Response:
        if error.status_code in (401, 403):
            return refusal(request, error.status_code, str(error.detail))
        if wants_html(request):
            body = f"<h1>Not found</h1><p>{esc(error.detail)}</p>"
            return HTMLResponse(frame("Not found", "", _links(request), body), status_code=error.status_code)
        return Response(status_code=error.status_code, content=str(error.detail), media_type="text/plain")

    @app.get("/", include_in_schema=False)
    def index(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{_links(request).base}/sources", status_code=303)

    @app.get("/sources", response_class=HTMLResponse)
    def sources(request: Request, session: SessionDep) -> str:
        # Read on every request: the page shows the configs as they are on disk now.
        return render_sources_page(SOURCES_DIR, _links(request), assets_of=lambda names: source_assets(session, names))

    @app.get("/runs", response_class=HTMLResponse, dependencies=may_read_runs)
    def runs(request: Request, session: SessionDep) -> str:
        return render_runs_page(_links(request), airflow_runs(session, runs_in_snapshot()))

    @app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse, dependencies=may_read_runs)
    def run(request: Request, dag_id: str, run_id: str, session: SessionDep) -> str:
        airflow = airflow_runs(session, [(dag_id, run_id)]).get((dag_id, run_id), AirflowRun())
        page = render_run_page(_links(request), dag_id, run_id, airflow)
        if page is None:
            raise HTTPException(404, f"No run {run_id!r} of DAG {dag_id!r}: pick one on the Runs page.")
        return page

    @app.get("/tables", response_class=HTMLResponse)
    def tables(request: Request) -> str:
        return render_tables_page(_links(request)) or ""

    @app.get("/tables/{schema}/{table}", response_class=HTMLResponse)
    def table(request: Request, schema: str, table: str, page: Annotated[int, Query(ge=1)] = 1) -> str:
        found = render_tables_page(_links(request), schema, table, page)
        if found is None:
            raise HTTPException(
                404, f"{schema}.{table} is not a table dbt builds nor a raw table: pick one from the list."
            )
        return found

    return app
