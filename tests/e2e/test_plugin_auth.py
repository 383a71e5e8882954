"""Every route the plugins add to a real api-server is behind Airflow's login.

A local stack (scripts/airflow_stack.py) on a temporary home, with the dbt docs written the way
`mallard manifest` writes them. The routes are listed by walking the FastAPI apps that Airflow's
plugin manager collects with the stack's environment, in a process of their own: Mallard's app
(plugins/) and Cosmos's app as registered through its entry point, FastAPI's default Swagger and
OpenAPI routes included. For each route:

- anonymous, invalid-token and API requests are refused (401/403), and an anonymous browser is
  sent to Airflow's login page;
- with a Bearer token from POST /auth/token (and, for pages, the UI's `_token` cookie) it answers
  200, or 404 for a route given an id that does not exist; Cosmos's Swagger/OpenAPI are off (404);
- no answer shows an absolute host path or a traceback.

    source scripts/env.sh && .venv/bin/python -m pytest tests/e2e/test_plugin_auth.py -s
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from include.mallard.dbt_docs import write_docs_without_catalog
from include.mallard.paths import DBT_PROJECT_DIR, PROJECT_ROOT
from include.mallard.ui.auth import DOCS_MISSING
from scripts.airflow_stack import AirflowStack, stack_env
from tests.e2e.airflow_api import isolated_stack

pytestmark = pytest.mark.e2e

DOCS_SLUG, MISSING_SLUG = "mallard", "missing"
# FastAPI's documentation routes: Mallard's app has none, Cosmos's are switched off by the middleware.
SWAGGER_PATHS = {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
LIST_ROUTES = """
import json
from airflow import plugins_manager
apps, middlewares = plugins_manager.get_fastapi_plugins()
routes = []
for entry in apps:
    for route in entry["app"].routes:
        methods = sorted(getattr(route, "methods", None) or ["GET"])
        routes.append([entry["name"], entry["url_prefix"], route.path, methods])
print("ROUTES " + json.dumps({"routes": routes, "middlewares": [m["name"] for m in middlewares]}))
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    root = tmp_path_factory.mktemp("plugin-auth")
    docs_dir = write_docs_without_catalog(DBT_PROJECT_DIR, root / "dbt_docs")
    (root / "no_docs").mkdir()
    projects = {
        DOCS_SLUG: {"dir": str(docs_dir), "index": "index.html", "name": "Mallard dbt docs"},
        MISSING_SLUG: {"dir": str(root / "no_docs"), "index": "index.html"},
    }
    extra_env = {"MALLARD_DBT_DOCS_DIR": str(docs_dir), "AIRFLOW__COSMOS__DBT_DOCS_PROJECTS": json.dumps(projects)}
    with isolated_stack(root, extra_env) as running:
        yield running


@pytest.fixture(scope="module")
def registered(stack: AirflowStack) -> dict:
    """The routes the plugins register, as Airflow's plugin manager collects them with the stack's env."""
    env = stack_env(stack.config)
    result = subprocess.run(
        [sys.executable, "-c", LIST_ROUTES], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("ROUTES "))
    return json.loads(line.removeprefix("ROUTES "))


@pytest.fixture(scope="module")
def token(stack: AirflowStack) -> str:
    body = {"username": stack.config.username, "password": stack.config.password}
    response = httpx.post(f"{stack.config.url}/auth/token", json=body, timeout=30)
    response.raise_for_status()
    return response.json()["access_token"]


def _url(prefix: str, path: str) -> str:
    # A parameterised route gets ids that do not exist: the answer must be 404, after the auth check.
    return prefix + re.sub(r"\{(\w+)(:\w+)?\}", lambda m: f"no_such_{m.group(1)}", path)


def _assert_clean(response: httpx.Response, stack_root: Path) -> None:
    text = response.text
    for secret in (str(PROJECT_ROOT), str(stack_root), "Traceback"):
        assert secret not in text, f"{response.request.url} shows {secret!r}: {text[:500]}"


