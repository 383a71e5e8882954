"""The Runs pages: per DAG run, the rows loaded per table and the dbt models and tests that passed,
failed or were skipped, each failing test with its failing row count, and links to the task logs.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from include.mallard.assets import load_task_id
from include.mallard.ui.data import DbtNode, Run, SnapshotError, open_snapshot
from include.mallard.ui.dbt_models import BUILD_TASK_ID, DbtProject, dbt_project, node_tasks
from include.mallard.ui.html import Links, age, duration, esc, frame, grid, link, number, pill, when

# dbt's statuses, as the page counts them.
_PASSED = {"success", "pass"}
_FAILED = {"error", "fail", "runtime error"}
_WARNED = {"warn"}
_SKIPPED = {"skipped"}
NO_RUNS = "no run yet"


@dataclass
class AirflowRun:
    """What Airflow knows of a run: its state and the ids of its task instances (for the log links)."""

    state: str | None = None
    task_ids: set[str] = field(default_factory=set)


def outcome(status: str) -> str:
    """passed | failed | warned | skipped, for dbt's node status."""
    status = status.lower()
    if status in _PASSED:
        return "passed"
    if status in _FAILED:
        return "failed"
    if status in _WARNED:
        return "warn"
    return "skipped" if status in _SKIPPED else status


def _counts(nodes: list[DbtNode], tests: bool) -> str:
    chosen = [n for n in nodes if (n.resource_type == "test") == tests]
    if not chosen:
        return "<span class='muted'>none</span>"
    counts = Counter(outcome(n.status) for n in chosen)
    order = ("passed", "failed", "warn", "skipped")
    parts = [pill(f"{counts.get(kind, 0)} {kind}", kind if counts.get(kind) else None) for kind in order]
    parts += [pill(f"{n} {kind}") for kind, n in counts.items() if kind not in order]
    return " ".join(parts)


def _task_link(links: Links, run: Run, airflow: AirflowRun, candidates: list[str], text: str) -> str:
    # Link to a task the run really has; else to the run (a task that never existed would 404).
    task = next((t for t in candidates if t in airflow.task_ids), None)
    return link(links.task(run.dag_id, run.run_id, task), text, top=True)


def _loads_html(run: Run, links: Links, airflow: AirflowRun) -> str:
    if not run.loads:
        return "<p class='muted'>No load recorded in this run.</p>"
    rows = []
    for load in run.loads:
        state = "success" if load.status == "success" else "failed"
        error = f"<div class='muted'>{esc(load.error)}</div>" if load.error else ""
        rows.append(
            [
                f"<code>{esc(load.source)}</code>",
                f"<code>{esc(load.table_name or '—')}</code>",
                number(load.rows),
                pill(load.status, state) + error,
                _task_link(links, run, airflow, [load_task_id(load.source)], "log"),
            ]
        )
    return grid(("source", "table", "rows loaded", "status", "task"), rows, numeric=(2,))


def _failing_html(run: Run, links: Links, airflow: AirflowRun, project: DbtProject | None) -> str:
    failing = [n for n in run.nodes if outcome(n.status) in ("failed", "warn")]
    if not failing:
        return ""
    rows = [
        [
            pill(n.resource_type),
            f"<code>{esc(n.name)}</code>",
            pill(outcome(n.status), outcome(n.status)),
            number(n.failures) if n.resource_type == "test" else "—",
            esc(n.message or ""),
            _task_link(links, run, airflow, node_tasks(project, n.unique_id, n.resource_type), "log"),
        ]
        for n in failing
    ]
    headers = ("type", "node", "result", "failing rows", "message", "task")
    return "<h3>Failed and warning nodes</h3>" + grid(headers, rows, numeric=(3,))


