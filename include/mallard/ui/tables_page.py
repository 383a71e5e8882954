"""The Tables page: a read-only preview of any table dbt builds (the manifest's models) or a raw table.

The user picks a table from the list; nothing they type reaches SQL. A requested name that is not
in the list is a 404, and names are quoted identifiers in the two queries (count, one page).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from include.mallard.ui.data import PAGE_SIZE, Snapshot, SnapshotError, TablePage, open_snapshot
from include.mallard.ui.dbt_models import dbt_project
from include.mallard.ui.html import Links, esc, frame, grid, number, pill

_CELL_LIMIT = 200


@dataclass(frozen=True)
class Choice:
    """A table the preview offers: dbt's (a model, seed or snapshot) or a source's raw table."""

    group: str
    schema: str
    table: str
    built: bool  # False: in the manifest but not in the snapshot yet


def choices(snapshot: Snapshot | None) -> list[Choice]:
    """Every table the preview may show: the manifest's tables, then the raw_<source> tables."""
    found: list[Choice] = []
    project = dbt_project()
    seen = set()
    for table in project.tables if project else ():
        built = snapshot is not None and snapshot.has(table.schema, table.name)
        found.append(Choice(f"dbt · {table.schema}", table.schema, table.name, built))
        seen.add((table.schema, table.name))
    if snapshot is not None:
        schemas = sorted({schema for schema, _ in snapshot.columns if schema.startswith("raw_")})
        for schema in schemas:
            for table in sorted(snapshot.raw_tables(schema)):
                if (schema, table) not in seen:
                    found.append(Choice(f"raw · {schema}", schema, table, True))
    return found


def _cell(value: Any) -> str:
    if value is None:
        return "<span class='muted'>null</span>"
    if isinstance(value, dt.datetime | dt.date):
        return esc(value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat())
    text = str(value)
    if len(text) > _CELL_LIMIT:
        return f"<span title='{esc(text[:2000])}'>{esc(text[:_CELL_LIMIT])}…</span>"
    return esc(text)


def _side(options: list[Choice], links: Links, current: tuple[str, str] | None) -> str:
    parts, group = [], None
    for choice in options:
        if choice.group != group:
            group = choice.group
            parts.append(f"<h3>{esc(group)}</h3>")
        if not choice.built:
            parts.append(
                f"<span class='muted' style='padding:3px 8px;display:block'>{esc(choice.table)} (not built yet)</span>"
            )
            continue
        active = " active" if current == (choice.schema, choice.table) else ""
        href = links.page("tables", choice.schema, choice.table)
        parts.append(f"<a class='{active.strip()}' href='{esc(href)}'>{esc(choice.table)}</a>")
    return "<div class='side'>" + "".join(parts) + "</div>"


def _pager(page: TablePage, links: Links) -> str:
    first = (page.page - 1) * page.page_size + 1 if page.rows else 0
    last = first + len(page.rows) - 1 if page.rows else 0
    prev_link = (
        f"<a href='{esc(links.page('tables', page.schema, page.table, page=page.page - 1))}'>&lsaquo; previous</a>"
        if page.page > 1
        else "<span class='muted'>&lsaquo; previous</span>"
    )
    next_link = (
        f"<a href='{esc(links.page('tables', page.schema, page.table, page=page.page + 1))}'>next &rsaquo;</a>"
        if page.page < page.pages
        else "<span class='muted'>next &rsaquo;</span>"
    )
    shown = (
        f"rows {number(first)}&ndash;{number(last)} of {number(page.row_count)}"
        if page.rows
        else "no rows on this page"
    )
    return f"<div class='pager'>{prev_link}<span>page {page.page} of {page.pages} · {shown}</span>{next_link}</div>"


def _preview(page: TablePage, links: Links) -> str:
    columns = "".join(f"<span class='col'>{esc(c.name)} <i>{esc(c.data_type)}</i></span>" for c in page.columns)
    rows = [[_cell(value) for value in row] for row in page.rows]
    data = grid([c.name for c in page.columns], rows, css="grid data")
    return (
        f"<div class='card-head'><h1>{esc(page.schema)}.{esc(page.table)}</h1>"
        f"{pill(number(page.row_count) + ' rows')}</div>"
        f"<h3>Columns ({len(page.columns)})</h3><div class='cols'>{columns}</div>"
        f"<h3>Rows</h3>{_pager(page, links)}<div class='scroll'>{data}</div>"
        f"{_pager(page, links)}"
    )


def render_tables_page(links: Links, schema: str | None = None, table: str | None = None, page: int = 1) -> str | None:
    """The table list, and the preview of `schema.table` if given; None when it is not in the list (a 404)."""
    intro = "<p class='lead'>Read-only, from the warehouse snapshot: pick a table to see its first rows.</p>"
    try:
        with open_snapshot() as snapshot:
            options = choices(snapshot)
            current = (schema, table) if schema is not None and table is not None else None
            if current is not None:
                if not any(c.built and (c.schema, c.table) == current for c in options):
                    return None
                assert snapshot is not None  # a built choice exists only with a snapshot
                main = _preview(snapshot.table_page(current[0], current[1], page, PAGE_SIZE), links)
            elif snapshot is None:
                main = (
                    "<h1>Tables</h1>"
                    + intro
                    + "<div class='notice'>No run has published the warehouse snapshot yet.</div>"
                )
            else:
                main = "<h1>Tables</h1>" + intro + "<p class='muted'>Pick a table on the left.</p>"
    except SnapshotError as error:
        return frame("Tables", "tables", links, f"<h1>Tables</h1><div class='problem'>{esc(error)}</div>")
    body = f"<div class='layout'>{_side(options, links, current)}<div>{main}</div></div>"
    return frame(f"{schema}.{table}" if current else "Tables", "tables", links, body)
