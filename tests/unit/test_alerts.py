"""The webhook notifier: configured by one connection, silent without it, never sends a secret.

A real HTTP receiver on 127.0.0.1 and the real notifier; the context is what Airflow gives a
failure callback (the task, its instance, the exception). Under `airflow dags test` the same
notifier is checked in tests/e2e/test_alerts.py and tests/e2e/test_dbt_failure.py.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from airflow.providers.standard.operators.python import PythonOperator

from include.mallard import alerts
from tests.webhook_receiver import WebhookReceiver

SECRET = "tok-5e3c2b1a0f9e"


def _context(task_id: str, error: BaseException, **task_kwargs) -> dict:
    task = PythonOperator(task_id=task_id, python_callable=print, **task_kwargs)
    ti = SimpleNamespace(
        dag_id="mallard_elt",
        run_id="manual__2024-01-08",
        task_id=task_id,
        try_number=3,
        log_url=f"http://127.0.0.1:8080/dags/mallard_elt/runs/manual__2024-01-08/tasks/{task_id}?try_number=3",
    )
    return {"ti": ti, "task": task, "exception": error, "logical_date": dt.datetime(2024, 1, 8, tzinfo=dt.UTC)}


def test_a_failed_source_posts_its_name_run_error_and_log_link_without_the_secret(monkeypatch):
    from airflow.sdk.log import mask_secret

    mask_secret(SECRET)  # as secrets.resolve_secret does for a token it resolves
    with WebhookReceiver(password="hook-password-123") as receiver:
        monkeypatch.setenv("AIRFLOW_CONN_MALLARD_ALERTS", receiver.connection_json())
        error = RuntimeError(f"the shop API answered 401 to token {SECRET}\nsecond line")
        context = _context("ingest_shop.extract", error, op_kwargs={"source_name": "shop"})
        alerts.MallardWebhookNotifier()(context)
    [payload] = receiver.payloads
    assert payload["source"] == "shop" and payload["task_id"] == "ingest_shop.extract"
    assert payload["dag_id"] == "mallard_elt" and payload["run_id"] == "manual__2024-01-08"
    assert payload["error"].startswith("RuntimeError: the shop API answered 401 to token ***")
    assert payload["log_url"].endswith("/tasks/ingest_shop.extract?try_number=3")
    assert payload["text"].startswith("Mallard: ingest_shop.extract failed (source 'shop') in mallard_elt run")
    assert SECRET not in receiver.raw[0].decode()
    # The connection's password authenticates the POST; it is not in the payload.
    assert receiver.headers[0]["Authorization"] == "Bearer hook-password-123"
    assert "hook-password-123" not in receiver.raw[0].decode()


def test_without_the_connection_nothing_is_sent_and_nothing_fails(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_MALLARD_ALERTS", raising=False)
    assert alerts.webhook() is None
    alerts.MallardWebhookNotifier()(_context("ingest_shop.load", RuntimeError("x")))  # no error


def test_an_unreachable_webhook_is_logged_not_raised(monkeypatch):
    with WebhookReceiver() as receiver:
        url = receiver.url
    monkeypatch.setenv("AIRFLOW_CONN_MALLARD_ALERTS", f'{{"conn_type": "http", "host": "{url}"}}')
    alerts.MallardWebhookNotifier(timeout=2)(_context("ingest_shop.load", RuntimeError("x")))


def test_a_url_given_in_parts_is_put_together(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_MALLARD_ALERTS", '{"conn_type": "https", "host": "hooks.example.com", "schema": "services/T0/B1"}'
    )
    assert alerts.webhook() == ("https://hooks.example.com/services/T0/B1", {"Content-Type": "application/json"})
