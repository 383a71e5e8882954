"""Pieces of the rest_api source that need no server."""

from __future__ import annotations

from include.mallard.sources.rest_api import redacted_url


def test_an_api_key_sent_in_the_query_never_reaches_an_error_message():
    url = "http://127.0.0.1:8000/customers?page=3&api_key=s3cr3t-key&q=a+b"
    shown = redacted_url(url, {"api_key"})
    assert "s3cr3t-key" not in shown
    assert shown == "http://127.0.0.1:8000/customers?page=3&api_key=***&q=a+b"
    assert redacted_url(url, set()) == url


def test_paginator_config_keeps_unset_fields_explicit():
    """dlt's page_number paginator reads a `total` key unless told there is none: unset must say so."""
    from include.mallard.config.kinds.rest_api import NextLinkPaginator, PageNumberPaginator
    from include.mallard.sources.rest_api import paginator_config

    config = paginator_config(PageNumberPaginator(type="page_number"))
    assert config == {
        "type": "page_number",
        "page_param": "page",
        "base_page": 1,
        "total_path": None,
        "maximum_page": None,
        "stop_after_empty_page": True,
    }
    assert paginator_config(NextLinkPaginator(type="next_link", next_url_path="links.next")) == {
        "type": "json_link",
        "next_url_path": "links.next",
    }
