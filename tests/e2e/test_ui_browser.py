"""The Airflow UI in a real browser: login, the ELT DAG's graph, the dbt docs view, the sources page.

A local stack (scripts/airflow_stack.py) on a temporary AIRFLOW_HOME, warehouse, dlt work folder
and dbt docs folder runs `mallard_elt` once, so that its last task writes the dbt docs. Then
headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; no browser is downloaded)
signs in through SimpleAuthManager's form and checks what a user sees:

- the graph view of `mallard_elt` shows the source task groups and the dbt task group;
- Browse > "Mallard dbt docs" (Cosmos's plugin) opens the docs this run generated, with a model's
  page, columns and types from the catalog;
- Browse > "Mallard sources" (plugins/mallard_plugin.py) shows the table of source configs.

Any page that answers an HTTP error, shows an error (Airflow's error alert or 404 page, Cosmos's
"dbt docs error", the sources page's config problems) or throws an uncaught script error fails the
test. Screenshots go to the test's tmp dir; their paths are printed.

    source scripts/env.sh && .venv/bin/python -m pytest tests/e2e/test_ui_browser.py -x -s

Needs `playwright` (pip) and `chromium` (apt); without them the test skips and says why.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from include.mallard.config import load_sources
from include.mallard.paths import SOURCES_DIR
from scripts.airflow_stack import AirflowStack
from tests.e2e.airflow_api import Api, failed_tasks, isolated_stack, trigger_paused_run, wait_for_dag, wait_for_run

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Response, WebError

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PLAYWRIGHT_PIN = "playwright==1.65.2"  # as in requirements-local.txt
SKIP_BANNER = "UI BROWSER TEST NOT RUN"

DAG_ID = "mallard_elt"
LOGICAL_DATE = "2024-01-08T00:00:00Z"
RUN_CONF = {"start": "2024-01-07", "end": "2024-01-08"}  # one day: the shortest run that builds every model
SOURCE_GROUPS = ("ingest_shop", "ingest_stores", "ingest_marketing")
DBT_GROUP = "dbt"
DOCS_SLUG = "mallard"
DOCS_MENU_ITEM = "Mallard dbt docs"
SOURCES_MENU_ITEM = "Mallard sources"
MODEL = "stg_shop__orders"
MODEL_COLUMNS = ("order_id", "customer_id", "ordered_at")
UI_TIMEOUT_MS = 60_000

# What a page shows when something is wrong.
ERROR_TEXTS = (
    "Cosmos dbt docs error",  # Cosmos: docs folder or index missing / unreadable
    "Not Found",  # Airflow UI: "Page Not Found", "Dag Not Found"
    "An unexpected error occurred",  # Airflow UI: error boundary
    "Access Denied",  # Airflow UI: forbidden
    "The source configs have problems",  # Mallard sources page: config errors
)
ERROR_SELECTOR = ", ".join(
    (
        "[data-testid='error-alert']",  # Airflow UI's ErrorAlert (failed API call shown on the page)
        "[data-scope='alert'][data-status='error']",  # any Chakra error alert
        "[data-scope='toast'][data-type='error']",  # error toasts
        ".error",  # Mallard sources page
    )
)
# Requests whose error status means the page is broken. Images are left out: dbt docs' own
# index.html requests a few unrendered template URLs (`{{ getIcon(...) }}`) that 404 in every setup.
CHECKED_RESOURCE_TYPES = {"document", "xhr", "fetch"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium through Playwright; skips, loudly, when either is missing."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(f"{SKIP_BANNER}: the Python package playwright is missing (pip install {PLAYWRIGHT_PIN})")
    if not CHROMIUM.is_file():
        pytest.skip(f"{SKIP_BANNER}: {CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except PlaywrightError as error:
            pytest.skip(f"{SKIP_BANNER}: {CHROMIUM} does not start under Playwright: {error}")
        print(f"\nbrowser: {CHROMIUM} {launched.version}")
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def stack(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    # Depends on `browser` so that a missing browser skips before minutes go into the stack.
    root = tmp_path_factory.mktemp("stack")
    docs_dir = root / "dbt_docs"
    extra_env = {
        # The dbt_docs task writes here, and Cosmos's view serves from here (env.sh derives the
        # second from the first only when sourced; extra_env is applied after it, so set both).
        "MALLARD_DBT_DOCS_DIR": str(docs_dir),
        "AIRFLOW__COSMOS__DBT_DOCS_PROJECTS": json.dumps(
            {DOCS_SLUG: {"dir": str(docs_dir), "index": "index.html", "name": DOCS_MENU_ITEM}}
        ),
    }
    with isolated_stack(root, extra_env) as running:
        yield running


class PageProblems:
    """HTTP errors and uncaught script errors of every page of a browser context."""

    def __init__(self, context: BrowserContext) -> None:
        self.found: list[str] = []
        context.on("response", self._on_response)
        context.on("weberror", self._on_web_error)

    def _on_response(self, response: Response) -> None:
        if response.status >= 400 and response.request.resource_type in CHECKED_RESOURCE_TYPES:
            self.found.append(f"HTTP {response.status} {response.request.method} {response.url}")

    def _on_web_error(self, error: WebError) -> None:
        page = error.page.url if error.page else "?"
        self.found.append(f"uncaught script error on {page}: {error.error}")

    def take(self) -> list[str]:
        found, self.found = self.found, []
        return found


def errors_shown(page: Page) -> list[str]:
    """The error texts and visible error elements on the page."""
    text = page.locator("body").inner_text()
    shown = [f"text {needle!r}" for needle in ERROR_TEXTS if needle in text]
    for element in page.locator(ERROR_SELECTOR).filter(visible=True).all():
        shown.append(f"error element: {element.inner_text()[:300]!r}")
    return shown


def assert_page_ok(page: Page, problems: PageProblems, what: str) -> None:
    shown, found = errors_shown(page), problems.take()
    assert not shown and not found, f"{what} ({page.url}) shows errors: {shown + found}"


def screenshot(page: Page, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def check_docs_missing_before_the_run(context: BrowserContext, problems: PageProblems, base_url: str) -> None:
    """Before the run, Cosmos's view answers its error: the docs shown later are this run's."""
    page = context.new_page()
    response = page.goto(f"{base_url}/cosmos/{DOCS_SLUG}/dbt_docs_index.html")
    assert response is not None and response.status == 404, response and response.status
    assert "text 'Cosmos dbt docs error'" in errors_shown(page), page.locator("body").inner_text()
    assert any("HTTP 404" in problem for problem in problems.take())  # the detector sees it too
    page.close()


def log_in(page: Page, problems: PageProblems, stack: AirflowStack) -> None:
    page.goto(f"{stack.config.url}/")
    page.wait_for_url(re.compile(r"/auth/login"))
    page.get_by_label("Username").fill(stack.config.username)
    page.get_by_label("Password").fill(stack.config.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)
    page.get_by_role("link", name="Dags").first.wait_for()
    # The UI asks /ui/config before it knows it is logged out (401, then the login redirect).
    problems.take()


def check_graph(page: Page, problems: PageProblems, base_url: str, shots: Path) -> None:
    page.goto(f"{base_url}/dags/{DAG_ID}")
    page.get_by_role("button", name=re.compile(r"^Show Graph")).click()
    nodes = {group: page.locator(f".react-flow__node[data-id='{group}']") for group in (*SOURCE_GROUPS, DBT_GROUP)}
    for group, node in nodes.items():
        node.wait_for()
        assert node.is_visible(), f"task group {group} is not shown in the graph"
        assert group in node.inner_text() and "Task Group" in node.inner_text(), node.inner_text()
    page.wait_for_timeout(500)  # let the layout settle (fit view) for the screenshot
    screenshot(page, shots, "1_graph")
    assert_page_ok(page, problems, "graph view")


def open_from_browse_menu(page: Page, context: BrowserContext, item: str, href: str) -> Page:
    """Click Browse > `item`, which Airflow opens in a new tab; check it links to `href`."""
    page.get_by_role("button", name="Browse").click()
    entry = page.get_by_role("menuitem", name=item)
    assert entry.get_attribute("href") == href, entry.get_attribute("href")
    with context.expect_page() as new_tab:
        entry.click()
    opened = new_tab.value
    opened.wait_for_load_state()
    page.keyboard.press("Escape")  # close the menu
    return opened


def check_dbt_docs(page: Page, context: BrowserContext, problems: PageProblems, shots: Path) -> None:
    docs = open_from_browse_menu(page, context, DOCS_MENU_ITEM, f"/cosmos/{DOCS_SLUG}/dbt_docs_index.html")
    # dbt docs is a single-page app: it fetches manifest.json and catalog.json, then renders.
    docs.get_by_text("Welcome to the auto-generated documentation").wait_for()
    docs.get_by_placeholder("Search for models...").fill(MODEL)
    result = docs.locator(".search-result").filter(has=docs.get_by_text(MODEL, exact=True)).first
    result.wait_for()
    screenshot(docs, shots, "2_dbt_docs_search")
    # The model's page, with its columns and their types (which come from the catalog).
    result.click()
    docs.wait_for_url(re.compile(rf"#!/model/model\.mallard\.{MODEL}$"))
    docs.locator("h1", has_text=MODEL).wait_for()
    body = docs.locator("body").inner_text()
    for column in MODEL_COLUMNS:
        assert column in body, f"column {column} missing from the docs page of {MODEL}"
    assert "BIGINT" in body, "no column types: catalog.json was not loaded"
    screenshot(docs, shots, "3_dbt_docs_model")
    assert_page_ok(docs, problems, "dbt docs")
    docs.close()


def check_sources_page(page: Page, context: BrowserContext, problems: PageProblems, shots: Path) -> None:
    sources_page = open_from_browse_menu(page, context, SOURCES_MENU_ITEM, "/mallard/sources")
    sources_page.get_by_role("heading", name="Mallard sources").wait_for()
    rows = sources_page.locator("table tr")
    header = [cell.strip() for cell in rows.first.locator("th").all_inner_texts()]
    assert header == ["source", "kind", "schema", "enabled", "description"], header
    shown = {row.locator("td").first.inner_text().strip() for row in rows.all()[1:]}
    expected = {source.name for source in load_sources(SOURCES_DIR, include_disabled=True)}
    assert shown == expected, f"sources page lists {sorted(shown)}, the configs are {sorted(expected)}"
    screenshot(sources_page, shots, "4_sources")
    assert_page_ok(sources_page, problems, "sources page")
    sources_page.close()


def test_ui_in_a_real_browser(browser: Browser, stack: AirflowStack, tmp_path: Path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    base_url = stack.config.url
    api = Api(stack)
    dag = wait_for_dag(api, DAG_ID)
    assert dag["is_paused"], "the DAG should start paused (dags_are_paused_at_creation)"

    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    problems = PageProblems(context)
    try:
        check_docs_missing_before_the_run(context, problems, base_url)

        started = time.monotonic()
        run_id = trigger_paused_run(api, DAG_ID, LOGICAL_DATE, RUN_CONF)
        print(f"\ntriggered {run_id} ({RUN_CONF}); waiting for it")
        run = wait_for_run(api, DAG_ID, run_id)
        print(f"run {run['state']} after {time.monotonic() - started:.0f} s")
        assert run["state"] == "success", failed_tasks(api, DAG_ID, run_id)

        started = time.monotonic()
        page = context.new_page()
        log_in(page, problems, stack)
        assert_page_ok(page, problems, "home page after login")
        check_graph(page, problems, base_url, shots)
        check_dbt_docs(page, context, problems, shots)
        check_sources_page(page, context, problems, shots)
        assert_page_ok(page, problems, "UI after the Browse menu")
        print(f"browser checks: {time.monotonic() - started:.0f} s")
    finally:
        context.close()
