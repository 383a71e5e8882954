"""The Sources page: each source's config, its last load, its raw tables' columns, changes, freshness and Assets."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path

from include.mallard.assets import load_task_id
from include.mallard.config import ConfigError, ConfigProblem, SourceConfig
from include.mallard.config.project import PROJECT_SETTINGS_FILE, load_project_settings, read_source_files
from include.mallard.ui.assets_panel import SourceAsset, assets_html
from include.mallard.ui.data import Column, Load, Snapshot, SnapshotError, open_snapshot
from include.mallard.ui.html import Links, age, duration, esc, frame, grid, link, number, pill, when
from include.mallard.ui.text import shown_path, shown_text
from include.mallard.warehouse import Warehouse, active_warehouse

ELT_DAG_ID = "mallard_elt"  # the factory's default; a source with a schedule gets mallard_elt_ingest_<name>
NO_LOAD_YET = "no load yet"


def problems_html(problems: list[ConfigProblem]) -> str:
    """Each config problem with its file (relative to the project), field and fix."""
    if not problems:
        return ""
    items = "".join(
        f"<li><code>{esc(shown_path(p.file))}</code> · field <code>{esc(p.field)}</code>: {esc(shown_text(p.message))}"
        f" <span class='fix'>Fix:</span> {esc(shown_text(p.fix))}</li>"
        for p in problems
    )
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return (
        f"<div class='problem'><h2>The source configs have {count}</h2>"
        "<p class='muted'>Files with problems get no ingestion tasks until they are fixed "
        "(<code>mallard validate</code> checks them).</p>"
        f"<ul>{items}</ul></div>"
    )


def _schedule(source: SourceConfig, project_schedule: str | None) -> str:
    if source.schedule:
        return f"<code>{esc(source.schedule)}</code> (own DAG <code>{esc(ELT_DAG_ID)}_ingest_{esc(source.name)}</code>)"
    return f"<code>{esc(project_schedule or '?')}</code> (with <code>{ELT_DAG_ID}</code>)"


def _columns_html(columns: list[Column]) -> str:
    chips = "".join(
        f"<span class='col{' dlt' if c.name.startswith('_dlt') else ''}'>{esc(c.name)} <i>{esc(c.data_type)}</i></span>"
        for c in columns
    )
    return f"<div class='cols'>{chips}</div>"


def _load_line(load: Load, links: Links, now: dt.datetime, label: str) -> str:
    state = "failed" if load.failed else "success"
    load_ids = ", ".join(f"<code>{esc(i)}</code>" for i in load.load_ids) or "—"
    log = link(links.task(load.dag_id, load.run_id, load_task_id(load.source)), "load log", top=True)
    return (
        f"<div class='facts'><span>{esc(label)} {pill(state, state)}</span>"
        f"<span>interval <b>{esc(when(load.interval_start))} → {esc(when(load.interval_end))}</b></span>"
        f"<span>finished <b>{esc(when(load.finished_at))}</b> ({esc(age(load.finished_at, now))})</span>"
        f"<span>took <b>{esc(duration(load.duration_seconds))}</b></span>"
        f"<span>dlt load id {load_ids}</span><span>{log}</span></div>"
    )


def _freshness(
    snapshot: Snapshot, schema: str, table: str, cursor: str | None, columns: list[Column], now: dt.datetime
) -> str:
    if cursor is None:
        return "<span class='muted'>no cursor (full refresh)</span>"
    # dlt normalizes names to snake_case lower case: match the configured cursor the same way.
    wanted = cursor.lower()
    found = next((c.name for c in columns if c.name.lower() == wanted), None)
    if found is None:
        return f"<span class='muted'>cursor <code>{esc(cursor)}</code> is not a column of the table</span>"
    newest = snapshot.newest_value(schema, table, found)
    if newest is None:
        return f"<code>{esc(found)}</code>: <span class='muted'>no rows yet</span>"
    if isinstance(newest, dt.date):
        return f"<code>{esc(found)}</code> newest <b>{esc(when(newest))}</b> ({esc(age(newest, now))})"
    return f"<code>{esc(found)}</code> newest <b>{esc(newest)}</b>"


def _source_card(
    source: SourceConfig,
    snapshot: Snapshot | None,
    links: Links,
    schedule: str | None,
    now: dt.datetime,
    assets: list[SourceAsset] | None = None,
) -> str:
    head = (
        f"<div class='card-head'><h2 id='source-{esc(source.name)}'>{esc(source.name)}</h2>{pill(source.kind)}"
        f"<span>→ <code>{esc(source.dataset_name)}</code></span>"
        + ("" if source.enabled else pill("disabled", "disabled"))
        + "</div>"
    )
    facts = f"<div class='facts'><span>schedule {_schedule(source, schedule)}</span></div>"
    description = f"<p class='muted'>{esc(source.description)}</p>" if source.description else ""
    assets_section = assets_html(source.name, assets, links, now)
    if snapshot is None:
        return f"<section class='card'>{head}{description}{facts}<p>{pill(NO_LOAD_YET)}</p>{assets_section}</section>"
    last, last_good = snapshot.last_loads(source.name)
    body = facts
    if last is None:
        body += f"<p>{pill(NO_LOAD_YET)} <span class='muted'>no run has loaded this source into the snapshot</span></p>"
    else:
        body += _load_line(last, links, now, "last load")
        errors = [t for t in last.tables if t.error]
        if errors:
            body += "".join(f"<div class='problem'>{esc(t.table_name or 'load')}: {esc(t.error)}</div>" for t in errors)
        if last_good is not None:
            body += _load_line(last_good, links, now, "last successful load")
    # Rows per table: of the last load, or of the last good one when the last failed before any table.
    with_tables = last if last is not None and any(t.table_name for t in last.tables) else last_good
    label = "rows in last load" if with_tables is last else "rows in last successful load"
    body += _tables_html(source, snapshot, with_tables, label, now)
    body += _changes_html(snapshot, source) + assets_section
    return f"<section class='card'>{head}{description}{body}</section>"


def _tables_html(source: SourceConfig, snapshot: Snapshot, last: Load | None, label: str, now: dt.datetime) -> str:
    tables = snapshot.raw_tables(source.dataset_name)
    if not tables:
        return f"<p class='muted'>No tables in <code>{esc(source.dataset_name)}</code> yet.</p>"
    loaded = {t.table_name: t for t in last.tables if t.table_name} if last else {}
    cursors = source.table_cursors()
    rows = []
    for table, columns in sorted(tables.items()):
        load = loaded.get(table)
        in_load = pill("not in last load") if load is None else number(load.rows)
        rows.append(
            [
                f"<code>{esc(table)}</code>",
                in_load,
                number(snapshot.row_count(source.dataset_name, table)),
                _columns_html(columns),
                _freshness(snapshot, source.dataset_name, table, cursors.get(table), columns, now),
            ]
        )
    headers = ("table", label, "rows now", "columns and types", "freshness (newest cursor value)")
    return "<h3>Raw tables</h3>" + grid(headers, rows, numeric=(1, 2))


def _changes_html(snapshot: Snapshot, source: SourceConfig) -> str:
    changes = snapshot.schema_changes(source.name)
    if not changes:
        return "<h3>Schema changes</h3><p class='muted'>None seen.</p>"
    rows = [
        [
            esc(when(c.seen_at)),
            f"<code>{esc(c.table_name)}</code>",
            f"<code>{esc(c.column_name)}</code>",
            pill(c.change.replace("_", " "), "warn"),
            esc(c.old_type or "—") + " → " + esc(c.new_type or "—"),
        ]
        for c in changes
    ]
    return "<h3>Schema changes</h3>" + grid(("seen", "table", "column", "change", "type"), rows)


def render_sources_page(
    sources_dir: Path,
    links: Links,
    now: dt.datetime | None = None,
    assets_of: Callable[[list[str]], Mapping[str, list[SourceAsset]]] | None = None,
) -> str:
    """Every source (valid ones with their load status; invalid files with their problems).

    `assets_of` looks up the sources' Airflow Assets (`assets_panel.source_assets` on a session).
    """
    now = now or dt.datetime.now(dt.UTC)
    problems: list[ConfigProblem] = []
    try:
        files = read_source_files(sources_dir)
        sources, problems = [item.source for item in files.valid], list(files.problems)
    except ConfigError as error:
        sources, problems = [], list(error.problems)
    schedule, environment = None, ""
    try:
        settings = load_project_settings(PROJECT_SETTINGS_FILE)
        schedule, environment = settings.schedule, _environment_html(active_warehouse(settings))
    except ConfigError as error:
        problems += error.problems
    assets = assets_of([source.name for source in sources]) if assets_of else None

    def card(source: SourceConfig, snapshot: Snapshot | None) -> str:
        source_assets = None if assets is None else assets.get(source.name, [])
        return _source_card(source, snapshot, links, schedule, now, source_assets)

    notice = ""
    try:
        with open_snapshot() as snapshot:
            if snapshot is None:
                notice = (
                    f"<div class='notice'>{pill(NO_LOAD_YET)} No run has published the warehouse snapshot yet. "
                    f"Trigger <code>{ELT_DAG_ID}</code>: after each run this page shows what it loaded.</div>"
                )
            cards = "".join(card(source, snapshot) for source in sources)
    except SnapshotError as error:
        notice = f"<div class='problem'>{esc(error)}</div>"
        cards = "".join(card(source, None) for source in sources)
    intro = (
        f"<h1>Sources</h1><p class='lead'>{len(sources)} source{'s' if len(sources) != 1 else ''} in "
        f"<code>{esc(shown_path(sources_dir))}</code>; what each run loaded, from the warehouse snapshot.</p>"
    )
    return frame("Sources", "sources", links, intro + environment + problems_html(problems) + notice + cards)


def _environment_html(warehouse: Warehouse) -> str:
    """Which environment this deployment runs in and where it writes; on a server, that this page cannot show it."""
    line = (
        f"<p>Environment {pill(warehouse.environment)} writes the <b>{esc(warehouse.kind)}</b> warehouse through "
        f"Airflow connection <code>{esc(warehouse.connection_id)}</code> (dbt target "
        f"<code>{esc(warehouse.dbt_target)}</code>).</p>"
    )
    if not warehouse.is_embedded:
        line += (
            "<div class='notice'>This page reads the DuckDB snapshot, which a server warehouse does not have: "
            "the loads below are not this environment's. Query the warehouse (and its <code>mallard_meta</code> "
            "schema) directly.</div>"
        )
    return line
