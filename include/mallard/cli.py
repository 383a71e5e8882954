"""The `mallard` command: `mallard validate|manifest|schema|marts|staging` (`mallard --help`).

Installed by `make install` into `.venv/bin/mallard` (pyproject's `[project.scripts]`); it finds the
project's environment itself (`scripts/env.sh`), so nothing needs to be sourced first.
`python -m include.mallard.cli ...` is the same command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from include.mallard.environment import apply_project_environment
from include.mallard.paths import DBT_PROJECT_DIR, PROJECT_ROOT, SOURCES_DIR

SCHEMA_PATH = PROJECT_ROOT / "docs" / "source.schema.json"

app = typer.Typer(
    name="mallard",
    help="Mallard: config-driven dlt ingestion and Cosmos-rendered dbt on DuckDB, inside Airflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SourcesDir = Annotated[Path, typer.Option(help="The folder of source YAML files.", show_default="include/sources")]
DbtProjectDir = Annotated[Path, typer.Option(help="The dbt project.", show_default="include/dbt")]
StagingSource = Annotated[str | None, typer.Argument(help="The source whose raw_<source> tables get staging models.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


@app.command()
def validate(
    sources_dir: SourcesDir = SOURCES_DIR,
    dbt_project_dir: DbtProjectDir = DBT_PROJECT_DIR,
    check_references: Annotated[
        bool,
        typer.Option(help="Also check what the files point at: connections, env vars, python functions, folders."),
    ] = True,
) -> None:
    """Check every source config, mallard.yml and the dbt profile; print each problem with its file, field and fix."""
    from include.mallard.config import ConfigError, load_sources
    from include.mallard.config.project import settings_problems
    from include.mallard.dbt_project import DbtProjectError, check_profile
    from include.mallard.secrets import reference_issues

    try:
        sources = load_sources(
            sources_dir, include_disabled=True, extra_checks=reference_issues if check_references else None
        )
    except ConfigError as error:
        raise _fail(str(error)) from None
    for source in sources:
        state = "" if source.enabled else " (disabled)"
        typer.echo(f"ok  {source.name:<24} {source.kind:<12} -> {source.dataset_name}{state}")
    # mallard.yml and the dbt profile, which the DAG parse checks too.
    problems = [str(problem) for problem in settings_problems(sources_dir)]
    if not problems:
        typer.echo("ok  project settings (mallard.yml)")
    try:
        typer.echo(f"ok  dbt profile {check_profile(dbt_project_dir)}")
    except DbtProjectError as error:
        problems.append(str(error))
    if problems:
        raise _fail("\n".join(problems))


@app.command()
def manifest(dbt_project_dir: DbtProjectDir = DBT_PROJECT_DIR) -> None:
    """Build the dbt manifest (dbt parse) that Cosmos renders the DAG from."""
    from include.mallard.dbt_project import DbtProjectError, build_manifest

    try:
        path = build_manifest(dbt_project_dir)
    except DbtProjectError as error:
        raise _fail(str(error)) from None
    typer.echo(f"manifest built: {path}")


def source_json_schema() -> str:
    """The JSON Schema of a source file, for editors (`# yaml-language-server: $schema=...`)."""
    from include.mallard.config import SOURCE_ADAPTER

    schema = SOURCE_ADAPTER.json_schema()
    schema["title"] = "Mallard source config (include/sources/<name>.yml)"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


@app.command()
def schema(output: Annotated[Path, typer.Option(help="Where to write it.")] = SCHEMA_PATH) -> None:
    """Write the JSON Schema of source files (docs/source.schema.json)."""
    output.write_text(source_json_schema(), encoding="utf-8")
    typer.echo(f"wrote {output}")


@app.command()
def marts(
    schema: Annotated[
        list[str] | None,
        typer.Option("--schema", help="A warehouse schema to show (repeatable). Default: every schema dbt builds."),
    ] = None,
    dbt_project_dir: DbtProjectDir = DBT_PROJECT_DIR,
) -> None:
    """Print the tables the dbt project built (or of --schema) with their row counts."""
    from include.mallard.warehouse_report import WarehouseReportError, table_counts

    try:
        report = table_counts(schema or None, dbt_project_dir)
    except WarehouseReportError as error:
        raise _fail(str(error)) from None
    typer.echo(report)


@app.command()
def staging(
    source: Annotated[
        str | None, typer.Argument(help="The source whose raw_<source> tables get staging models.")
    ] = None,
    all_sources: Annotated[bool, typer.Option("--all", help="Every source loaded into the warehouse.")] = False,
    dbt_project_dir: DbtProjectDir = DBT_PROJECT_DIR,
    sources_dir: SourcesDir = SOURCES_DIR,
    warehouse: Annotated[Path | None, typer.Option(help="Default: the resolved warehouse path.")] = None,
    manifest: Annotated[bool, typer.Option(help="Rebuild the dbt manifest afterwards.")] = True,
) -> None:
    """Generate dbt sources and staging models from what dlt loaded (docs/staging.md)."""
    from include.mallard.staging import run_command

    code = run_command(
        source,
        all_sources,
        dbt_project_dir=dbt_project_dir,
        sources_dir=sources_dir,
        warehouse=warehouse,
        rebuild_manifest=manifest,
    )
    if code:
        raise typer.Exit(code)


def main(argv: list[str] | None = None) -> int:
    """The console script: run one command with the project's environment; return its exit code."""
    apply_project_environment()
    try:
        # Without standalone mode, click returns a command's exit code (typer.Exit) instead of exiting.
        code = app(args=argv, prog_name="mallard", standalone_mode=False)
    except typer.Exit as done:
        return done.exit_code
    except (typer.Abort, KeyboardInterrupt):
        return 130
    except Exception as error:  # click's usage errors
        from click import ClickException

        if isinstance(error, ClickException):
            error.show()
            return error.exit_code
        raise
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