def _run_card(run: Run, links: Links, airflow: AirflowRun, project: DbtProject | None, now: dt.datetime) -> str:
    title = link(links.page("runs", run.dag_id, run.run_id), f"{run.dag_id} · {run.run_id}")
    state = pill(airflow.state, airflow.state) if airflow.state else ""
    total_rows = sum(load.rows or 0 for load in run.loads)
    build = _task_link(links, run, airflow, [BUILD_TASK_ID], "dbt build log")
    return (
        f"<section class='card'><div class='card-head'><h2>{title}</h2>{state}</div>"
        f"<div class='facts'><span>interval <b>{esc(when(run.interval_start))} → "
        f"{esc(when(run.interval_end))}</b></span>"
        f"<span>last activity <b>{esc(when(run.last_seen))}</b> ({esc(age(run.last_seen, now))})</span>"
        f"<span>rows loaded <b>{number(total_rows)}</b></span>"
        f"<span>{link(links.task(run.dag_id, run.run_id), 'run in Airflow', top=True)}</span><span>{build}</span></div>"
        f"<div class='facts'><span>dbt models {_counts(run.nodes, tests=False)}</span>"
        f"<span>dbt tests {_counts(run.nodes, tests=True)}</span></div>"
        f"{_failing_html(run, links, airflow, project)}<h3>Rows loaded per table</h3>{_loads_html(run, links, airflow)}"
        "</section>"
    )


def _nodes_html(run: Run, links: Links, airflow: AirflowRun, project: DbtProject | None) -> str:
    if not run.nodes:
        return "<p class='muted'>No dbt node recorded in this run.</p>"
    rows = [
        [
            pill(n.resource_type),
            f"<code>{esc(n.name)}</code>",
            pill(outcome(n.status), outcome(n.status)),
            number(n.failures) if n.resource_type == "test" else "—",
            esc(duration(n.execution_seconds)),
            _task_link(links, run, airflow, node_tasks(project, n.unique_id, n.resource_type), "log"),
        ]
        for n in sorted(run.nodes, key=lambda n: (n.resource_type != "model", n.name))
    ]
    return grid(("type", "node", "result", "failing rows", "took", "task"), rows, numeric=(3, 4))


def _snapshot_notice(what: str) -> str:
    return (
        f"<div class='notice'>{pill(NO_RUNS)} {esc(what)} The warehouse snapshot, and the run history in it, "
        "is published after each run.</div>"
    )


def render_runs_page(links: Links, airflow: dict[tuple[str, str], AirflowRun], now: dt.datetime | None = None) -> str:
    """The latest runs, newest first; `airflow` has the state and task ids of the runs Airflow knows."""
    now = now or dt.datetime.now(dt.UTC)
    intro = "<h1>Runs</h1><p class='lead'>What each DAG run loaded and what dbt built and tested.</p>"
    try:
        with open_snapshot() as snapshot:
            runs = snapshot.runs() if snapshot else []
    except SnapshotError as error:
        return frame("Runs", "runs", links, intro + f"<div class='problem'>{esc(error)}</div>")
    if not runs:
        return frame("Runs", "runs", links, intro + _snapshot_notice("No run has left history yet."))
    project = dbt_project()
    cards = "".join(
        _run_card(run, links, airflow.get((run.dag_id, run.run_id), AirflowRun()), project, now) for run in runs
    )
    return frame("Runs", "runs", links, intro + cards)


def runs_in_snapshot() -> list[tuple[str, str]]:
    """(dag_id, run_id) of the runs the Runs page shows, so the caller asks Airflow only about those."""
    with open_snapshot() as snapshot:
        return [(run.dag_id, run.run_id) for run in snapshot.runs()] if snapshot else []


def render_run_page(
    links: Links, dag_id: str, run_id: str, airflow: AirflowRun, now: dt.datetime | None = None
) -> str | None:
    """One run: its summary and every dbt node; None when the run left no history (a 404)."""
    now = now or dt.datetime.now(dt.UTC)
    with open_snapshot() as snapshot:
        run = snapshot.run(dag_id, run_id) if snapshot else None
    if run is None:
        if airflow.state is None:
            return None
        body = f"<h1>{esc(dag_id)} · {esc(run_id)}</h1>" + _snapshot_notice("This run has left no history (yet).")
        return frame(run_id, "runs", links, body)
    project = dbt_project()
    body = (
        _run_card(run, links, airflow, project, now)
        + "<h3>Every dbt node</h3>"
        + _nodes_html(run, links, airflow, project)
    )
    return frame(run_id, "runs", links, body)
