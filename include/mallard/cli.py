"""Mallard's command line: `python -m include.mallard.cli {validate,manifest,schema,marts,staging}`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from include.mallard.paths import DBT_PROJECT_DIR, PROJECT_ROOT, SOURCES_DIR

SCHEMA_PATH = PROJECT_ROOT / "docs" / "source.schema.json"


def validate(sources_dir: Path, *, check_references: bool = True) -> int:
    """Check every source config; print each problem with its file, field and fix.

    With `check_references` it also checks what the files point at: Airflow connections, env vars,
    python functions and local folders (never done at DAG parse time).
    """
    from include.mallard.config import ConfigError, load_sources

    try:
        sources = load_sources(sources_dir, include_disabled=True, check_references=check_references)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    for source in sources:
        state = "" if source.enabled else " (disabled)"
        print(f"ok  {source.name:<24} {source.kind:<10} -> {source.dataset_name}{state}")
    return 0


def source_json_schema() -> str:
    """The JSON Schema of a source file, for editors (`# yaml-language-server: $schema=...`)."""
    import json

    from include.mallard.config.models import SOURCE_ADAPTER

    schema = SOURCE_ADAPTER.json_schema()
    schema["title"] = "Mallard source config (include/sources/<name>.yml)"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def build_manifest(dbt_project_dir: Path) -> int:
    """Run `dbt parse` so that Cosmos can render the DAG from target/manifest.json."""
    from dbt.cli.main import dbtRunner

    args = ["parse", "--project-dir", str(dbt_project_dir), "--profiles-dir", str(dbt_project_dir), "--quiet"]
    result = dbtRunner().invoke(args)
    if not result.success:
        print(f"dbt parse failed in {dbt_project_dir}: {result.exception}", file=sys.stderr)
        return 1
    from include.mallard.dbt_group import record_fingerprint

    record_fingerprint(dbt_project_dir)
    print(f"manifest built: {dbt_project_dir / 'target' / 'manifest.json'}")
    return 0


def print_marts(schema: str) -> int:
    """Print the tables of `schema` in the warehouse with their row counts."""
    import duckdb

    from include.mallard.warehouse import resolve_warehouse_path

    path = resolve_warehouse_path()
    if not path.exists():
        print(f"no warehouse at {path}: run the pipeline first (make demo)", file=sys.stderr)
        return 1
    with duckdb.connect(str(path), read_only=True) as connection:
        tables = connection.execute(
            "select table_name from information_schema.tables where table_schema = ? order by table_name", [schema]
        ).fetchall()
        if not tables:
            print(f"no tables in schema {schema!r} of {path}", file=sys.stderr)
            return 1
        print(f"Warehouse {path}, schema {schema}:")
        for (table,) in tables:
            (count,) = connection.execute(f'select count(*) from "{schema}"."{table}"').fetchone()
            print(f"  {schema}.{table:<28} {count:>10,} rows")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mallard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("validate", help="validate the source configs")
    check.add_argument("--sources-dir", type=Path, default=SOURCES_DIR)
    check.add_argument(
        "--no-check-references",
        dest="check_references",
        action="store_false",
        help="check only the files (skip connections, env vars, imports, folders)",
    )
    manifest = commands.add_parser("manifest", help="build the dbt manifest that Cosmos renders")
    manifest.add_argument("--dbt-project-dir", type=Path, default=DBT_PROJECT_DIR)
    schema = commands.add_parser("schema", help="write the JSON Schema of source files")
    schema.add_argument("--output", type=Path, default=SCHEMA_PATH)
    marts = commands.add_parser("marts", help="print the marts and their row counts")
    marts.add_argument("--schema", default="marts")
    from include.mallard.staging import add_arguments as add_staging_arguments

    staging = commands.add_parser("staging", help="generate dbt sources and staging models from what dlt loaded")
    add_staging_arguments(staging)
    args = parser.parse_args(argv)
    if args.command == "validate":
        return validate(args.sources_dir, check_references=args.check_references)
    if args.command == "manifest":
        return build_manifest(args.dbt_project_dir)
    if args.command == "staging":
        from include.mallard.staging import run as run_staging

        return run_staging(args)
    if args.command == "schema":
        args.output.write_text(source_json_schema(), encoding="utf-8")
        print(f"wrote {args.output}")
        return 0
    return print_marts(args.schema)


if __name__ == "__main__":
    sys.exit(main())
