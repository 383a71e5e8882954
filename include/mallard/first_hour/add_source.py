"""`mallard add source`: ask for a kind's few fields, preview a dry extract, write include/sources/<name>.yml.

Every question has a flag; without a terminal a missing answer is an error naming its flag. Secrets
are asked for by reference (an env var or an Airflow connection), never as values.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from include.mallard.config.base import CONNECTION_ID_PATTERN, ENV_NAME_PATTERN
from include.mallard.first_hour.preview import TablePreview
from include.mallard.paths import PROJECT_ROOT, resolve_project_path

KINDS = ("files", "rest_api", "sql_database")
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
AUTH_TYPES = ("none", "bearer", "api_key", "basic")
PAGINATORS = ("auto", "page_number", "offset", "cursor", "next_link", "header_link", "single_page")
HEADER = (
    "# yaml-language-server: $schema=../../docs/source.schema.json\n"
    "# Written by `mallard add source`; every field is described in docs/sources.md.\n"
)
_CURSOR_NAMES = ("updated_at", "modified_at", "last_modified", "updated", "changed_at", "created_at")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class AddSourceError(ValueError):
    """An answer that cannot make a valid source; the message names the flag or question and the fix."""


@dataclass
class Answers:
    """What `add source` needs; None means "ask" (or fail without a terminal)."""

    name: str | None = None
    kind: str | None = None
    path: str | None = None
    glob: str | None = None
    format: str | None = None
    table: str | None = None
    base_url: str | None = None
    resources: list[str] = field(default_factory=list)
    data_selector: str | None = None
    paginator: str | None = None
    cursor_path: str | None = None
    cursor_param: str | None = None
    auth: str | None = None
    secret: str | None = None
    sql_tables: list[str] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)
    cursor: str | None = None


# ask(question, flag, default, choices) -> the answer; raises AddSourceError when it cannot ask.
Asker = Callable[[str, str, str | None, tuple[str, ...] | None], str]


def no_terminal_asker(question: str, flag: str, default: str | None, choices: tuple[str, ...] | None) -> str:
    """For scripts: a default is taken, anything else must come as a flag."""
    if default is not None:
        return default
    raise AddSourceError(f"{question}: give it with {flag} (no terminal to ask on)")


def prompt_asker(question: str, flag: str, default: str | None, choices: tuple[str, ...] | None) -> str:
    """Ask on the terminal with click's prompt, which checks the choices (typer's own wants Python types)."""
    import click

    kind = click.Choice(list(choices)) if choices else None
    # The choices are written into the question: how prompts show them differs between click versions.
    shown = f"{question} ({', '.join(choices)})" if choices else question
    return str(click.prompt(shown, default=default, type=kind, show_choices=False))


def secret_ref(value: str, flag: str) -> dict[str, str]:
    """`NAME` -> {env: NAME}; `connection:ID` -> {connection: ID}. Anything else is refused, unechoed."""
    if value.startswith("connection:"):
        conn_id = value.removeprefix("connection:")
        if re.match(CONNECTION_ID_PATTERN, conn_id):
            return {"connection": conn_id}
    elif re.match(ENV_NAME_PATTERN, value):
        return {"env": value}
    raise AddSourceError(
        f"{flag}: that is not an env var name or `connection:<id>` (value hidden). Mallard never writes a secret "
        "into a file: export it as an env var (e.g. SHOP_API_TOKEN) and give its name, or `connection:<id>`"
    )


def formats_under(folder: Path) -> Counter[str]:
    """How many files of each readable format are under `folder` (recursively)."""
    return Counter(FORMATS[p.suffix.lower()] for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in FORMATS)


def _files_document(answers: Answers, ask: Asker, say: Callable[[str], None]) -> dict[str, Any]:
    path = answers.path or ask(
        "Folder with the files (relative to the project root, or an s3:// URL)", "--path", None, None
    )
    folder = resolve_project_path(path)
    found = Counter[str]()
    if "://" not in path:
        if not folder.is_dir():
            raise AddSourceError(f"--path {path}: {folder} is not a folder; give the folder that holds the files")
        found = formats_under(folder)
        if not found:
            raise AddSourceError(f"--path {path}: no .csv, .jsonl or .parquet file under {folder}")
        say("found: " + ", ".join(f"{count} {fmt}" for fmt, count in found.most_common()) + f" file(s) in {folder}")
    common = found.most_common(1)[0][0] if found else "csv"
    glob = answers.glob or ask("Glob of the table's files", "--glob", f"*.{common}", None)
    guessed = next((fmt for suffix, fmt in FORMATS.items() if glob.lower().endswith(suffix)), common)
    fmt = answers.format or ask("Format", "--format", guessed, ("csv", "jsonl", "parquet"))
    table = answers.table or ask("Table name", "--table", answers.name, None)
    return {"kind": "files", "path": path, "tables": [{"name": table, "glob": glob, "format": fmt}]}


def _auth(answers: Answers, ask: Asker) -> dict[str, Any] | None:
    auth = answers.auth or ask("Auth", "--auth", "none", AUTH_TYPES)
    if auth == "none":
        return None
    what = {"bearer": "token", "api_key": "key", "basic": "password"}[auth]
    question = f"Env var holding the {what} (or connection:<id>)"
    ref = secret_ref(answers.secret or ask(question, "--secret", None, None), "--secret")
    field_name = {"bearer": "token", "api_key": "api_key", "basic": "password"}[auth]
    return {"type": auth, field_name: ref}


def _rest_document(answers: Answers, ask: Asker) -> dict[str, Any]:
    base_url = answers.base_url or ask("Base URL of the API", "--base-url", None, None)
    names = answers.resources or ask("Endpoints to load (comma-separated paths)", "--resource", None, None).split(",")
    document: dict[str, Any] = {"kind": "rest_api", "base_url": base_url}
    if auth := _auth(answers, ask):
        document["auth"] = auth
    paginator = answers.paginator or ask("Paginator", "--paginator", "auto", PAGINATORS)
    if paginator != "auto":
        spec: dict[str, Any] = {"type": paginator}
        if paginator == "cursor":
            spec["cursor_path"] = answers.cursor_path or ask(
                "JSON path of the next cursor", "--cursor-path", None, None
            )
            spec["cursor_param"] = answers.cursor_param or ask(
                "Query parameter of the cursor", "--cursor-param", None, None
            )
        document["paginator"] = spec
    selector = answers.data_selector or ask("JSON path of the records (empty: guessed)", "--data-selector", "", None)
    resources = []
    for raw in (name.strip() for name in names if name.strip()):
        resource: dict[str, Any] = {"name": re.sub(r"\W+", "_", raw.strip("/")).lower(), "path": raw}
        if resource["name"] == raw:
            del resource["path"]
        if selector:
            resource["data_selector"] = selector
        resources.append(resource)
    document["resources"] = resources
    return document


def _sql_document(answers: Answers, ask: Asker) -> dict[str, Any]:
    question = "Env var holding the database URL (or connection:<id>)"
    credentials = secret_ref(answers.secret or ask(question, "--secret", None, None), "--secret")
    tables = answers.sql_tables or ask("Tables to load (comma-separated)", "--sql-table", None, None).split(",")
    return {"kind": "sql_database", "credentials": credentials, "tables": [{"name": t.strip()} for t in tables if t]}


def draft_document(answers: Answers, ask: Asker, say: Callable[[str], None]) -> dict[str, Any]:
    """The source file's content from the answers (asking for what is missing), without keys yet."""
    kind = answers.kind or ask("Kind of source", "--kind", "files", KINDS)
    if kind not in KINDS:
        raise AddSourceError(f"--kind {kind}: choose one of {', '.join(KINDS)} (python and synthetic: docs/sources.md)")
    answers.kind = kind
    build = {"files": lambda: _files_document(answers, ask, say), "rest_api": lambda: _rest_document(answers, ask)}
    return build.get(kind, lambda: _sql_document(answers, ask))()


