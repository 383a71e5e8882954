"""The project as a whole: its settings file (`mallard.yml`) and its source files, each read on its own.

`mallard.yml` at the project root holds what belongs to no single source: the earliest date any run
may load (`start_date`), the ELT DAG's schedule, and per-source settings (`sources.<name>.start_date`,
a source's own earliest date). It is validated like a source file: every problem names the file,
the field and the fix.

Source files are read one at a time (`read_source_files`), so a bad file is reported on its own
and every other source still gets its tasks: the factory gives the bad file a failing task, and
`dags/mallard_source_errors.py` raises its problems as an Airflow import error.

Nothing here imports dlt, dbt or Airflow: it runs at DAG parse time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator

from include.mallard.config.base import SOURCE_NAME_PATTERN, ConfigValueError, StrictModel
from include.mallard.config.cron import CRON_FIX, cron_problem
from include.mallard.config.environments import (
    ENVIRONMENT_ENV,
    EnvironmentSettings,
    default_environments,
    selected_environment_name,
)
from include.mallard.config.loader import (
    ConfigError,
    ConfigProblem,
    SourceConfig,
    checked_source_files,
    parse_source_file,
)
from include.mallard.config.yaml_file import SourceYamlError, read_source_yaml
from include.mallard.paths import PROJECT_ROOT, SOURCES_DIR

PROJECT_SETTINGS_FILE = PROJECT_ROOT / "mallard.yml"
DEFAULT_SCHEDULE = "0 0 * * *"
# Used only when there is no mallard.yml at all; a mallard.yml must say its start_date.
DEFAULT_START_DATE = dt.date(2024, 1, 1)
DATE_FIX = "write a date such as 2013-01-01 (YYYY-MM-DD, no time)"
_FIX_BY_ERROR_TYPE = {
    "missing": "add the field, e.g. `start_date: 2013-01-01`",
    "extra_forbidden": "remove the field or fix its spelling",
    "string_type": "use a text value (quote it)",
    "string_pattern_mismatch": "use the source's name: lowercase letters, digits and underscores",
    "dict_type": "use a YAML mapping (key: value lines)",
    "model_type": "use a YAML mapping (key: value lines), e.g. `shop: {start_date: 2024-01-01}`",
}


def _plain_date(value: object) -> object:
    """A date, or ISO date text; never a datetime or a number (pydantic reads 20130101 as seconds since 1970)."""
    if isinstance(value, dt.datetime):
        raise ConfigValueError("must be a date without a time of day", fix=DATE_FIX)
    if isinstance(value, dt.date) or value is None:
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ConfigValueError("is not a date", fix=DATE_FIX)


class SourceSettings(StrictModel):
    """Project-level settings of one source (`sources.<name>` in mallard.yml)."""

    start_date: dt.date | None = Field(
        None,
        description=(
            "The source's earliest date: a run loads this source only from this date on (an interval that ends "
            "before it loads nothing for the source). Not before the project's start_date."
        ),
    )

    _date = field_validator("start_date", mode="before")(_plain_date)


class ProjectSettings(StrictModel):
    """mallard.yml: the project's start date, the ELT DAG's schedule, per-source settings."""

    start_date: dt.date = Field(
        description=(
            "The earliest date any run may load. A run, trigger or backfill whose interval begins before it fails "
            "at its first task with a message naming this setting (it never silently does nothing)."
        )
    )
    schedule: str = Field(
        DEFAULT_SCHEDULE,
        description="Cron (UTC) of the ELT DAG; each run loads its data interval [previous tick, this tick).",
    )
    sources: dict[Annotated[str, Field(pattern=SOURCE_NAME_PATTERN)], SourceSettings] = Field(
        default_factory=dict, description="Per-source settings by source name, e.g. `shop: {start_date: 2024-01-01}`."
    )
    dbt_schedule: Literal["with_ingestion", "on_assets"] = Field(
        "with_ingestion",
        description=(
            "`with_ingestion`: dbt runs in the ELT DAG after its sources, on its clock (exact interval backfills). "
            "`on_assets`: dbt is its own DAG `mallard_dbt`, scheduled on the raw tables' Assets, so a source with a "
            "schedule of its own triggers the models too."
        ),
    )
    dbt_assets: Literal["any", "all"] = Field(
        "any",
        description=(
            "With `dbt_schedule: on_assets`: run dbt when any source has loaded (`any`), or only when every "
            "raw table has a new Asset event since dbt's last run (`all`)."
        ),
    )
    environments: dict[Annotated[str, Field(pattern=SOURCE_NAME_PATTERN)], EnvironmentSettings] = Field(
        default_factory=default_environments,
        description=(
            f"Where each environment writes, by name; env {ENVIRONMENT_ENV} picks one (default `dev`). Without this "
            "section: `dev`, the embedded DuckDB file."
        ),
    )
    _path: Path | None = PrivateAttr(None)

    _date = field_validator("start_date", mode="before")(_plain_date)

    @field_validator("schedule")
    @classmethod
    def _schedule_is_cron(cls, value: str) -> str:
        if problem := cron_problem(value):
            raise ConfigValueError(problem, fix=CRON_FIX)
        return value

    @property
    def path(self) -> Path:
        """The file these settings were read from (the default location when there is none)."""
        return self._path or PROJECT_SETTINGS_FILE

    def source_start(self, name: str) -> dt.date:
        """The earliest date source `name` loads: its own start_date, else the project's."""
        own = self.sources.get(name)
        return own.start_date if own is not None and own.start_date is not None else self.start_date

    def start_setting(self, name: str | None = None) -> str:
        """Where the start date of the project (or of source `name`) is set, for messages."""
        own = name is not None and name in self.sources and self.sources[name].start_date is not None
        field = f"sources.{name}.start_date" if own else "start_date"
        state = "" if self.path.is_file() else f" (the file does not exist: default {DEFAULT_START_DATE})"
        return f"`{field}` in {_shown(self.path)}{state}"

    def environment(self, name: str | None = None) -> tuple[str, EnvironmentSettings]:
        """(name, settings) of environment `name`, default the one MALLARD_ENV selects; ConfigError if undefined."""
        name = name or selected_environment_name()
        if name not in self.environments:
            known = ", ".join(sorted(self.environments))
            message = f"has no environment {name!r} (env {ENVIRONMENT_ENV}={name}); defined: {known}"
            fix = f"add `environments: {{{name}: {{warehouse: duckdb}}}}` to the file, or set {ENVIRONMENT_ENV} to "
            fix += f"one of {known}"
            raise ConfigError([ConfigProblem(self.path, "environments", message, fix)])
        return name, self.environments[name]

    def with_overrides(self, *, schedule: str | None = None, start_date: dt.date | None = None) -> ProjectSettings:
        """A copy with another schedule or start date (the factory's arguments win over the file)."""
        update: dict[str, Any] = {}
        if schedule is not None:
            update["schedule"] = schedule
        if start_date is not None:
            update["start_date"] = start_date.date() if isinstance(start_date, dt.datetime) else start_date
        copy = self.model_copy(update=update)
        copy._path = self._path
        return copy