def test_the_plugins_register_mallard_and_cosmos_and_the_middleware(stack, registered, token):
    prefixes = {(name, prefix) for name, prefix, _, _ in registered["routes"]}
    assert prefixes == {("mallard", "/mallard"), ("cosmos", "/cosmos")}
    assert registered["middlewares"] == ["mallard_cosmos_auth"]
    paths = {(prefix, path) for _, prefix, path, _ in registered["routes"]}
    assert ("/mallard", "/sources") in paths and ("/cosmos", f"/{DOCS_SLUG}/dbt_docs_index.html") in paths
    assert ("/cosmos", "/openapi.json") in paths, "Cosmos's app registers FastAPI's docs: the middleware turns them off"
    assert not {path for prefix, path in paths if prefix == "/mallard"} & SWAGGER_PATHS
    # The api-server loaded the same plugins.
    plugins = httpx.get(
        f"{stack.config.url}/api/v2/plugins", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ).json()["plugins"]
    served = {(app["name"], app["url_prefix"]) for plugin in plugins for app in plugin["fastapi_apps"]}
    assert served == prefixes


def test_anonymous_and_invalid_requests_to_every_route_are_refused(stack, registered):
    base, refused = stack.config.url, []
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as client:
        for _, prefix, path, methods in registered["routes"]:
            url = _url(prefix, path)
            for method in methods:
                api = client.request(method, url, headers={"Accept": "application/json"})
                bad_token = client.request(method, url, headers={"Authorization": "Bearer not-a-jwt"})
                bad_cookie = client.request(method, url, cookies={"_token": "not-a-jwt"})
                browser = client.request(method, url, headers={"Accept": "text/html"})
                for response in (api, bad_token, bad_cookie):
                    if response.status_code not in (401, 403):
                        refused.append(f"{method} {url}: {response.status_code} {response.text[:200]}")
                    _assert_clean(response, stack.config.airflow_home.parent)
                to_login = browser.status_code in (302, 303, 307) and "/auth/login" in browser.headers["location"]
                if method == "GET" and not to_login:
                    refused.append(f"browser GET {url}: {browser.status_code}, not the login page")
    print(f"\n{len(registered['routes'])} routes refused anonymous, bad-token and bad-cookie requests")
    assert not refused, "\n".join(refused)


def test_every_route_answers_an_authenticated_user(stack, registered, token):
    base, wrong = stack.config.url, []
    with httpx.Client(base_url=base, timeout=60, follow_redirects=False) as client:
        for name, prefix, path, methods in registered["routes"]:
            url = _url(prefix, path)
            expected = {200}
            if "{" in path:
                expected = {404}
            elif name == "cosmos" and path in SWAGGER_PATHS:
                expected = {404}  # off
            elif name == "mallard" and path == "/":
                expected = {303}  # to /mallard/sources
            elif path.startswith(f"/{MISSING_SLUG}/") and not path.endswith("/dbt_docs"):
                expected = {404}  # no docs in that folder (test_missing_docs_say_what_to_do_...)
            for method in methods:
                response = client.request(method, url, headers={"Authorization": f"Bearer {token}"})
                if response.status_code not in expected:
                    wrong.append(f"{method} {url}: {response.status_code} (expected {expected}) {response.text[:200]}")
                _assert_clean(response, stack.config.airflow_home.parent)
                print(f"  {method} {url}: {response.status_code}")
    assert not wrong, "\n".join(wrong)


def test_the_ui_cookie_opens_the_pages_and_the_docs(stack, token):
    with httpx.Client(base_url=stack.config.url, timeout=60, cookies={"_token": token}) as client:
        sources = client.get("/mallard/sources", headers={"Accept": "text/html"})
        assert sources.status_code == 200 and "<h1>Sources</h1>" in sources.text
        index = client.get(f"/cosmos/{DOCS_SLUG}/dbt_docs_index.html", headers={"Accept": "text/html"})
        assert index.status_code == 200 and "dbt" in index.text
        manifest = client.get(f"/cosmos/{DOCS_SLUG}/manifest.json")
        assert manifest.status_code == 200 and "model.mallard.customers" in manifest.json()["nodes"]
        assert client.get(f"/cosmos/{DOCS_SLUG}/catalog.json").json()["nodes"] == {}
        for response in (sources, index, manifest):
            _assert_clean(response, stack.config.airflow_home.parent)
        assert client.get("/mallard/docs").status_code == 404 and client.get("/mallard/openapi.json").status_code == 404


def test_missing_docs_say_what_to_do_without_the_host_path(stack, token):
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=stack.config.url, timeout=60, headers=headers) as client:
        for path in ("dbt_docs_index.html", "manifest.json", "catalog.json"):
            response = client.get(f"/cosmos/{MISSING_SLUG}/{path}")
            assert response.status_code == 404, (path, response.status_code)
            assert "make manifest" in response.text and DOCS_MISSING.split(".")[0] in response.text
            _assert_clean(response, stack.config.airflow_home.parent)
