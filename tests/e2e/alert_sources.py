"""A `kind: python` source for tests/e2e/test_alerts.py: it fails, and its error holds its secret token.

An API client that puts the credential it was given in its error message is common; the alert
(and the task log, and `mallard_meta`) must still show `***`.
"""

from __future__ import annotations

from typing import Any


def rejects_token(token: str, **_: Any) -> Any:
    raise RuntimeError(f"the upstream API rejected the request made with token {token} (HTTP 401)")
