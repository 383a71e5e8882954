"""A webhook receiver on 127.0.0.1 that records every JSON payload POSTed to it (for the alert tests).

    with WebhookReceiver() as receiver:
        env["AIRFLOW_CONN_MALLARD_ALERTS"] = receiver.connection_json()
        ...
        receiver.payloads  # what arrived, parsed

It runs in a thread of the test process; a task process (another process) reaches it over loopback.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    def __init__(self, password: str | None = None) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.password = password
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.raw.append(body)
                receiver.headers.append(dict(self.headers))
                receiver.payloads.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/mallard"

    def connection_json(self) -> str:
        """The `mallard_alerts` connection as Airflow reads it from AIRFLOW_CONN_MALLARD_ALERTS."""
        connection = {"conn_type": "http", "host": self.url}
        return json.dumps(connection | ({"password": self.password} if self.password else {}))

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
