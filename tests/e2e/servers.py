"""Real servers for the source-kind tests, all on 127.0.0.1 and stopped afterwards.

- `ShopApi`: a small JSON API that needs a credential, paginates four ways (page number,
  offset, cursor, next link), filters by an updated_at window, has a child endpoint, and answers
  429 and 503 once each before succeeding.
- `postgres_server()`: a throwaway PostgreSQL cluster (the local stack's) in a temp folder, on a
  free port, with password auth; stopped and deleted also when the test fails.

Run the API by hand to try the docs' examples: `python -m tests.e2e.servers` (port 8765).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from scripts.airflow_stack import LOOPBACK, PostgresCluster, postgres_unavailable
from scripts.airflow_stack import free_port as free_port  # the tests' free loopback port

UTC = dt.UTC
API_TOKEN = "test-token-4f1c9a"
API_KEY = "test-key-77b2"
API_USER, API_PASSWORD = "mallard", "test-password-31"
FIRST_UPDATE = dt.datetime(2024, 1, 1, tzinfo=UTC)


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_customers(count: int = 23) -> list[dict]:
    return [
        {"id": i, "name": f"Customer {i}", "tier": ("gold", "silver", "bronze")[i % 3]} for i in range(1, count + 1)
    ]


def make_orders(count: int = 60) -> list[dict]:
    """An order every 2 hours from 2024-01-01: 12 a day, five days."""
    return [
        {
            "id": 1000 + i,
            "customer_id": 1 + i % 23,
            "status": ("placed", "shipped", "completed")[i % 3],
            "updated_at": iso(FIRST_UPDATE + dt.timedelta(hours=2 * i)),
        }
        for i in range(count)
    ]


def make_items(order_id: int) -> list[dict]:
    return [{"line": n, "sku": f"SKU-{order_id % 7}-{n}", "quantity": n} for n in range(1, 1 + order_id % 3 + 1)]


def make_products(count: int = 11) -> list[dict]:
    return [{"sku": f"P{i:03d}", "price_cents": 100 * i} for i in range(1, count + 1)]


def make_events(count: int = 17) -> list[dict]:
    return [{"event_id": i, "kind": ("view", "click")[i % 2]} for i in range(count)]


def make_tickets(count: int = 30) -> list[dict]:
    """A ticket every 6 hours; every fifth one is deleted."""
    return [
        {
            "id": i,
            "title": f"Ticket {i}",
            "updated_at": iso(FIRST_UPDATE + dt.timedelta(hours=6 * i)),
            "deleted": i % 5 == 0,
        }
        for i in range(count)
    ]


@dataclass
class ShopApi:
    """The state and the request log of one API server."""

    auth: str = "bearer"  # bearer | api_key | basic
    customers: list[dict] = field(default_factory=make_customers)
    orders: list[dict] = field(default_factory=make_orders)
    products: list[dict] = field(default_factory=make_products)
    events: list[dict] = field(default_factory=make_events)
    tickets: list[dict] = field(default_factory=make_tickets)
    # Answer the first request of these paths (with query) with this status, then succeed.
    fail_once: dict[str, int] = field(default_factory=dict)
    # Answer these paths (with query) with 200 and a body that is not JSON (a proxy's error page).
    not_json: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def authorized(self, headers: dict[str, str], query: dict[str, list[str]]) -> bool:
        if self.auth == "bearer":
            return headers.get("authorization") == f"Bearer {API_TOKEN}"
        if self.auth == "api_key":
            return headers.get("x-api-key") == API_KEY or query.get("api_key") == [API_KEY]
        expected = base64.b64encode(f"{API_USER}:{API_PASSWORD}".encode()).decode()
        return headers.get("authorization") == f"Basic {expected}"

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict | list]:
        def one(name: str, default: str | None = None) -> str | None:
            return query.get(name, [default])[0]

        def window(rows: list[dict], since: str, until: str) -> list[dict]:
            low, high = one(since), one(until)
            return [r for r in rows if (not low or r["updated_at"] >= low) and (not high or r["updated_at"] < high)]

        parts = path.strip("/").split("/")
        if parts == ["customers"]:  # page number, ends with an empty page
            page, size = int(one("page", "1")), 5
            return 200, {"data": self.customers[(page - 1) * size : page * size]}
        if parts == ["orders"]:  # cursor pagination, filtered by updated_at window
            rows = window(self.orders, "updated_since", "updated_before")
            position, size = int(one("cursor") or 0), 7
            page = rows[position : position + size]
            next_cursor = str(position + size) if position + size < len(rows) else None
            return 200, {"data": page, "meta": {"next_cursor": next_cursor}}
        if len(parts) == 3 and parts[0] == "orders" and parts[2] == "items":  # child, no pagination
            if not any(str(o["id"]) == parts[1] for o in self.orders):
                return 404, {"error": "no such order"}
            return 200, make_items(int(parts[1]))
        if parts == ["products"]:  # next link in the body
            page, size = int(one("page", "1")), 4
            rows = self.products[(page - 1) * size : page * size]
            more = page * size < len(self.products)
            return 200, {
                "results": rows,
                "links": {"next": f"{self.base_url}products?page={page + 1}" if more else None},
            }
        if parts == ["events"]:  # offset + limit with a total
            offset, limit = int(one("offset", "0")), int(one("limit", "10"))
            return 200, {"items": self.events[offset : offset + limit], "total": len(self.events)}
        if parts == ["tickets"]:  # page number, ISO window (the python example source)
            rows = window(self.tickets, "since", "until")
            page, size = int(one("page", "1")), 4
            return 200, {"data": rows[(page - 1) * size : page * size]}
        return 404, {"error": f"unknown path {path}"}

    def handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                api.requests.append(self.path)
                headers = {key.lower(): value for key, value in self.headers.items()}
                failing = next((key for key in (self.path, url.path) if key in api.fail_once), None)
                if failing is not None:
                    status = api.fail_once.pop(failing)
                    self._send(status, {"error": "try again"}, {"Retry-After": "1"})
                elif self.path in api.not_json:
                    api.statuses[200] += 1
                    self._send_raw(200, b"<html><body>Upstream maintenance</body></html>", "text/html")
                elif not api.authorized(headers, query):
                    self._send(401, {"error": "missing or wrong credentials"})
                else:
                    self._send(*api.answer(url.path, query))

            def _send(self, status: int, body: dict | list, headers: dict[str, str] | None = None) -> None:
                api.statuses[status] += 1
                self._send_raw(status, json.dumps(body).encode(), "application/json", headers)

            def _send_raw(
                self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

        return Handler


@contextlib.contextmanager
def serve_api(api: ShopApi, port: int = 0) -> Iterator[ShopApi]:
    """Serve `api` on 127.0.0.1 (a free port unless given) until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", port), api.handler())
    api.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --- PostgreSQL ---------------------------------------------------------------------------------


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed (or cannot run as a non-root user)."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    @property
    def airflow_uri(self) -> str:
        """The same database as an Airflow connection URI (AIRFLOW_CONN_<ID>)."""
        return f"postgres://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway cluster (the local stack's own `PostgresCluster`) on 127.0.0.1; yields its superuser's database.

    As root the server runs as user `postgres`, so the temp folder is made searchable by it.
    """
    if reason := postgres_unavailable():
        raise PostgresUnavailable(reason)
    root = Path(tempfile.mkdtemp(prefix="mallard-pg-"))
    root.chmod(0o711)
    cluster = PostgresCluster(root / "cluster")
    try:
        cluster.start()
        user = PostgresCluster.SUPERUSER
        yield PostgresServer(LOOPBACK, cluster.port, user, cluster.password(user), database=user)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    # The API of the docs' runnable examples: python -m tests.e2e.servers
    with serve_api(ShopApi(), port=8765) as running:
        print(f"Shop API on {running.base_url} (token {API_TOKEN!r}); Ctrl-C to stop")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
