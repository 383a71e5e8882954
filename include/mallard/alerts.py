"""Alerts: a failed task (a source, the dbt build, a failing dbt test) POSTs JSON to a webhook.

Configured in one place, the Airflow connection `mallard_alerts`: conn type `http`, host = the
webhook's URL (or host, port and schema as parts: `http://host:port/schema`); a password, when
set, is sent as `Authorization: Bearer <password>`. Without that connection nothing is sent and
nothing fails. Slack's and e-mail providers are not installed here; the payload's `text` field
is what Slack-compatible incoming webhooks show.

`MallardWebhookNotifier` is an Airflow notifier (`BaseNotifier`), given to every task as its
`on_failure_callback` (run_steps.DEFAULT_ARGS): it runs in the task's process after the task failed
for good (not on a retry), where Airflow's secrets masker knows the task's secrets, and every
field of the payload goes through it.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from pathlib import Path
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier

from include.mallard import history, history_queue

log = logging.getLogger(__name__)

ALERTS_CONN_ID = "mallard_alerts"
TIMEOUT_SECONDS = 10.0
BUILD_TASK_SUFFIX = "dbt_producer_watcher"  # Cosmos's `dbt build` task (dbt_group.BUILD_TASK_ID)


def webhook(conn_id: str = ALERTS_CONN_ID) -> tuple[str, dict[str, str]] | None:
    """(URL, headers) of the alerts connection; None when it does not exist or names no host."""
    try:
        from airflow.sdk import Connection

        connection = Connection.get(conn_id)
    except Exception:  # no such connection: alerts are off
        return None
    host = (connection.host or "").strip()
    if not host:
        return None
    if "://" in host:
        url = host
    else:
        scheme = "https" if connection.conn_type == "https" else "http"
        url = f"{scheme}://{host}" + (f":{connection.port}" if connection.port else "")
        url += f"/{connection.schema}" if connection.schema else ""
    headers = {"Content-Type": "application/json"}
    if connection.password:
        headers["Authorization"] = f"Bearer {connection.password}"
    return url, headers


def _source(task: Any) -> str | None:
    kwargs = getattr(task, "op_kwargs", None) or {}
    if kwargs.get("source_name"):
        return str(kwargs["source_name"])
    group = str(getattr(task, "task_id", "")).split(".")[0]
    return group.removeprefix("ingest_") if group.startswith("ingest_") else None


def _dbt_node(task: Any) -> str | None:
    extra = getattr(task, "extra_context", None) or {}
    return (extra.get("dbt_node_config") or {}).get("unique_id")


def _tests_of(node: str, project_dir: str | None) -> set[str]:
    """The unique ids of `node` and its tests, from the dbt project's manifest (child_map)."""
    path = Path(project_dir or "") / "target" / "manifest.json"
    try:
        children = json.loads(path.read_text(encoding="utf-8")).get("child_map", {}).get(node, [])
    except (OSError, ValueError):
        return {node}
    return {node, *(child for child in children if child.startswith(("test.", "unit_test.")))}


def _failed_nodes(run: history.RunRef, task: Any) -> list[dict[str, Any]]:
    """The build's failed nodes: all of them for the build task, the task's own node and tests otherwise."""
    failed = history_queue.failed_nodes(run)
    node = _dbt_node(task)
    if node and not str(getattr(task, "task_id", "")).endswith(BUILD_TASK_SUFFIX):
        mine = _tests_of(node, getattr(task, "project_dir", None))
        failed = [row for row in failed if row.unique_id in mine]
    return [
        {"unique_id": r.unique_id, "name": r.name, "type": r.resource_type, "status": r.status, "failures": r.failures}
        | {"message": r.message}
        for r in failed
    ]


def payload(context: Any) -> dict[str, Any]:
    """What an alert says: the DAG run, the task, the source or dbt node, the error, a link to the log."""
    ti, task = context["ti"], context.get("task")
    run = history.RunRef(ti.dag_id, ti.run_id)
    error = context.get("exception")
    source, node = _source(task), _dbt_node(task)
    is_build = str(ti.task_id).endswith(BUILD_TASK_SUFFIX)
    failed_nodes = _failed_nodes(run, task) if node or is_build else []
    what = f"source {source!r}" if source else (f"dbt node {node}" if node else ("dbt build" if is_build else "task"))
    first_line = (history.clean_error(error).splitlines() or ["see the log"])[0] if error else "see the log"
    text = f"Mallard: {ti.task_id} failed ({what}) in {ti.dag_id} run {ti.run_id}: {first_line}"
    if failed_nodes:
        text += "\nFailed in the dbt build: " + "; ".join(
            f"{n['name']} ({n['status']}" + (f", {n['failures']} failing rows)" if n["failures"] else ")")
            for n in failed_nodes
        )
    document = {
        "text": text,
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "try_number": ti.try_number,
        "logical_date": str(context.get("logical_date") or ""),
        "source": source,
        "dbt_node": node,
        "failed_dbt_nodes": failed_nodes,
        "error": history.clean_error(error) if error else None,
        "log_url": getattr(ti, "log_url", None),
    }
    return _redacted(document)


def _redacted(document: dict[str, Any]) -> dict[str, Any]:
    try:
        from airflow.sdk.log import redact

        return redact(document)  # type: ignore[return-value]
    except Exception:  # outside a task there is no masker
        return document


class MallardWebhookNotifier(BaseNotifier):
    """POST a JSON alert to the `mallard_alerts` connection's URL; do nothing when it does not exist."""

    def __init__(self, conn_id: str = ALERTS_CONN_ID, timeout: float = TIMEOUT_SECONDS) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.timeout = timeout

    def notify(self, context: Any) -> None:
        target = webhook(self.conn_id)
        if target is None:
            return  # alerts are not configured
        url, headers = target
        try:
            body = json.dumps(payload(context), default=str).encode()
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except Exception as error:  # an alert that cannot be sent must not hide the task's own failure
            log.warning("Could not send the alert to connection %r: %s", self.conn_id, history.clean_error(error))
