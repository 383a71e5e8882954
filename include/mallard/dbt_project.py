"""The dbt project as files: dbt_project.yml, profiles.yml, packages, the pre-built manifest and its freshness.

Cosmos-free and dbt-free at import time, shared by the CLI, the staging generator, the docs task and
the Cosmos wiring (`dbt_group`). `build_manifest` imports dbt only when it runs (after `dbt deps`
when the packages are not installed). `check_profile` reads profiles.yml as YAML, never running
dbt: a profile without the tasks' target fails `mallard validate` and the DAG parse, not a model
task at run time. The YAML files are parsed once per content (parsed_files.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from include.mallard.dbt_files import project_files
from include.mallard.parsed_files import parsed
from include.mallard.paths import DBT_PROJECT_DIR_ENV, MANIFEST_RELATIVE_PATH, env_note
from include.mallard.warehouse import (
    WAREHOUSE_PATH_ENV,
    Warehouse,
    active_warehouse,
    configured_warehouse_path,
    resolve_warehouse_path,
)

FINGERPRINT_RELATIVE_PATH = Path("target") / "mallard_fingerprint.txt"
# The same files' paths, sizes and modification times when the fingerprint was recorded: while they
# match, the parse need not read and hash the files (0.05 s of each parse at 1,000 models).
FILES_SIGNATURE_RELATIVE_PATH = Path("target") / "mallard_files_signature.txt"
RACY_FILE_SECONDS = 2
# Sources with a freshness rule, kept beside the manifest: reading 8 MB cost 0.15 s per parse at 1,000 models.
FRESHNESS_SOURCES_RELATIVE_PATH = Path("target") / "mallard_freshness_sources.json"
# Where each source and each built node lives (database, schema, table), written beside the
# manifest for the same reason: the Assets a DAG declares are named from them at parse time.
RELATIONS_RELATIVE_PATH = Path("target") / "mallard_relations.json"
# Each model's fully qualified name by model name, written beside the manifest: a model task's own
# process renders only that model and its parents, selected by fqn (dbt_group.running_model_selector).
MODEL_FQNS_RELATIVE_PATH = Path("target") / "mallard_model_fqns.json"
_BUILT_RESOURCE_TYPES = frozenset({"model", "seed", "snapshot"})
PROFILE_TARGET = "duckdb"
PACKAGE_FILES = ("packages.yml", "dependencies.yml")
DEFAULT_PACKAGES_PATH = "dbt_packages"


def _reads_env(name: str) -> re.Pattern[str]:
    return re.compile(r"env_var\(\s*['\"]" + re.escape(name) + r"['\"]")


# What a server target must read from the env Mallard sets (postgres_warehouse.DBT_ENV), field by field.
_SERVER_TARGET_ENV = {"host": "MALLARD_POSTGRES_HOST", "dbname": "MALLARD_POSTGRES_DATABASE"}
PROFILE_EXAMPLE = """\
  PROFILE:
    target: duckdb
    outputs:
      duckdb:
        type: duckdb
        path: "{{ env_var('MALLARD_WAREHOUSE_PATH') }}"
        retries: {connect_attempts: 10}"""


class DbtProjectError(RuntimeError):
    """The dbt project cannot be used (no dbt_project.yml, no manifest, a stale one, no profile...)."""


def read_dbt_project(dbt_project_dir: Path) -> dict[str, Any]:
    """The parsed dbt_project.yml of `dbt_project_dir`."""
    project_file = dbt_project_dir / "dbt_project.yml"
    if not project_file.is_file():
        note = env_note(dbt_project_dir, DBT_PROJECT_DIR_ENV)
        raise DbtProjectError(f"{project_file} does not exist: put a dbt project in {dbt_project_dir}{note}")
    document = parsed(project_file, _load_yaml)
    if not isinstance(document, dict):
        raise DbtProjectError(f"{project_file} is not a YAML mapping; see dbt's dbt_project.yml reference")
    return document


def model_paths(dbt_project_dir: Path) -> list[Path]:
    """The project's model folders (dbt_project.yml `model-paths`, default `models`)."""
    return [dbt_project_dir / path for path in read_dbt_project(dbt_project_dir).get("model-paths", ["models"])]


def manifest_path(dbt_project_dir: Path) -> Path:
    """Where the pre-built manifest of `dbt_project_dir` must be."""
    return dbt_project_dir / MANIFEST_RELATIVE_PATH


def profiles_file(dbt_project_dir: Path) -> Path:
    """The project's profiles.yml; raise DbtProjectError naming what to add when it is missing."""
    path = dbt_project_dir / "profiles.yml"
    if not path.is_file():
        profile = read_dbt_project(dbt_project_dir).get("profile")
        raise DbtProjectError(
            f"{path} is missing. Add a profile {profile!r} with a `{PROFILE_TARGET}` target "
            f"whose path is {{{{ env_var('{WAREHOUSE_PATH_ENV}') }}}} (see include/dbt/profiles.yml)."
        )
    return path


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _read_yaml(path: Path) -> Any:
    try:
        return parsed(path, _load_yaml)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise DbtProjectError(f"{path} cannot be read as YAML: {error}") from None


