"""Example `kind: python` sources: a function that returns dlt resources for the run's interval.

Use one from a source file:

    # include/sources/calendar.yml
    kind: python
    function: include.examples.custom_source:calendar
    args: {country: NL}

    # include/sources/tickets.yml
    kind: python
    function: include.examples.custom_source:tickets
    primary_key: id
    args:
      base_url: http://127.0.0.1:8765/   # `python -m tests.e2e.servers` serves a test API here
      token: {env: TICKETS_API_TOKEN}   # resolved at run time, never written in the file

Mallard calls the function inside the extract task with `start` and `end` (the run's interval,
UTC, end exclusive) when it accepts them, plus `args`. Return a dlt source, a resource or a
list of resources; Mallard loads them into raw_<source> like any other kind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import dlt
from dlt.extract import DltResource
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import PageNumberPaginator


def calendar(start: dt.datetime, end: dt.datetime, country: str = "NL") -> DltResource:
    """One row per day of the interval: no I/O, so it runs anywhere."""

    @dlt.resource(name="days", primary_key="day", write_disposition="merge")
    def days() -> Iterator[dict[str, Any]]:
        day = start.date()
        while dt.datetime.combine(day, dt.time(), dt.UTC) < end:
            yield {"day": day, "country": country, "is_weekend": day.weekday() >= 5}
            day += dt.timedelta(days=1)

    return days


def tickets(start: dt.datetime, end: dt.datetime, base_url: str, token: str) -> DltResource:
    """Tickets updated in [start, end) from a paginated API, with logic a declarative config cannot say.

    Here: the API marks deleted tickets with a `deleted` flag that becomes an `is_deleted`
    soft-delete column. The token arrives resolved (the config says `token: {env: ...}`).
    """
    client = RESTClient(
        base_url=base_url,
        auth=BearerTokenAuth(token=token),
        paginator=PageNumberPaginator(base_page=1, total_path=None, stop_after_empty_page=True),
    )

    @dlt.resource(name="tickets", primary_key="id", write_disposition="merge")
    def rows() -> Iterator[list[dict[str, Any]]]:
        params = {"since": start.isoformat(), "until": end.isoformat()}
        for page in client.paginate("tickets", params=params, data_selector="data"):
            yield [{**ticket, "is_deleted": bool(ticket.pop("deleted", False))} for ticket in page]

    return rows
