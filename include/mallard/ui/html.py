"""The page frame and small HTML helpers shared by the Mallard pages.

Server-rendered HTML styled after Airflow 3's UI (Chakra's neutral grays, its blue links and
state colours), shown inside the Airflow UI (an external view with a `url_route`), so it sits
under Airflow's own navigation. Every value is escaped here or by the caller with `esc`.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote as url_quote

STYLE = """
:root{--fg:#18181b;--muted:#71717a;--border:#e4e4e7;--subtle:#f4f4f5;--brand:#0b6bcb;
--ok:#15803d;--ok-bg:#dcfce7;--bad:#b91c1c;--bad-bg:#fee2e2;--warn:#a16207;--warn-bg:#fef9c3;--off-bg:#f4f4f5}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 Inter,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:#fff}
header{display:flex;align-items:center;gap:24px;padding:12px 24px;border-bottom:1px solid var(--border)}
header .brand{font-weight:700;font-size:18px;display:flex;align-items:center;gap:8px}
nav a{display:inline-block;padding:6px 12px;margin-right:4px;border-radius:6px;color:var(--fg);text-decoration:none}
nav a:hover{background:var(--subtle)}nav a.active{background:var(--brand);color:#fff}
main{padding:20px 24px;max-width:1500px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:0}h3{font-size:13px;margin:14px 0 6px;color:var(--muted);
text-transform:uppercase;letter-spacing:.04em}
a{color:var(--brand)}code{font:12.5px ui-monospace,SFMono-Regular,Menlo,monospace;background:var(--subtle);
padding:1px 5px;border-radius:4px}
.muted{color:var(--muted)}.lead{color:var(--muted);margin:0 0 16px}
.card{border:1px solid var(--border);border-radius:8px;padding:16px;margin:0 0 16px;background:#fff}
.card-head{display:flex;flex-wrap:wrap;align-items:center;gap:10px;margin-bottom:6px}
.facts{display:flex;flex-wrap:wrap;gap:4px 18px;margin:6px 0;color:var(--muted)}
.facts b{color:var(--fg);font-weight:600}
.pill{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;background:var(--subtle)}
.state-success,.state-passed{background:var(--ok-bg);color:var(--ok)}
.state-failed,.state-error{background:var(--bad-bg);color:var(--bad)}
.state-warn,.state-running,.state-queued{background:var(--warn-bg);color:var(--warn)}
.state-skipped,.state-none,.state-disabled,.state-upstream_failed{background:var(--off-bg);color:var(--muted)}
table.grid{border-collapse:collapse;width:100%;margin:6px 0}
.grid th,.grid td{border-bottom:1px solid var(--border);padding:6px 10px;text-align:left;vertical-align:top}
.grid th{background:var(--subtle);font-weight:600;font-size:12.5px;white-space:nowrap}
.grid.data td{white-space:nowrap}.grid td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.cols{display:flex;flex-wrap:wrap;gap:4px}
.col{border:1px solid var(--border);border-radius:5px;padding:0 6px;font-size:12px;white-space:nowrap}
.col i{color:var(--muted);font-style:normal;font:11.5px ui-monospace,Menlo,monospace}.col.dlt{opacity:.55}
.notice{border:1px solid var(--border);background:var(--subtle);border-radius:8px;padding:12px 16px;margin:0 0 16px}
.problem{border:1px solid #fca5a5;background:#fef2f2;border-radius:8px;padding:12px 16px;margin:0 0 16px}
.problem li{margin:4px 0}.fix{color:var(--ok);font-weight:600}
.layout{display:grid;grid-template-columns:280px 1fr;gap:20px}
.side a{display:block;padding:3px 8px;border-radius:5px;text-decoration:none;color:var(--fg);font-size:13px}
.side a:hover{background:var(--subtle)}.side a.active{background:var(--brand);color:#fff}
.scroll{overflow-x:auto}.pager{display:flex;gap:12px;align-items:center;margin:8px 0}
td.null{color:var(--muted);font-style:italic}
"""

# A duck, as a data URI: the nav icon of the external view (no route of its own to guard).
ICON = (
    "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24'>"
    "<path d='M3 14c0 4 4 7 9 7s9-3 9-7c-3 1-6 0-8-2-2 1-6 0-10 2z' fill='%23f5b301'/>"
    "<circle cx='9' cy='8' r='4.5' fill='%232f855a'/><path d='M13 8.5l4 1-4 1.5z' fill='%23ed8936'/>"
    "<circle cx='9.5' cy='7' r='.9' fill='%23fff'/></svg>"
)


@dataclass(frozen=True)
class Links:
    """Where things are: Mallard's own pages (`base`, e.g. /mallard) and the Airflow UI (`airflow`)."""

    base: str
    airflow: str = ""

    def page(self, *parts: str, **query: object) -> str:
        path = "/".join(url_quote(part, safe="") for part in parts)
        args = "&".join(f"{key}={url_quote(str(value), safe='')}" for key, value in query.items())
        return f"{self.base}/{path}" + (f"?{args}" if args else "")

    def task(self, dag_id: str, run_id: str, task_id: str | None = None) -> str:
        """The Airflow 3 UI's page of a task of a run (its log), or of the run itself."""
        url = f"{self.airflow}/dags/{url_quote(dag_id, safe='')}/runs/{url_quote(run_id, safe='')}"
        return url + (f"/tasks/{url_quote(task_id, safe='')}" if task_id else "")

    @property
    def dbt_docs(self) -> str:
        return f"{self.airflow}/cosmos/mallard/dbt_docs_index.html"


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def pill(text: str, state: str | None = None) -> str:
    return f"<span class='pill state-{esc(state or 'none')}'>{esc(text)}</span>"


def link(href: str, text: str, *, top: bool = False, new_tab: bool = False) -> str:
    """A link; `top`: an Airflow page, opened in the whole window; `new_tab`: in a new tab (see SCRIPT)."""
    if top:
        return f"<a href='{esc(href)}' target='_top' data-outside='top'>{esc(text)}</a>"
    if new_tab:
        return f"<a href='{esc(href)}' target='_blank' rel='noopener' data-outside='tab'>{esc(text)}</a>"
    return f"<a href='{esc(href)}'>{esc(text)}</a>"


# Inside the Airflow UI the page is in an iframe sandboxed without allow-top-navigation and
# allow-popups, so `target=_top` and `_blank` do nothing there. The frame is same-origin: such a
# link is followed from an anchor in the top document instead, which the sandbox does not cover.
SCRIPT = """
document.addEventListener('click', function (event) {
  var a = event.target.closest('a[data-outside]');
  if (!a || window.top === window) return;
  try {
    var doc = window.top.document, proxy = doc.createElement('a');
    proxy.href = a.href;
    if (a.dataset.outside === 'tab') { proxy.target = '_blank'; proxy.rel = 'noopener'; }
    doc.body.appendChild(proxy); proxy.click(); proxy.remove();
    event.preventDefault();
  } catch (error) { /* not same-origin: the browser follows the link as it can */ }
});
"""


def utc(value: dt.datetime | dt.date | None) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def when(value: dt.datetime | dt.date | None) -> str:
    moment = utc(value)
    if moment is None:
        return "—"
    if moment.hour == moment.minute == moment.second == 0:
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def age(value: dt.datetime | dt.date | None, now: dt.datetime) -> str:
    """How long ago, in the largest unit that fits: `3 min ago`, `2 days ago`."""
    moment = utc(value)
    if moment is None:
        return "—"
    seconds = (now - moment).total_seconds()
    if seconds < 0:
        return "in the future"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if unit == 'day' and count != 1 else ''} ago"
    return "just now"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def number(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def grid(headers: Iterable[str], rows: Iterable[Iterable[str]], numeric: Iterable[int] = (), css: str = "grid") -> str:
    """A table of already-escaped cells; `numeric` are the indexes of right-aligned columns."""
    right = set(numeric)
    head = "".join(f"<th>{esc(name)}</th>" for name in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td class='num'>{c}</td>" if i in right else f"<td>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table class='{css}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def frame(title: str, active: str, links: Links, body: str) -> str:
    """A whole page: Mallard's header with its tabs, then `body`."""
    tabs = [("sources", "Sources"), ("runs", "Runs"), ("tables", "Tables")]
    nav = "".join(
        f"<a href='{esc(links.page(key))}' class='{'active' if key == active else ''}'>{esc(label)}</a>"
        for key, label in tabs
    )
    nav += link(links.dbt_docs, "dbt docs ↗", new_tab=True)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Mallard · {esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><div class='brand'><img src=\"{ICON}\" width='22' height='22' alt=''>Mallard</div>"
        f"<nav>{nav}</nav></header><main>{body}</main><script>{SCRIPT}</script></body></html>"
    )