def check_profile(dbt_project_dir: Path, warehouse: Warehouse | None = None) -> Path:
    """profiles.yml, checked: the profile has the warehouse's target (`duckdb` by default), of its type, writing
    where Mallard's env says; raise DbtProjectError saying what to add. Reads YAML only, never runs dbt."""
    warehouse = warehouse or active_warehouse()
    target_name = warehouse.dbt_target
    path = profiles_file(dbt_project_dir)
    name = read_dbt_project(dbt_project_dir).get("profile")
    example = PROFILE_EXAMPLE.replace("PROFILE", str(name))
    if not warehouse.is_embedded:
        example = "(see the `postgres` output of include/dbt/profiles.yml)"
    profiles = _read_yaml(path)
    profile = profiles.get(name) if isinstance(profiles, dict) else None
    if not isinstance(profile, dict):
        raise DbtProjectError(
            f"{path} has no profile {name!r} (dbt_project.yml's `profile`). Add it, as in include/dbt/profiles.yml:\n"
            f"{example}"
        )
    outputs = profile.get("outputs")
    target = outputs.get(target_name) if isinstance(outputs, dict) else None
    if not isinstance(target, dict):
        found = ", ".join(sorted(outputs)) if isinstance(outputs, dict) else "none"
        raise DbtProjectError(
            f"{path}: profile {name!r} has no `{target_name}` output (it has: {found}); Mallard runs dbt with "
            f"--target {target_name} ({warehouse.describe()}). Add it under `outputs:`, e.g.\n{example}"
        )
    where = f"{path}: profile {name!r}, output `{target_name}`"
    kind = str(target.get("type", ""))
    if kind != warehouse.kind and "{{" not in kind:
        raise DbtProjectError(
            f"{where} has `type: {kind or '(none)'}`; the warehouse of {warehouse.describe()} is {warehouse.kind}. "
            f"Use `type: {warehouse.kind}`, e.g.\n{example}"
        )
    reads = {"path": WAREHOUSE_PATH_ENV} if warehouse.is_embedded else _SERVER_TARGET_ENV
    for field, variable in reads.items():
        if not _reads_env(variable).search(str(target.get(field, ""))):
            raise DbtProjectError(
                f"{where} has `{field}: {target.get(field)!r}`, so dbt would not build the warehouse the sources "
                f"load into. Use `{field}: \"{{{{ env_var('{variable}') }}}}\"` (a default after a comma is fine)"
            )
    return path


def _packages_path(dbt_project_dir: Path) -> Path:
    configured = read_dbt_project(dbt_project_dir).get("packages-install-path", DEFAULT_PACKAGES_PATH)
    return dbt_project_dir / str(configured)


def declared_packages(dbt_project_dir: Path) -> list[dict[str, Any]]:
    """The `packages:` of packages.yml (or, without it, dependencies.yml), as dbt reads them."""
    for name in PACKAGE_FILES:
        if (dbt_project_dir / name).is_file():
            document = _read_yaml(dbt_project_dir / name)
            packages = document.get("packages") if isinstance(document, dict) else None
            return [p for p in packages or [] if isinstance(p, dict)]
    return []


def _local_package_dirs(dbt_project_dir: Path) -> list[tuple[str, Path]]:
    # dbt resolves `local:` against the project folder.
    return [
        (str(p["local"]), (dbt_project_dir / str(p["local"])).resolve())
        for p in declared_packages(dbt_project_dir)
        if "local" in p
    ]


def project_fingerprint(dbt_project_dir: Path) -> str:
    """A hash of every file `dbt parse` reads (paths and contents), local packages' files included.

    Hub and git packages are pinned by packages.yml (hashed); a `local:` package is a folder that can
    change on its own, and dbt_packages/ only links to it. Cheap enough for parse time.
    """
    digest = hashlib.sha256()
    for file in project_files(dbt_project_dir):
        digest.update(file.relative.encode() + b"\0" + Path(file.path).read_bytes() + b"\0")
    for declared, root in _local_package_dirs(dbt_project_dir):
        digest.update(f"local:{declared}".encode() + (b"\0" if root.is_dir() else b"\0missing\0"))
        for file in project_files(root) if root.is_dir() else []:
            digest.update(file.relative.encode() + b"\0" + Path(file.path).read_bytes() + b"\0")
    return digest.hexdigest()


