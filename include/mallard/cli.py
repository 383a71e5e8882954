"""The `mallard` command: `mallard validate|manifest|schema|marts|staging|doctor|add|run` (`mallard --help`).

Installed by `make install` into `.venv/bin/mallard` (pyproject's `[project.scripts]`); it finds the
project's environment itself (`scripts/env.sh`), so nothing needs to be sourced first.
`python -m include.mallard.cli ...` is the same command.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from include.mallard.environment import apply_project_environment
from include.mallard.paths import DBT_PROJECT_DIR, PROJECT_ROOT, SOURCES_DIR

SCHEMA_PATH = PROJECT_ROOT / "docs" / "source.schema.json"
DAG_ID = "mallard_elt"

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
    from include.mallard.config.loader import all_disabled_warning
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
    if warning := all_disabled_warning(sources, sources_dir):
        typer.echo(f"warn {warning}")
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
    """Build the dbt manifest (dbt parse) that Cosmos renders the DAG from, and the dbt docs site from it."""
    from include.mallard.dbt_docs import write_docs_without_catalog
    from include.mallard.dbt_project import DbtProjectError, build_manifest

    try:
        path = build_manifest(dbt_project_dir)
    except DbtProjectError as error:
        raise _fail(str(error)) from None
    typer.echo(f"manifest built: {path}")
    # The UI's dbt docs show the models and their lineage from now on, before any run.
    typer.echo(f"dbt docs (without a catalog) written: {write_docs_without_catalog(dbt_project_dir)}")


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


@app.command()
def doctor(sources_dir: SourcesDir = SOURCES_DIR, dbt_project_dir: DbtProjectDir = DBT_PROJECT_DIR) -> None:
    """Check the venv, manifest, profile, sources, warehouse lock, pool and old stacks; print each fix."""
    from include.mallard.first_hour.doctor import print_checks, run_checks

    checks = run_checks(sources_dir, dbt_project_dir)
    print_checks(checks)
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


add_app = typer.Typer(help="Add something to the project.", no_args_is_help=True)
app.add_typer(add_app, name="add")
Opt = typer.Option


@add_app.command("source")
def add_source(
    name: Annotated[
        str | None, Opt(help="Source name: the file include/sources/<name>.yml, schema raw_<name>.")
    ] = None,
    kind: Annotated[str | None, Opt(help="files, rest_api or sql_database.")] = None,
    path: Annotated[str | None, Opt(help="files: the folder (relative to the project root) or URL.")] = None,
    glob: Annotated[str | None, Opt(help="files: the glob of the table's files, e.g. '*.csv'.")] = None,
    file_format: Annotated[str | None, Opt("--format", help="files: csv, jsonl or parquet (default: guessed).")] = None,
    table: Annotated[str | None, Opt(help="files: the table name (default: the source name).")] = None,
    base_url: Annotated[str | None, Opt(help="rest_api: the API's base URL.")] = None,
    resource: Annotated[list[str] | None, Opt(help="rest_api: an endpoint path (repeatable).")] = None,
    data_selector: Annotated[str | None, Opt(help="rest_api: JSON path of the records, e.g. data.")] = None,
    paginator: Annotated[str | None, Opt(help="rest_api: auto, page_number, offset, cursor, next_link, ...")] = None,
    cursor_path: Annotated[str | None, Opt(help="rest_api cursor paginator: JSON path of the next cursor.")] = None,
    cursor_param: Annotated[str | None, Opt(help="rest_api cursor paginator: its query parameter.")] = None,
    auth: Annotated[str | None, Opt(help="rest_api: none, bearer, api_key or basic.")] = None,
    secret: Annotated[str | None, Opt(help="The NAME of the env var with the secret, or connection:<id>.")] = None,
    sql_table: Annotated[list[str] | None, Opt(help="sql_database: a table to load (repeatable).")] = None,
    primary_key: Annotated[list[str] | None, Opt(help="Primary key column (repeatable; default: suggested).")] = None,
    cursor: Annotated[str | None, Opt(help="files: the cursor column (default: full reload).")] = None,
    sources_dir: SourcesDir = SOURCES_DIR,
    force: Annotated[bool, Opt(help="Replace an existing file of that name.")] = False,
    preview: Annotated[bool, Opt(help="Dry-extract a few pages and show rows and columns.")] = True,
    interactive: Annotated[bool | None, Opt(help="Ask for what is missing (default: when run in a terminal).")] = None,
) -> None:
    """Ask for a source's few fields, preview a dry extract (the warehouse is untouched), write its YAML file."""
    from include.mallard.config import ConfigError
    from include.mallard.first_hour import add_source as wizard

    answers = wizard.Answers(
        name, kind, path, glob, file_format, table, base_url, resource or [], data_selector, paginator,
        cursor_path, cursor_param, auth, secret, sql_table or [], primary_key or [], cursor,
    )  # fmt: skip
    asks = sys.stdin.isatty() if interactive is None else interactive
    ask = wizard.prompt_asker if asks else wizard.no_terminal_asker
    try:
        wizard.add_source(answers, sources_dir, ask=ask, force=force, preview=preview)
    except (wizard.AddSourceError, ConfigError) as error:
        raise _fail(f"add source: {error}") from None
    except Exception as error:  # the dry extract: a wrong path, URL, credential; the file is not written
        raise _fail(
            f"add source {answers.name}: the preview failed, nothing was written: {type(error).__name__}: {error}"
        ) from None


def _day(value: str | None, default: dt.date, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value) if value else default
    except ValueError:
        raise _fail(f"{option} {value!r}: give a date as YYYY-MM-DD") from None


@app.command("run")
def run_pipeline(
    start: Annotated[
        str | None, typer.Option(help="First day loaded (YYYY-MM-DD). Default: the day before --end.")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Day after the last one loaded (exclusive). Default: today (UTC).")
    ] = None,
    dbt_project_dir: DbtProjectDir = DBT_PROJECT_DIR,
    log_file: Annotated[Path | None, typer.Option(help="Where the full log goes. Default: .airflow/runs/.")] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(help="Load only this source (repeatable); the others skip, dbt builds as usual."),
    ] = None,
) -> None:
    """Run the ELT DAG once for [start, end) with `airflow dags test`, a live task table and a summary."""
    from include.mallard.first_hour.run import airflow_home, print_summary, run_dag, selection_problems
    from include.mallard.warehouse import resolve_warehouse_path

    last = _day(end, dt.datetime.now(dt.UTC).date(), "--end")
    first = _day(start, last - dt.timedelta(days=1), "--start")
    if first >= last:
        raise _fail(f"--start {first} must be before --end {last} (the range is [start, end))")
    if source and (problems := selection_problems(source, SOURCES_DIR)):
        raise _fail("\n".join(problems))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    log = log_file or airflow_home() / "runs" / f"run-{first}-{last}-{stamp}.log"
    typer.echo(f"running {DAG_ID} for [{first}, {last}); full log: {log}")
    result = run_dag(first, last, log, source)
    print_summary(result, resolve_warehouse_path(), dbt_project_dir)
    if result.returncode != 0 or result.state != "success" or result.failed:
        raise typer.Exit(1)


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