def _shown(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def _problems_from_validation(path: Path, error: ValidationError) -> list[ConfigProblem]:
    problems = []
    for detail in error.errors(include_url=False):
        # A dict key's own error comes with a `[key]` location part after the key.
        field = ".".join(str(part) for part in detail["loc"] if part != "[key]") or "(file)"
        message = detail["msg"].removeprefix("Value error, ")
        cause = detail.get("ctx", {}).get("error")
        if detail["type"] != "missing" and not isinstance(detail.get("input"), dict):
            message += f" (got {detail.get('input')!r})"
        fix = cause.fix if isinstance(cause, ConfigValueError) else None
        problems.append(
            ConfigProblem(path, field, message, fix or _FIX_BY_ERROR_TYPE.get(detail["type"], "see README"))
        )
    return problems


def _cross_problems(path: Path, settings: ProjectSettings) -> list[ConfigProblem]:
    problems = []
    for name, own in settings.sources.items():
        if own.start_date is not None and own.start_date < settings.start_date:
            problems.append(
                ConfigProblem(
                    path,
                    f"sources.{name}.start_date",
                    f"{own.start_date} is before the project's start_date {settings.start_date}, before which no "
                    "run loads anything",
                    f"move the project's `start_date` back to {own.start_date}, or this source's start_date forward",
                )
            )
    return problems


def load_project_settings(path: Path = PROJECT_SETTINGS_FILE) -> ProjectSettings:
    """Read and validate mallard.yml; its defaults when the file does not exist; ConfigError naming file and field."""
    if not path.exists():
        settings = ProjectSettings(start_date=DEFAULT_START_DATE)
        settings._path = path
        return settings
    try:
        # The source files' reader: YAML 1.2 booleans, repeated keys are errors, size and alias caps.
        document = read_source_yaml(path)
    except SourceYamlError as error:
        raise ConfigError([ConfigProblem(path, error.field, error.message, error.fix)]) from None
    except OSError as error:
        problem = ConfigProblem(path, "(file)", f"cannot be read: {error}", "make it a readable UTF-8 text file")
        raise ConfigError([problem]) from None
    if not isinstance(document, dict):
        fix = "start from the mallard.yml shipped with Mallard (README: Intervals, manual runs and backfills)"
        raise ConfigError([ConfigProblem(path, "(file)", "must be a YAML mapping of settings", fix)])
    try:
        settings = ProjectSettings.model_validate(document)
    except ValidationError as error:
        raise ConfigError(_problems_from_validation(path, error)) from None
    if problems := _cross_problems(path, settings):
        raise ConfigError(problems)
    settings._path = path
    return settings


@dataclass(frozen=True)
class SourceFile:
    """A valid source config and the file it came from (a task reads only this file again)."""

    path: Path
    source: SourceConfig


@dataclass(frozen=True)
class InvalidSourceFile:
    """A source file that cannot be used, and everything wrong with it."""

    path: Path
    problems: tuple[ConfigProblem, ...]

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


@dataclass(frozen=True)
class SourceFiles:
    """Every source file of a folder, valid or not, in file order."""

    valid: list[SourceFile]
    invalid: list[InvalidSourceFile]

    def enabled(self) -> list[SourceFile]:
        """The valid files whose source is enabled (they get tasks)."""
        return [item for item in self.valid if item.source.enabled]

    @property
    def problems(self) -> list[ConfigProblem]:
        """Every problem of every invalid file."""
        return [problem for item in self.invalid for problem in item.problems]

    def known_names(self) -> set[str]:
        """Source names, and the file names of invalid files (what mallard.yml's `sources` may name)."""
        return {item.source.name for item in self.valid} | {item.path.stem for item in self.invalid}


def read_source_files(sources_dir: Path = SOURCES_DIR) -> SourceFiles:
    """Parse every source file of `sources_dir` on its own; a bad file is listed, never fatal to the others.

    A second file using a name already taken is invalid (the first keeps it). A missing folder
    raises ConfigError: there is nothing to build.
    """
    valid: list[SourceFile] = []
    invalid: list[InvalidSourceFile] = []
    first_file_by_name: dict[str, Path] = {}
    for path in checked_source_files(sources_dir):
        try:
            source = parse_source_file(path)
        except ConfigError as error:
            invalid.append(InvalidSourceFile(path, tuple(error.problems)))
            continue
        except Exception as error:  # one unreadable file must not take down the other sources
            fix = "fix or remove the file; `mallard validate` checks it"
            invalid.append(InvalidSourceFile(path, (ConfigProblem(path, "(file)", f"cannot be read: {error!r}", fix),)))
            continue
        if source.name in first_file_by_name:
            message = f"source name {source.name!r} is already used by {first_file_by_name[source.name].name}"
            problem = ConfigProblem(path, "name", message, "give each source a unique name")
            invalid.append(InvalidSourceFile(path, (problem,)))
            continue
        first_file_by_name[source.name] = path
        valid.append(SourceFile(path, source))
    return SourceFiles(valid, invalid)


def unknown_source_problems(settings: ProjectSettings, files: SourceFiles) -> list[ConfigProblem]:
    """`sources.<name>` entries of mallard.yml that name no source file (a typo would silently not apply)."""
    known = files.known_names()
    return [
        ConfigProblem(
            settings.path,
            f"sources.{name}",
            f"names no source (known: {', '.join(sorted(known)) or 'none'})",
            "use a source's name (its file name unless the file sets `name:`), or remove the entry",
        )
        for name in settings.sources
        if name not in known
    ]


def settings_problems(
    sources_dir: Path = SOURCES_DIR, settings_file: Path = PROJECT_SETTINGS_FILE
) -> list[ConfigProblem]:
    """Everything wrong with mallard.yml, `sources.<name>` entries that name no source included (`mallard validate`)."""
    try:
        settings = load_project_settings(settings_file)
    except ConfigError as error:
        return error.problems
    return unknown_source_problems(settings, read_source_files(sources_dir))


def raise_for_invalid_project_files(
    sources_dir: Path = SOURCES_DIR, settings_file: Path = PROJECT_SETTINGS_FILE
) -> None:
    """Raise one ConfigError listing every invalid source file and unknown mallard.yml entry.

    For `dags/mallard_source_errors.py`: raised there, the problems show as an Airflow import
    error while the ELT DAG (another file) still runs every valid source. A mallard.yml that does
    not validate is not repeated here: the ELT DAG file cannot be built without it and says so.
    """
    files = read_source_files(sources_dir)
    problems = files.problems
    with contextlib.suppress(ConfigError):
        problems += unknown_source_problems(load_project_settings(settings_file), files)
    if problems:
        raise ConfigError(problems)