def suggest_primary_key(preview: TablePreview) -> list[str]:
    """An id-like column whose sampled values are all present and distinct."""
    singular = preview.name.removesuffix("s")
    names = ["id", f"{preview.name}_id", f"{singular}_id"] + [c for c in preview.columns if c.endswith("_id")]
    for name in dict.fromkeys(names):
        values = [row.get(name) for row in preview.rows]
        if name in preview.columns and values and None not in values and len(set(values)) == len(values):
            return [name]
    return []


def suggest_cursor(preview: TablePreview) -> str | None:
    """A column that tells when a row changed: a usual name first, then any timestamp or date."""
    for name in _CURSOR_NAMES:
        if preview.columns.get(name) in ("timestamp", "date"):
            return name
    return next((n for n, t in preview.columns.items() if t in ("timestamp", "date")), None)


def _tables_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    return document.get("tables") or document.get("resources") or []


def apply_keys(
    document: dict[str, Any], previews: list[TablePreview], answers: Answers, ask: Asker, say: Callable[[str], None]
) -> None:
    """Set each table's primary key (and for files a cursor) from the flags, the user, or the data seen."""
    by_name = {preview.name: preview for preview in previews}
    tables = _tables_of(document)
    for table in tables:
        preview = by_name.get(table["name"])
        suggested = suggest_primary_key(preview) if preview else []
        given = answers.primary_key if len(tables) == 1 else []
        key = given or [
            k
            for k in ask(
                f"Primary key of {table['name']} (empty: none)", "--primary-key", ",".join(suggested), None
            ).split(",")
            if k
        ]
        if key:
            table["primary_key"] = key[0] if len(key) == 1 else key
        cursor = suggest_cursor(preview) if preview else None
        if document["kind"] == "files":
            chosen = answers.cursor if len(tables) == 1 and answers.cursor else None
            chosen = chosen or ask(f"Cursor of {table['name']} (empty: reload all each run)", "--cursor", "", None)
            if chosen:
                table["cursor"] = chosen
            elif cursor:
                say(f"suggested cursor for {table['name']}: {cursor} (add `cursor: {cursor}` to load by interval)")
        elif cursor:
            say(f"suggested cursor for {table['name']}: {cursor} (see `incremental:` in docs/sources.md)")


