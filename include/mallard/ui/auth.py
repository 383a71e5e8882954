"""Airflow's login in front of Mallard's pages and of Cosmos's dbt docs view.

Mallard's own routes depend on Airflow's FastAPI security dependencies (`ui/app.py`). Cosmos's
app (mounted at /cosmos through its entry point, not ours to change) gets the same check from a
root middleware that the plugin registers (`fastapi_root_middlewares`): it calls Airflow's own
`get_user` (the `_token` cookie of the UI, or a Bearer token from POST /auth/token) and
`requires_access_dag("GET")`, the check Mallard's routes use. It also switches off the Swagger
and OpenAPI routes FastAPI adds to Cosmos's app, and replaces Cosmos's error bodies, which name
absolute host paths, with a message that says what to do.

Airflow is imported inside the functions: this module is imported wherever the plugin is.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COSMOS_PREFIX = "/cosmos"
# What FastAPI serves on every app unless told not to: off for Cosmos's app.
_FASTAPI_DOC_ROUTES = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
DOCS_MISSING = (
    "The dbt docs have not been generated yet. Fix: run `make manifest` (or `mallard manifest`), which writes "
    "the docs of every model and its lineage, or run the mallard_elt DAG, whose last task adds the columns and types."
)


def wants_html(request: Request) -> bool:
    return request.method in ("GET", "HEAD") and "text/html" in request.headers.get("accept", "")


def _message_page(title: str, text: str, status: int) -> HTMLResponse:
    import html

    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Mallard</title></head>"
        "<body style='font:14px system-ui,sans-serif;margin:2rem;color:#18181b'>"
        f"<h1 style='font-size:18px'>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status)


def refusal(request: Request, status: int, detail: str) -> Response:
    """The answer to a request Airflow's auth refused: the login page for a browser, else 401/403 JSON."""
    if status == 401 and wants_html(request):
        from airflow.api_fastapi.app import get_auth_manager

        return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
    if wants_html(request):
        return _message_page("Not allowed", f"{detail}: you may not see this page.", status)
    return JSONResponse({"detail": detail}, status_code=status)


async def authorize(request: Request) -> None:
    """Raise Airflow's HTTPException (401/403) unless the request's user may read DAGs.

    The same functions, in the same order, as Mallard's route dependencies: `get_user` (Bearer
    first, else the UI's `_token` cookie, as refreshed by Airflow's JWTRefreshMiddleware) and
    `requires_access_dag("GET")`.
    """
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user, requires_access_dag

    credentials = await bearer_scheme(request)
    user = await get_user(request, None, credentials)
    requires_access_dag("GET")(request, user)


def _path_in_app(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class CosmosDocsAuthMiddleware:
    """Root middleware: every request under /cosmos needs an Airflow user who may read DAGs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = _path_in_app(scope)
        if scope["type"] != "http" or not (path == COSMOS_PREFIX or path.startswith(COSMOS_PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        from fastapi import HTTPException

        request = Request(scope, receive)
        try:
            await authorize(request)
        except HTTPException as error:
            await refusal(request, error.status_code, str(error.detail))(scope, receive, send)
            return
        if path[len(COSMOS_PREFIX) :] in _FASTAPI_DOC_ROUTES:
            await JSONResponse({"detail": "Not Found"}, status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, _ErrorBodyFilter(scope, send, request))


class _ErrorBodyFilter:
    """Forwards a response unchanged, except an error's body, which Cosmos fills with host paths."""

    def __init__(self, scope: Scope, send: Send, request: Request) -> None:
        self.scope = scope
        self.send = send
        self.request = request
        self.error_status: int | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            self.error_status = message["status"]
            return
        if self.error_status is None:
            await self.send(message)
            return
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            await self._send_replacement()

    async def _send_replacement(self) -> None:
        status = self.error_status or 500
        missing = status == 404
        text = DOCS_MISSING if missing else "The dbt docs could not be read; the api-server's log says why."
        if self.request.url.path.endswith(".json"):
            response: Response = JSONResponse({"detail": text}, status_code=status)
        else:
            response = _message_page("dbt docs not generated yet" if missing else "dbt docs error", text, status)
        await response(self.scope, _no_body, self.send)


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}
