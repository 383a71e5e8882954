"""Pieces of the rest_api source that need no server."""

from __future__ import annotations

from include.mallard.sources.rest_api import redacted_url


def test_an_api_key_sent_in_the_query_never_reaches_an_error_message():
    url = "http://127.0.0.1:8000/customers?page=3&api_key=s3cr3t-key&q=a+b"
    shown = redacted_url(url, {"api_key"})
    assert "s3cr3t-key" not in shown
    assert shown == "http://127.0.0.1:8000/customers?page=3&api_key=***&q=a+b"
    assert redacted_url(url, set()) == url