def write_source(document: dict[str, Any], target: Path) -> Path:
    """Write the file with the schema comment line, then validate it as the DAG will; undo on failure."""
    from include.mallard.config.loader import parse_source_file

    target.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True)
    target.write_text(HEADER + body, encoding="utf-8")
    try:
        parse_source_file(target)
    except Exception:
        target.unlink()
        raise
    return target


def relative(path: Path) -> str:
    """`path` relative to the project root when it is inside it."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def check_name(name: str, sources_dir: Path, force: bool) -> Path:
    """The target file of source `name`; refuses a bad name or an existing file (unless --force)."""
    if not _NAME.match(name):
        raise AddSourceError(f"source name {name!r}: use lower case letters, digits and _ (it becomes raw_{name})")
    target = sources_dir / f"{name}.yml"
    if target.exists() and not force:
        raise AddSourceError(f"{target} exists already: choose another name, or --force to replace it")
    return target


def add_source(answers: Answers, sources_dir: Path, *, ask: Asker, force: bool = False, preview: bool = True) -> Path:
    """The whole command: draft, validate, dry extract, keys, write, validate again, show the preview."""
    from rich.console import Console

    from include.mallard.config.loader import validate_document
    from include.mallard.first_hour.preview import dry_extract, print_preview

    console = Console(highlight=False, soft_wrap=True)
    name = answers.name or ask("Source name (its data lands in raw_<name>)", "--name", None, None)
    answers.name = name
    target = check_name(name, sources_dir, force)
    document = {**draft_document(answers, ask, console.print)}
    # The draft is checked before any extract, so a wrong field is named as the loader names it.
    config = validate_document(target, copy.deepcopy(document))
    previews = dry_extract(config) if preview else []
    apply_keys(document, previews, answers, ask, console.print)
    written = write_source(document, target)
    console.print(f"wrote {relative(written)} (validated)")
    if preview:
        print_preview(previews)
    console.print("next: `mallard run` loads it (`mallard doctor` if something is off)")
    return written
