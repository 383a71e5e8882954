"""Read and validate the source config files.

Every problem is reported with the file, the field and a fix, and all bad files are reported
together so that one bad file never hides another.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from include.mallard.config.models import SOURCE_ADAPTER, SOURCE_KINDS, FilesSource, SyntheticSource

SourceConfig = SyntheticSource | FilesSource
CONFIG_SUFFIXES = (".yml", ".yaml")

_FIX_BY_ERROR_TYPE = {
    "missing": "add the field",
    "extra_forbidden": "remove the field or fix its spelling",
    "union_tag_invalid": f"set `kind` to one of: {', '.join(SOURCE_KINDS)}",
    "union_tag_not_found": f"add `kind:` with one of: {', '.join(SOURCE_KINDS)}",
    "int_parsing": "use a whole number",
    "int_type": "use a whole number",
    "int_from_float": "use a whole number",
    "bool_parsing": "use true or false",
    "bool_type": "use true or false",
    "string_type": "use a text value (quote it if YAML reads it as a number or date)",
    "string_pattern_mismatch": "use lowercase letters, digits and underscores, starting with a letter",
    "date_from_datetime_parsing": "use a date such as 2024-01-01",
    "date_parsing": "use a date such as 2024-01-01",
    "date_type": "use a date such as 2024-01-01",
    "list_type": "use a YAML list (lines starting with '- ')",
    "dict_type": "use a YAML mapping (key: value lines)",
    "model_type": "use a YAML mapping (key: value lines)",
    "too_short": "add at least one item",
    "literal_error": "use one of the allowed values",
    "greater_than_equal": "use a larger value",
    "less_than_equal": "use a smaller value",
}


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with one config file."""

    file: Path
    field: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}: field `{self.field}`: {self.message}. Fix: {self.fix}."


class ConfigError(ValueError):
    """One or more config files are invalid; `problems` lists each one."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the source configs:\n{lines}")


def _field_path(location: tuple[Any, ...]) -> str:
    # The first item of a tagged union's location is the tag value (e.g. 'files'): skip it.
    parts = list(location[1:] if location and location[0] in SOURCE_KINDS else location)
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "kind"


def _problems_from_validation(file: Path, error: ValidationError) -> list[ConfigProblem]:
    problems = []
    for detail in error.errors(include_url=False):
        message = detail["msg"]
        if detail["type"] not in ("missing",) and "input" in detail and not isinstance(detail["input"], dict):
            message += f" (got {detail['input']!r})"
        fix = _FIX_BY_ERROR_TYPE.get(detail["type"], "see the field's description in docs/sources.md")
        if detail["type"] == "value_error":
            fix = "change the value as the message says"
        problems.append(ConfigProblem(file, _field_path(tuple(detail["loc"])), message, fix))
    return problems


def parse_source_file(path: Path) -> SourceConfig:
    """Parse and validate one source config file; raise ConfigError naming the file and field."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = ConfigProblem(path, "(file)", f"is not valid YAML at {where}: {error}", "fix the YAML syntax")
        raise ConfigError([problem]) from error
    if not isinstance(document, dict):
        problem = ConfigProblem(
            path, "(file)", "must be a YAML mapping of fields", "start from an example in include/sources/"
        )
        raise ConfigError([problem])
    document.setdefault("name", path.stem)
    try:
        return SOURCE_ADAPTER.validate_python(document)
    except ValidationError as error:
        raise ConfigError(_problems_from_validation(path, error)) from error


def source_files(sources_dir: Path) -> list[Path]:
    """The config files in a folder, sorted so that task groups have a stable order."""
    return sorted(p for p in sources_dir.iterdir() if p.suffix in CONFIG_SUFFIXES and p.is_file())


def load_sources(sources_dir: Path, *, include_disabled: bool = False) -> list[SourceConfig]:
    """Load every source config in `sources_dir`; raise one ConfigError listing every bad file."""
    if not sources_dir.is_dir():
        problem = ConfigProblem(sources_dir, "(folder)", "does not exist", "create it and add a source YAML file")
        raise ConfigError([problem])
    sources: list[SourceConfig] = []
    problems: list[ConfigProblem] = []
    first_file_by_name: dict[str, Path] = {}
    for path in source_files(sources_dir):
        try:
            source = parse_source_file(path)
        except ConfigError as error:
            problems.extend(error.problems)
            continue
        if source.name in first_file_by_name:
            problems.append(
                ConfigProblem(
                    path,
                    "name",
                    f"source name {source.name!r} is already used by {first_file_by_name[source.name].name}",
                    "give each source a unique name",
                )
            )
            continue
        first_file_by_name[source.name] = path
        sources.append(source)
    if problems:
        raise ConfigError(problems)
    return [s for s in sources if include_disabled or s.enabled]


def get_source(sources_dir: Path, name: str) -> SourceConfig:
    """The config of one source, read again at task run time."""
    for source in load_sources(sources_dir, include_disabled=True):
        if source.name == name:
            return source
    raise KeyError(f"no source named {name!r} in {sources_dir}")