def files_signature(dbt_project_dir: Path) -> tuple[str, int]:
    """A hash of the paths, sizes and modification times of the files `project_fingerprint` reads, and the newest time.

    Equal to the one recorded with the fingerprint, no file was touched since; different, the
    contents decide (a checkout or a copy changes the times, not necessarily the files).
    """
    digest, newest = hashlib.sha256(), 0
    packages = [(f"local:{declared}", root) for declared, root in _local_package_dirs(dbt_project_dir)]
    for label, root in [("project", dbt_project_dir), *packages]:
        digest.update(label.encode() + b"\0")
        for file in project_files(root) if root.is_dir() else []:
            digest.update(f"{file.relative}\0{file.size}\0{file.mtime_ns}\0".encode())
            newest = max(newest, file.mtime_ns)
    return digest.hexdigest(), newest


def record_fingerprint(dbt_project_dir: Path) -> None:
    """Remember which project files the current manifest was built from (after `dbt parse`), which
    of its sources have a freshness rule, and where its sources and nodes live."""
    (dbt_project_dir / FINGERPRINT_RELATIVE_PATH).write_text(project_fingerprint(dbt_project_dir))
    signature, newest = files_signature(dbt_project_dir)
    signature_file = dbt_project_dir / FILES_SIGNATURE_RELATIVE_PATH
    # A file written within the clock's granularity of now could change again with the same size
    # and time: then only its contents tell, so no signature is kept (the parse hashes the files).
    if time.time_ns() - newest > RACY_FILE_SECONDS * 10**9:
        signature_file.write_text(signature)
    else:
        signature_file.unlink(missing_ok=True)
    manifest = _read_manifest(manifest_path(dbt_project_dir))
    (dbt_project_dir / FRESHNESS_SOURCES_RELATIVE_PATH).write_text(json.dumps(_sources_with_freshness(manifest)))
    (dbt_project_dir / RELATIONS_RELATIVE_PATH).write_text(json.dumps(_relations(manifest).as_json()))
    (dbt_project_dir / MODEL_FQNS_RELATIVE_PATH).write_text(json.dumps(_model_fqns(manifest)))


def _read_manifest(manifest: Path) -> dict[str, Any]:
    return json.loads(manifest.read_bytes()) if manifest.is_file() else {}


def _model_fqns(manifest: dict[str, Any]) -> dict[str, str]:
    """Each model's fqn ("project.folder.name") by name; a name two packages share is left out."""
    models = [node for node in manifest.get("nodes", {}).values() if node.get("resource_type") == "model"]
    names = Counter(node["name"] for node in models)
    return {node["name"]: ".".join(node["fqn"]) for node in models if names[node["name"]] == 1 and node.get("fqn")}


def model_fqns(dbt_project_dir: Path) -> dict[str, str]:
    """The models' fqns recorded beside the manifest by `mallard manifest`; empty when there is no record."""
    recorded = dbt_project_dir / MODEL_FQNS_RELATIVE_PATH
    return json.loads(recorded.read_text()) if recorded.is_file() else {}


def _sources_with_freshness(manifest: dict[str, Any]) -> list[str]:
    return sorted(
        unique_id
        for unique_id, source in manifest.get("sources", {}).items()
        if any(((source.get("freshness") or {}).get(rule) or {}).get("count") for rule in ("warn_after", "error_after"))
    )


def sources_with_freshness(dbt_project_dir: Path) -> list[str]:
    """The unique ids of the manifest's sources that have a freshness rule (warn_after or error_after)."""
    recorded = dbt_project_dir / FRESHNESS_SOURCES_RELATIVE_PATH
    if recorded.is_file():
        return json.loads(recorded.read_text())
    return _sources_with_freshness(_read_manifest(manifest_path(dbt_project_dir)))


Relation = tuple[str, str, str]  # (database, schema, table) as the manifest names it


@dataclass(frozen=True)
class DbtRelations:
    """Where the manifest's sources and built nodes (models, seeds, snapshots; not ephemeral ones) live.

    `catalog` is the warehouse's catalog when the manifest was built: on DuckDB, dbt names the
    database after the file's stem, so a relation in it belongs to whatever file the tasks write.
    """

    catalog: str
    sources: dict[str, Relation]
    nodes: dict[str, Relation]

    def as_json(self) -> dict[str, Any]:
        return {"catalog": self.catalog, "sources": self.sources, "nodes": self.nodes}

    def source_tables(self, schema: str) -> list[Relation]:
        """The sources dbt reads from `schema` (e.g. `raw_shop`), sorted."""
        return sorted({relation for relation in self.sources.values() if relation[1] == schema})


def _relations(manifest: dict[str, Any]) -> DbtRelations:
    def relation(item: dict[str, Any], table_key: str) -> Relation:
        return (item.get("database") or "", item.get("schema") or "", item.get(table_key) or item.get("name") or "")

    nodes = {
        unique_id: relation(node, "alias")
        for unique_id, node in manifest.get("nodes", {}).items()
        if node.get("resource_type") in _BUILT_RESOURCE_TYPES
        and (node.get("config") or {}).get("materialized") != "ephemeral"
    }
    sources = {unique_id: relation(source, "identifier") for unique_id, source in manifest.get("sources", {}).items()}
    return DbtRelations(configured_warehouse_path().stem, sources, nodes)


