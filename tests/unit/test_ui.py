"""The Mallard UI page shows the sources, or each config problem, escaped."""

from __future__ import annotations

from fastapi.testclient import TestClient

from include.mallard.paths import SOURCES_DIR
from include.mallard.ui import render_sources_page


def test_page_lists_every_source():
    page = render_sources_page(SOURCES_DIR)
    for name in ("shop", "stores", "marketing", "raw_shop"):
        assert f"<td>{name}</td>" in page


def test_page_shows_problems_escaped(tmp_path):
    (tmp_path / "bad.yml").write_text("kind: <script>\n")
    page = render_sources_page(tmp_path)
    assert "problems" in page and "bad.yml" in page and "`kind`" in page
    assert "<script>" not in page


def test_plugin_app_serves_the_page():
    from plugins.mallard_plugin import MallardPlugin

    [app] = MallardPlugin.fastapi_apps
    assert app["url_prefix"] == "/mallard"
    response = TestClient(app["app"]).get("/sources")
    assert response.status_code == 200 and "<td>shop</td>" in response.text
