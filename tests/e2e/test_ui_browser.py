"""The Airflow UI in a real browser: dbt docs before the first run, the Mallard pages after real runs.

A local stack (scripts/airflow_stack.py) on a temporary AIRFLOW_HOME, warehouse, dlt work folder
and dbt docs folder, with the ELT DAG `mallard_elt` over copies of the demo sources (the stores CSV
in a folder of the test's own, so that a later run can load a store without a name; the Mallard
page reads the project's source configs, which have the same names). Headless Chromium (Debian's
/usr/bin/chromium, driven by Playwright; no browser is downloaded) signs in through
SimpleAuthManager's form and checks what a user sees:

1. before any run, with the docs written as `mallard manifest` writes them: Browse > "Mallard dbt
   docs" shows a model's page and the lineage graph (not Cosmos's "index not found");
2. after a clean run: the graph of `mallard_elt`; the Mallard page (in the Airflow UI, nav
   "Mallard") shows each source's last load with rows per table and the raw tables' columns; its
   Tables tab previews `marts.customers` (200 rows, 50 a page); the dbt docs have column types;
3. after a run in which the dbt test `not_null_stg_stores__stores_store_name` fails on 1 row: the
   Runs tab shows the run with that test, its failing row count and a link to its task log, which
   opens the task in the Airflow UI; the run's own "Mallard run" tab shows the same summary.

Any page that answers an HTTP error, shows an error (Airflow's error alert or 404 page, Cosmos's
"dbt docs error", a Mallard problem box) or throws an uncaught script error fails the test.
Screenshots go to the test's tmp dir; their paths are printed.

    source scripts/env.sh && .venv/bin/python -m pytest tests/e2e/test_ui_browser.py -x -s

Needs `playwright` (pip) and `chromium` (apt); without them the test skips and says why.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

from include.mallard.dbt_docs import write_docs_without_catalog
from include.mallard.paths import DBT_PROJECT_DIR, INCLUDE_DIR, SOURCES_DIR
from scripts.airflow_stack import AirflowStack
from tests.e2e.airflow_api import Api, failed_tasks, isolated_stack, trigger_paused_run, wait_for_dag, wait_for_run
from tests.e2e.helpers import write_elt_dag

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, FrameLocator, Page, Response, WebError

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
CLEAN_RUN = ("2024-01-08T00:00:00Z", {"start": "2024-01-07", "end": "2024-01-08"})  # one day: every model builds
BAD_RUN = ("2024-01-09T00:00:00Z", {"start": "2024-01-08", "end": "2024-01-09"})
NAMELESS_STORE = "6,,Paris,2024-01-01,0.20\n"
FAILING_TEST = "not_null_stg_stores__stores_store_name"
SOURCE_GROUPS = ("ingest_shop", "ingest_stores", "ingest_marketing")
DBT_GROUP = "dbt"
DOCS_SLUG = "mallard"
DOCS_MENU_ITEM = "Mallard dbt docs"
MODEL = "stg_shop__orders"
MODEL_COLUMNS = ("order_id", "customer_id", "ordered_at")
UI_TIMEOUT_MS = 60_000

# What a page shows when something is wrong.
ERROR_TEXTS = (
    "Cosmos dbt docs error",  # Cosmos: docs folder or index missing / unreadable
    "dbt docs not generated yet",  # the same, as Mallard's guard rewords it
    "Not Found",  # Airflow UI: "Page Not Found", "Dag Not Found"
    "An unexpected error occurred",  # Airflow UI: error boundary
    "Access Denied",  # Airflow UI: forbidden
    "cannot be opened",  # Mallard: the snapshot is unreadable
)
ERROR_SELECTOR = ", ".join(
    (
        "[data-testid='error-alert']",  # Airflow UI's ErrorAlert (failed API call shown on the page)
        "[data-scope='alert'][data-status='error']",  # any Chakra error alert
        "[data-scope='toast'][data-type='error']",  # error toasts
        ".problem",  # Mallard pages: a config problem, a failed load, an unreadable snapshot
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
def stores_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("stores")
    shutil.copytree(INCLUDE_DIR / "data" / "stores", folder, dirs_exist_ok=True)
    return next(folder.glob("*.csv"))


@pytest.fixture(scope="module")
def stack(browser: Browser, stores_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    # Depends on `browser` so that a missing browser skips before minutes go into the stack.
    root = tmp_path_factory.mktemp("stack")
    sources, dags = root / "sources", root / "dags"
    sources.mkdir()
    for name in ("shop.yml", "marketing.yml"):
        shutil.copy(SOURCES_DIR / name, sources / name)
    stores = (SOURCES_DIR / "stores.yml").read_text().replace("path: include/data/stores", f"path: {stores_csv.parent}")
    (sources / "stores.yml").write_text(stores)
    write_elt_dag(dags, DAG_ID, sources)
    # What `mallard manifest` does after `dbt parse`: the docs site, before any run.
    docs_dir = write_docs_without_catalog(DBT_PROJECT_DIR, root / "dbt_docs")
    extra_env = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
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


def errors_shown(page: Page | FrameLocator) -> list[str]:
    """The error texts and visible error elements on the page (or in the frame)."""
    text = page.locator("body").inner_text()
    shown = [f"text {needle!r}" for needle in ERROR_TEXTS if needle in text]
    for element in page.locator(ERROR_SELECTOR).filter(visible=True).all():
        shown.append(f"error element: {element.inner_text()[:300]!r}")
    return shown


def assert_page_ok(page: Page, problems: PageProblems, what: str, frame: FrameLocator | None = None) -> None:
    shown = errors_shown(page) + (errors_shown(frame) if frame is not None else [])
    found = problems.take()
    assert not shown and not found, f"{what} ({page.url}) shows errors: {shown + found}"


def screenshot(page: Page, folder: Path, name: str, full_page: bool = False) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")
    return path


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


def check_docs_before_the_first_run(page: Page, context: BrowserContext, problems: PageProblems, shots: Path) -> None:
    """Right after `mallard manifest`: the models, their docs and the lineage, no catalog yet."""
    docs = open_from_browse_menu(page, context, DOCS_MENU_ITEM, f"/cosmos/{DOCS_SLUG}/dbt_docs_index.html")
    docs.get_by_text("Welcome to the auto-generated documentation").wait_for()
    docs.get_by_placeholder("Search for models...").fill("customers")
    docs.locator(".search-result").filter(has=docs.get_by_text("customers", exact=True)).first.wait_for()
    screenshot(docs, shots, "0_dbt_docs_before_the_first_run_search")
    model_url = docs.url.split("#")[0] + "#!/model/model.mallard.customers"
    docs.close()
    docs = context.new_page()  # a source is named customers too: open the model's page itself
    docs.goto(model_url)
    docs.locator("h1", has_text="customers").wait_for()
    body = docs.locator("body").inner_text()
    assert "One row per customer" in body and "lifetime_value" in body, body[:2000]  # from the model's YAML
    screenshot(docs, shots, "1_dbt_docs_before_the_first_run_model")
    docs.locator("a[title='View Lineage Graph']").filter(visible=True).first.click()
    docs.locator("#cy canvas, .graph canvas, canvas").first.wait_for()
    docs.wait_for_timeout(1500)  # the graph lays itself out
    screenshot(docs, shots, "2_dbt_docs_before_the_first_run_lineage")
    assert_page_ok(docs, problems, "dbt docs before the first run")
    docs.close()


def check_graph(page: Page, problems: PageProblems, base_url: str, shots: Path) -> None:
    page.goto(f"{base_url}/dags/{DAG_ID}")
    page.get_by_role("button", name=re.compile(r"^Show Graph")).click()
    nodes = {group: page.locator(f".react-flow__node[data-id='{group}']") for group in (*SOURCE_GROUPS, DBT_GROUP)}
    for group, node in nodes.items():
        node.wait_for()
        assert node.is_visible(), f"task group {group} is not shown in the graph"
        assert group in node.inner_text() and "Task Group" in node.inner_text(), node.inner_text()
    page.wait_for_timeout(500)  # let the layout settle (fit view) for the screenshot
    screenshot(page, shots, "3_graph")
    assert_page_ok(page, problems, "graph view")


def open_mallard(page: Page, base_url: str, from_nav: bool = False) -> FrameLocator:
    """The Mallard page inside the Airflow UI (nav "Mallard", /plugin/mallard): Airflow shows it in an iframe."""
    if from_nav:
        page.goto(f"{base_url}/")
        # Click once the home page has stopped loading, as a person would: a click while its first requests
        # are still re-rendering the nav bar can be lost (seen once in CI: the URL never changed).
        page.wait_for_load_state("networkidle")
        entry = page.get_by_role("link", name="Mallard", exact=True).first
        assert entry.get_attribute("href", timeout=UI_TIMEOUT_MS).endswith("plugin/mallard"), entry.get_attribute(
            "href"
        )
        entry.click()
        page.wait_for_url(re.compile(r"/plugin/mallard$"))
    else:
        page.goto(f"{base_url}/plugin/mallard")
    frame = page.frame_locator("iframe").first
    frame.get_by_role("heading", name="Sources", exact=True).wait_for()
    return frame


def check_sources(page: Page, problems: PageProblems, base_url: str, shots: Path) -> None:
    frame = open_mallard(page, base_url, from_nav=True)
    stores = frame.locator("section.card", has=frame.locator("#source-stores"))
    stores.get_by_text("last load").first.wait_for()
    text = stores.inner_text()
    assert "success" in text and "dlt load id" in text and "interval 2024-01-07 → 2024-01-08" in text, text
    row = stores.locator("tr", has=frame.locator("code", has_text="stores")).first.inner_text()
    assert re.search(r"\b5\b", row) and "store_name" in row and "VARCHAR" in row, row  # 5 rows, its columns
    shop = frame.locator("section.card", has=frame.locator("#source-shop")).inner_text()
    assert "ordered_at" in shop and "newest" in shop and "orders" in shop, shop  # freshness of the cursor
    screenshot(page, shots, "4_mallard_sources_after_a_run")
    assert_page_ok(page, problems, "Mallard sources", frame)


def check_marts_preview(page: Page, problems: PageProblems, base_url: str, shots: Path) -> None:
    frame = open_mallard(page, base_url)
    frame.get_by_role("link", name="Tables", exact=True).click()
    frame.get_by_role("link", name="customers", exact=True).first.click()
    frame.get_by_role("heading", name="marts.customers").wait_for()
    assert "200 rows" in frame.locator("body").inner_text()
    assert frame.locator("table.grid tbody tr").count() == 50
    assert "page 1 of 4" in frame.locator(".pager").first.inner_text()
    screenshot(page, shots, "5_marts_preview_customers")
    frame.get_by_role("link", name=re.compile(r"^next")).first.click()
    frame.get_by_text("page 2 of 4").first.wait_for()
    assert frame.locator("table.grid tbody tr").count() == 50
    assert_page_ok(page, problems, "marts preview", frame)


def check_dbt_docs_after_the_run(page: Page, context: BrowserContext, problems: PageProblems, shots: Path) -> None:
    docs = open_from_browse_menu(page, context, DOCS_MENU_ITEM, f"/cosmos/{DOCS_SLUG}/dbt_docs_index.html")
    docs.get_by_text("Welcome to the auto-generated documentation").wait_for()
    docs.goto(docs.url.split("#")[0] + f"#!/model/model.mallard.{MODEL}")
    docs.locator("h1", has_text=MODEL).wait_for()
    body = docs.locator("body").inner_text()
    for column in MODEL_COLUMNS:
        assert column in body, f"column {column} missing from the docs page of {MODEL}"
    assert "BIGINT" in body, "no column types: the run's catalog.json was not loaded"
    screenshot(docs, shots, "6_dbt_docs_after_the_run")
    assert_page_ok(docs, problems, "dbt docs after the run")
    docs.close()


def check_failing_test_summary(page: Page, problems: PageProblems, base_url: str, run_id: str, shots: Path) -> None:
    frame = open_mallard(page, base_url)
    frame.get_by_role("link", name="Runs", exact=True).click()
    card = frame.locator("section.card", has=frame.get_by_text(f"{DAG_ID} · {run_id}")).first
    card.wait_for()
    text = card.inner_text()
    assert "1 failed" in text and FAILING_TEST in text, text
    row = card.locator("tr", has=frame.locator("code", has_text=FAILING_TEST)).first
    assert "failed" in row.inner_text(), row.inner_text()
    assert row.locator("td.num").first.inner_text().strip() == "1", row.inner_text()  # its failing row count
    screenshot(page, shots, "7_mallard_runs_failing_test", full_page=True)
    # Only the failing test shows as failed; the stores load itself succeeded.
    problems.take()
    row.get_by_role("link", name="log").click()  # opens the task in the whole window (target=_top)
    task = "dbt.stg_stores__stores.test"
    page.wait_for_url(re.compile(rf"/dags/{DAG_ID}/runs/{re.escape(quote(run_id, safe=''))}/tasks/{re.escape(task)}"))
    page.get_by_text(task).first.wait_for()
    page.wait_for_timeout(1500)
    screenshot(page, shots, "8_failing_test_task_log")
    shown = [s for s in errors_shown(page) if "Not Found" in s]
    assert not shown, shown
    problems.take()


def check_run_tab(page: Page, problems: PageProblems, base_url: str, run_id: str, shots: Path) -> None:
    """The DAG run's own "Mallard run" tab: the same summary, inside the run's page."""
    page.goto(f"{base_url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}")
    page.get_by_role("tab", name="Mallard run").or_(page.get_by_role("link", name="Mallard run")).first.click()
    frame = page.frame_locator("iframe").first
    frame.get_by_text(FAILING_TEST).first.wait_for()
    assert "every dbt node" in frame.locator("body").inner_text().lower()
    screenshot(page, shots, "9_run_tab_mallard_run")
    problems.take()


def run_once(api: Api, logical_date: str, conf: dict) -> tuple[str, dict]:
    started = time.monotonic()
    run_id = trigger_paused_run(api, DAG_ID, logical_date, conf)
    print(f"\ntriggered {run_id} ({conf}); waiting for it")
    run = wait_for_run(api, DAG_ID, run_id)
    print(f"run {run['state']} after {time.monotonic() - started:.0f} s")
    return run_id, run


def test_ui_in_a_real_browser(browser: Browser, stack: AirflowStack, stores_csv: Path, tmp_path: Path):
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
        page = context.new_page()
        log_in(page, problems, stack)
        assert_page_ok(page, problems, "home page after login")
        check_docs_before_the_first_run(page, context, problems, shots)

        run_id, run = run_once(api, *CLEAN_RUN)
        assert run["state"] == "success", failed_tasks(api, DAG_ID, run_id)
        check_graph(page, problems, base_url, shots)
        check_sources(page, problems, base_url, shots)
        check_marts_preview(page, problems, base_url, shots)
        check_dbt_docs_after_the_run(page, context, problems, shots)

        stores_csv.write_text(stores_csv.read_text() + NAMELESS_STORE)
        bad_run_id, bad_run = run_once(api, *BAD_RUN)
        states = failed_tasks(api, DAG_ID, bad_run_id)
        assert bad_run["state"] == "failed" and "dbt.stg_stores__stores.test: failed" in states, states
        check_failing_test_summary(page, problems, base_url, bad_run_id, shots)
        check_run_tab(page, problems, base_url, bad_run_id, shots)
    except Exception:
        from playwright.sync_api import Error as PlaywrightError

        for number, open_page in enumerate(context.pages):  # what the browser showed when it failed
            print(f"page {number} at failure: {open_page.url}")
            with contextlib.suppress(PlaywrightError):  # keep the test's own error, not the screenshot's
                screenshot(open_page, shots, f"failure_page_{number}")
        raise
    finally:
        context.close()