def dbt_relations(dbt_project_dir: Path) -> DbtRelations:
    """The relations recorded beside the manifest (read from the manifest itself if it was built elsewhere)."""
    recorded = dbt_project_dir / RELATIONS_RELATIVE_PATH
    if not recorded.is_file():
        return _relations(_read_manifest(manifest_path(dbt_project_dir)))
    # One parse asks for them once per source and once for dbt: read the file once.
    return _recorded_relations(recorded, recorded.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _recorded_relations(recorded: Path, _mtime_ns: int) -> DbtRelations:
    data = json.loads(recorded.read_text())

    def relations(key: str) -> dict[str, Relation]:
        return {unique_id: (database, schema, table) for unique_id, (database, schema, table) in data[key].items()}

    return DbtRelations(data["catalog"], relations("sources"), relations("nodes"))


def check_manifest_is_fresh(dbt_project_dir: Path) -> Path:
    """The manifest path; raise DbtProjectError if it is missing or older than the project files."""
    manifest = manifest_path(dbt_project_dir)
    if not manifest.is_file():
        raise DbtProjectError(
            f"{manifest} is missing. Build it with `make manifest` (runs `dbt parse` in {dbt_project_dir})."
        )
    signature_file = dbt_project_dir / FILES_SIGNATURE_RELATIVE_PATH
    if signature_file.is_file() and signature_file.read_text().strip() == files_signature(dbt_project_dir)[0]:
        return manifest
    fingerprint_file = dbt_project_dir / FINGERPRINT_RELATIVE_PATH
    recorded = fingerprint_file.read_text().strip() if fingerprint_file.is_file() else None
    if recorded != project_fingerprint(dbt_project_dir):
        raise DbtProjectError(
            f"{manifest} is stale: files in {dbt_project_dir} changed since it was built. "
            "Rebuild it with `make manifest` (or `mallard manifest`)."
        )
    return manifest


def install_packages(dbt_project_dir: Path) -> bool:
    """Run `dbt deps` if the project declares packages and its dbt_packages/ is missing or empty; True if it ran.

    Hub and git packages are downloaded: without network access that fails, with a message
    saying how to install them instead.
    """
    from dbt.cli.main import dbtRunner

    packages = declared_packages(dbt_project_dir)
    installed = _packages_path(dbt_project_dir)
    if not packages or (installed.is_dir() and any(installed.iterdir())):
        return False
    # dbt prints a traceback per download attempt offline; the error below says it all.
    args = [
        "deps",
        "--project-dir",
        str(dbt_project_dir),
        "--profiles-dir",
        str(dbt_project_dir),
        "--log-level",
        "none",
    ]
    result = dbtRunner().invoke(args)
    if not result.success:
        remote = [p for p in packages if "local" not in p]
        raise DbtProjectError(
            f"dbt deps failed in {dbt_project_dir}: {result.exception}. Its packages file lists "
            f"{len(remote)} package(s) that dbt downloads (hub or git: network access needed). Without network, "
            f"run `dbt deps` in {dbt_project_dir} where there is network and bring its {installed.name}/ folder "
            "along, or vendor the package into the repository and declare it with `local: <folder>`."
        )
    return True


def build_manifest(dbt_project_dir: Path) -> Path:
    """Run `dbt parse` (after `dbt deps` if packages are missing) so that Cosmos can render the DAG from
    target/manifest.json; return its path.

    The profile is checked first (`check_profile`) and parsed with the target the tasks use. The
    warehouse path is set if the caller has not, so that a profile reading it with `env_var()` and
    no default parses too.
    """
    from dbt.cli.main import dbtRunner

    check_profile(dbt_project_dir)
    os.environ.setdefault(WAREHOUSE_PATH_ENV, str(resolve_warehouse_path()))
    install_packages(dbt_project_dir)
    args = ["parse", "--project-dir", str(dbt_project_dir), "--profiles-dir", str(dbt_project_dir), "--quiet"]
    # The profile and target as Cosmos passes them to the build task: dbt's partial parse state
    # hashes both flags, so the task's first run re-uses this parse instead of parsing it all again.
    profile = str(read_dbt_project(dbt_project_dir).get("profile"))
    result = dbtRunner().invoke([*args, "--profile", profile, "--target", PROFILE_TARGET])
    if not result.success:
        raise DbtProjectError(f"dbt parse failed in {dbt_project_dir}: {result.exception}")
    record_fingerprint(dbt_project_dir)
    return manifest_path(dbt_project_dir)
