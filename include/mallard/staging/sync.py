"""Bring a source's generated dbt files in line with dlt's schema, in two steps.

`plan_staging` decides, file by file, what to create, update, remove or leave alone: it reads the
project but writes nothing. `apply_plan` carries the plan out. `sync_staging` does both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from include.mallard.dbt_project import DbtProjectError, model_paths
from include.mallard.staging.ownership import (
    UserDefinitions,
    file_state,
    user_definitions,
    why_user_owned,
    with_marker,
    write_atomic,
)
from include.mallard.staging.render import (
    DEFAULT_FRESHNESS,
    model_name,
    render_model_sql,
    render_model_yml,
    render_sources_yml,
)
from include.mallard.staging.schema import Table, tables_from_dlt_schema


class StagingError(RuntimeError):
    """Staging cannot be generated (nothing loaded, no dlt schema, no dbt project...)."""


@dataclass
class StagingResult:
    """What one generation did. Paths are relative to the dbt project (absolute in a `StagingPlan`)."""

    source: str
    directory: Path
    created: list[Path] = field(default_factory=list)
    updated: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    # User-owned files that were left alone, with why.
    user_owned: dict[Path, str] = field(default_factory=dict)
    # Models not generated because one of their files (or their source) is the user's.
    skipped_models: list[str] = field(default_factory=list)
    # Tables the user's sources YAML does not declare (their models cannot be generated).
    missing_from_user_sources: list[str] = field(default_factory=list)
    # User-owned model files of tables no longer generated (gone from dlt's schema or the user's sources YAML).
    orphaned: list[Path] = field(default_factory=list)

    def relative_to(self, root: Path) -> StagingResult:
        """The same result with its paths relative to `root` (a plan's are absolute)."""

        def relative(paths: Iterable[Path]) -> list[Path]:
            return [path.relative_to(root) for path in paths]

        return replace(
            self,
            directory=self.directory.relative_to(root),
            created=relative(self.created),
            updated=relative(self.updated),
            unchanged=relative(self.unchanged),
            removed=relative(self.removed),
            user_owned={path.relative_to(root): why for path, why in self.user_owned.items()},
            orphaned=relative(self.orphaned),
        )

    @property
    def changed(self) -> bool:
        """True when files were written or removed: the manifest must be rebuilt."""
        return bool(self.created or self.updated or self.removed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (an Airflow task's return value)."""
        return {
            "source": self.source,
            "directory": str(self.directory),
            "created": [str(p) for p in self.created],
            "updated": [str(p) for p in self.updated],
            "unchanged": [str(p) for p in self.unchanged],
            "removed": [str(p) for p in self.removed],
            "user_owned": {str(p): why for p, why in self.user_owned.items()},
            "skipped_models": self.skipped_models,
            "missing_from_user_sources": self.missing_from_user_sources,
            "orphaned": [str(p) for p in self.orphaned],
        }

    def report(self) -> str:
        """A human summary, one line per file that matters."""
        lines = [f"staging for source {self.source!r} in {self.directory}:"]
        lines += [f"  created    {p}" for p in self.created]
        lines += [f"  updated    {p}" for p in self.updated]
        lines += [f"  removed    {p} (its table is gone from dlt's schema or your sources YAML)" for p in self.removed]
        lines += [f"  left alone {p}: {why}" for p, why in self.user_owned.items()]
        if self.skipped_models:
            lines.append(f"  not generated (user-owned): {', '.join(self.skipped_models)}")
        if self.missing_from_user_sources:
            lines.append(
                "  your sources YAML lacks tables "
                f"{', '.join(self.missing_from_user_sources)}: add them to it (or delete the file to have it generated)"
            )
        lines += [f"  orphaned   {p}: user-owned, and its table is no longer generated" for p in self.orphaned]
        lines.append(f"  {len(self.unchanged)} file(s) unchanged")
        return "\n".join(lines)


@dataclass
class StagingPlan:
    """What `apply_plan` will do: the result it will report, with absolute paths, and the texts to write."""

    dbt_project_dir: Path
    result: StagingResult
    texts: dict[Path, str] = field(default_factory=dict)  # of every created or updated file, marker included
    # Every file this generation accounts for; other stg_<source>__* files are stale.
    planned: set[Path] = field(default_factory=set)

    @property
    def source(self) -> str:
        return self.result.source

    @property
    def directory(self) -> Path:
        return self.result.directory

    def put(self, path: Path, text: str) -> None:
        """Plan to write `text` to `path`, unless the file is the user's or already says it."""
        state = file_state(path)
        if state == "user":
            self.result.user_owned[path] = why_user_owned(path)
            return
        if state == "generated" and path.read_text(encoding="utf-8") == text:
            self.result.unchanged.append(path)
            return
        (self.result.created if state == "missing" else self.result.updated).append(path)
        self.texts[path] = text


def _model_roots(dbt_project_dir: Path) -> list[Path]:
    try:
        return model_paths(dbt_project_dir)
    except DbtProjectError as error:
        raise StagingError(str(error)) from error


def staging_dir(dbt_project_dir: Path, source_name: str) -> Path:
    """Where a source's generated dbt files go: <first model path>/staging/<source>/."""
    return _model_roots(dbt_project_dir)[0] / "staging" / source_name


def plan_staging(
    source_name: str,
    dlt_schema: Mapping[str, Any],
    dbt_project_dir: Path,
    *,
    cursors: Mapping[str, str] | None = None,
    description: str = "",
    freshness: Mapping[str, Any] | None = DEFAULT_FRESHNESS,
) -> StagingPlan:
    """Decide what syncing `source_name` with `dlt_schema` does; read files, write none."""
    tables = tables_from_dlt_schema(dlt_schema, cursors)
    if not tables:
        raise StagingError(f"dlt's schema of raw_{source_name} has no loaded tables: load the source first")
    roots = _model_roots(dbt_project_dir)
    plan = StagingPlan(dbt_project_dir, StagingResult(source_name, roots[0] / "staging" / source_name))
    user = user_definitions(roots)
    sources_text = render_sources_yml(source_name, tables, description=description, freshness=freshness)
    declared = _plan_sources_file(plan, tables, user, with_marker(sources_text, "#"))
    _plan_models(plan, [t for t in tables if t.name in declared], declared, user)
    _plan_removals(plan)
    return plan


def _plan_sources_file(plan: StagingPlan, tables: list[Table], user: UserDefinitions, text: str) -> set[str]:
    """The sources YAML is ours unless the user declares this source anywhere; the declared tables."""
    sources_file = plan.directory / f"_{plan.source}__sources.yml"
    plan.planned.add(sources_file)
    if plan.source not in user.sources:
        plan.put(sources_file, text)
        return {t.name for t in tables}
    user_file, user_tables = user.sources[plan.source]
    plan.result.user_owned[user_file] = f"declares source {plan.source!r}"
    # A table missing there has no source to select from: its model could not compile.
    plan.result.missing_from_user_sources = [t.name for t in tables if t.name not in user_tables]
    return user_tables


def _plan_models(plan: StagingPlan, tables: list[Table], declared: set[str], user: UserDefinitions) -> None:
    """One model (SQL + YAML) per declared table; skipped whole when any of its files is the user's."""
    generated: set[str] = set()
    for table in tables:
        name = model_name(plan.source, table.name)
        sql_file, yml_file = plan.directory / f"{name}.sql", plan.directory / f"{name}.yml"
        plan.planned |= {sql_file, yml_file}
        if _user_owns_model(plan, name, (sql_file, yml_file), user):
            plan.result.skipped_models.append(name)
            continue
        plan.put(sql_file, with_marker(render_model_sql(plan.source, table), "--"))
        parent_ref = _parent_ref(plan.source, table, generated, declared)
        plan.put(yml_file, with_marker(render_model_yml(plan.source, table, parent_ref), "#"))
        generated.add(name)


def _user_owns_model(plan: StagingPlan, name: str, files: tuple[Path, ...], user: UserDefinitions) -> bool:
    """Whether model `name` is the user's (one of its files here, or defined elsewhere); say why."""
    owned = [path for path in files if file_state(path) == "user"]
    for path in owned:
        plan.result.user_owned[path] = f"{why_user_owned(path)}; model {name} not generated"
    elsewhere = user.models.get(name)
    if elsewhere and not owned:
        plan.result.user_owned[elsewhere] = f"defines {name}; the model is not generated"
    return bool(owned or elsewhere)


def _parent_ref(source_name: str, table: Table, generated: set[str], declared: set[str]) -> str | None:
    """What a nested table's parent key is tested against (None: no relationship test)."""
    if not table.parent:
        return None
    parent_model = model_name(source_name, table.parent)
    if parent_model in generated:
        return f"ref('{parent_model}')"
    if table.parent in declared:
        # The parent model is the user's (it may not keep _dlt_id): test against the raw table.
        return f"source('{source_name}', '{table.parent}')"
    return None


def _plan_removals(plan: StagingPlan) -> None:
    """Files of tables no longer generated: ours go (their source table is gone), the user's are reported."""
    if not plan.directory.is_dir():
        return
    for path in sorted(plan.directory.glob(f"stg_{plan.source}__*")):
        if path in plan.planned or path.suffix not in (".sql", ".yml"):
            continue
        if file_state(path) == "generated":
            plan.result.removed.append(path)
        else:
            plan.result.orphaned.append(path)


def apply_plan(plan: StagingPlan) -> StagingResult:
    """Write and remove the files of `plan`; what was done, relative to the dbt project."""
    for path, text in plan.texts.items():
        write_atomic(path, text)
    for path in plan.result.removed:
        path.unlink()
    return plan.result.relative_to(plan.dbt_project_dir)


def sync_staging(
    source_name: str,
    dlt_schema: Mapping[str, Any],
    dbt_project_dir: Path,
    *,
    cursors: Mapping[str, str] | None = None,
    description: str = "",
    freshness: Mapping[str, Any] | None = DEFAULT_FRESHNESS,
) -> StagingResult:
    """Bring the generated dbt files of `source_name` in line with `dlt_schema`; never touch user files."""
    plan = plan_staging(
        source_name, dlt_schema, dbt_project_dir, cursors=cursors, description=description, freshness=freshness
    )
    return apply_plan(plan)
