"""Each source's Airflow Assets on the Sources page: one per raw table, with its last event.

A source's Assets are its load task's declared outlets (the raw tables dbt reads, on DuckDB) and
those its load adds through the source's AssetAlias (`raw_<source>`, assets.py). They are read
from Airflow's metadata database (the task's outlet references, the alias's Assets, each one's
newest event), not from the warehouse.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from include.mallard.assets import load_task_id, source_alias_name
from include.mallard.ui.html import Links, age, esc, grid, link, number, pill, when

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@dataclass(frozen=True)
class AssetEventSeen:
    """An Asset event as the page shows it."""

    at: dt.datetime
    dag_id: str | None
    run_id: str | None
    task_id: str | None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceAsset:
    """One Asset of a source's alias and its newest event (None: Airflow has none recorded)."""

    asset_id: int
    name: str
    last_event: AssetEventSeen | None

    @property
    def table(self) -> str:
        """`schema.table`: the name ends in the warehouse path, which the UI never shows."""
        return ".".join(self.name.rstrip("/").split("/")[-2:])


def source_assets(session: Session, source_names: Iterable[str]) -> dict[str, list[SourceAsset]]:
    """source name -> its alias's Assets with their newest events (read-only, Airflow's database)."""
    from airflow.models.asset import (
        AssetAliasModel,
        AssetEvent,
        AssetModel,
        TaskOutletAssetReference,
        alias_association_table,
    )
    from sqlalchemy import func, select, union

    names = list(source_names)
    aliases = {source_alias_name(name): name for name in names}
    load_tasks = {load_task_id(name): name for name in names}
    if not aliases:
        return {}
    through_alias = (
        select(AssetAliasModel.name.label("owner"), AssetModel.id, AssetModel.name)
        .join(alias_association_table, alias_association_table.c.alias_id == AssetAliasModel.id)
        .join(AssetModel, AssetModel.id == alias_association_table.c.asset_id)
        .where(AssetAliasModel.name.in_(aliases))
    )
    declared = (
        select(TaskOutletAssetReference.task_id.label("owner"), AssetModel.id, AssetModel.name)
        .join(AssetModel, AssetModel.id == TaskOutletAssetReference.asset_id)
        .where(TaskOutletAssetReference.task_id.in_(load_tasks))
    )
    owners = {**aliases, **load_tasks}
    rows = [
        (owners[owner], asset_id, name) for owner, asset_id, name in session.execute(union(through_alias, declared))
    ]
    newest = (
        select(func.max(AssetEvent.id))
        .where(AssetEvent.asset_id.in_([asset_id for _, asset_id, _ in rows]))
        .group_by(AssetEvent.asset_id)
    )
    events = {
        event.asset_id: AssetEventSeen(
            event.timestamp, event.source_dag_id, event.source_run_id, event.source_task_id, event.extra or {}
        )
        for event in session.scalars(select(AssetEvent).where(AssetEvent.id.in_(newest)))
    }
    found: dict[str, dict[int, SourceAsset]] = {}
    for source, asset_id, name in rows:  # an Asset both declared and aliased (another DAG's copy) counts once
        found.setdefault(source, {})[asset_id] = SourceAsset(asset_id, name, events.get(asset_id))
    return {source: sorted(assets.values(), key=lambda a: a.name) for source, assets in found.items()}


def assets_html(source_name: str, assets: list[SourceAsset] | None, links: Links, now: dt.datetime) -> str:
    """The source card's Assets section; None: Airflow was not asked (no database at hand)."""
    alias = esc(source_alias_name(source_name))
    head = (
        "<h3>Assets</h3><p class='muted'>The load task's declared Assets, and those it adds through the alias "
        f"<code>{alias}</code>.</p>"
    )
    if assets is None:
        return ""
    if not assets:
        return head + f"<p>{pill('no event yet')} <span class='muted'>Airflow has no Asset event from it.</span></p>"
    rows = []
    for asset in assets:
        event = asset.last_event
        name = link(f"{links.airflow}/assets/{asset.asset_id}", asset.table, top=True)
        if event is None:
            rows.append([name, pill("no event yet"), "", "", ""])
            continue
        interval = event.extra.get("interval") or []
        run = link(links.task(event.dag_id, event.run_id), event.run_id, top=True) if event.dag_id else "—"
        rows.append(
            [
                name,
                f"{esc(when(event.at))} ({esc(age(event.at, now))})",
                f"{run}<br><span class='muted'>{esc(event.task_id or '')}</span>",
                number(event.extra.get("rows")),
                esc(" → ".join(when(dt.datetime.fromisoformat(bound)) for bound in interval)) or "—",
            ]
        )
    headers = ("Asset (raw table)", "last event", "by run", "rows", "interval")
    return head + grid(headers, rows, numeric=(3,))
