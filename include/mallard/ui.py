"""HTML for the Mallard page in the Airflow UI (Browse > Mallard sources)."""

from __future__ import annotations

import html
from pathlib import Path

from include.mallard.config import ConfigError, load_sources

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5rem}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}.error{color:#b00020}"
)


def render_sources_page(sources_dir: Path) -> str:
    """The source configs as a table, or every config problem with its file, field and fix."""
    rows: list[str] = []
    try:
        sources = load_sources(sources_dir, include_disabled=True)
    except ConfigError as error:
        items = "".join(f"<li>{html.escape(str(problem))}</li>" for problem in error.problems)
        body = f"<h2 class='error'>The source configs have problems</h2><ul class='error'>{items}</ul>"
    else:
        for source in sources:
            cells = (
                source.name,
                source.kind,
                source.dataset_name,
                "yes" if source.enabled else "no",
                source.description,
            )
            rows.append("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in cells) + "</tr>")
        header = "".join(f"<th>{name}</th>" for name in ("source", "kind", "schema", "enabled", "description"))
        body = f"<table><tr>{header}</tr>{''.join(rows)}</table>"
    return (
        f"<!doctype html><html><head><title>Mallard sources</title><style>{_STYLE}</style></head>"
        f"<body><h1>Mallard sources</h1><p>From <code>{html.escape(str(sources_dir))}</code>.</p>{body}</body></html>"
    )
