"""Read and validate the source config files.

Every problem is reported with the file, the field and a fix, and all bad files are reported
together so that one bad file never hides another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from include.mallard.config.base import (
    CONNECTION_ID_PATTERN,
    ENV_NAME_PATTERN,
    REFERENCE_TAG,
    SECRET_REFERENCE_FIX,
    VALUE_TAG,
    ConfigValueError,
    Issue,
)
from include.mallard.config.kinds import AUTH_TYPES, PAGINATOR_TYPES, SOURCE_ADAPTER, SOURCE_KINDS, SourceModel
from include.mallard.config.literal_secrets import (
    secret_looking_value,
    secret_query_params,
    url_secret_fix,
    url_secret_message,
)
from include.mallard.config.yaml_file import SourceYamlError, read_source_yaml
from include.mallard.parsed_files import parsed
from include.mallard.paths import SOURCES_DIR_ENV, env_note

SourceConfig = SourceModel
# Checks of what a config points at outside itself (connections, env vars): `mallard validate`
# passes `secrets.reference_issues`; DAG parsing passes nothing.
ExtraChecks = Callable[[SourceModel], list[Issue]]
CONFIG_SUFFIXES = (".yml", ".yaml")
# A discriminated union's tag appears in an error's location after the field (`auth.bearer.token`): drop it.
_TAGS_AFTER_FIELD = {"auth": set(AUTH_TYPES), "paginator": set(PAGINATOR_TYPES)}
_FREE_FORM_MAPPINGS = {"headers", "params"}
_FIX_BY_PATTERN = {
    ENV_NAME_PATTERN: "use an environment variable's name: letters, digits and '_', not starting with a digit",
    CONNECTION_ID_PATTERN: "use an Airflow connection id: letters, digits, '_', '.' and '-'",
}

_FIX_BY_ERROR_TYPE = {
    "missing": "add the field",
    "extra_forbidden": "remove the field or fix its spelling",
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
    "greater_than": "use a larger value",
    "less_than_equal": "use a smaller value",
    "float_parsing": "use a number",
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
    for index, part in enumerate(parts):
        before = parts[index - 1] if index else None
        if isinstance(before, str) and part in _TAGS_AFTER_FIELD.get(before, ()):
            continue
        # `headers.X-Key.reference.env`: the tag of a value-or-reference follows the mapping's key.
        if index >= 2 and parts[index - 2] in _FREE_FORM_MAPPINGS and part in (VALUE_TAG, REFERENCE_TAG):
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "kind"


def _fix_for(detail: Any) -> str:
    kind = detail["type"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        # Name the allowed values of this union's own tag (kind, auth type, paginator type).
        ctx = detail.get("ctx", {})
        tag = str(ctx.get("discriminator", "kind")).strip("'")
        fields = [part for part in detail["loc"] if isinstance(part, str) and part in _TAGS_AFTER_FIELD]
        allowed = sorted(_TAGS_AFTER_FIELD[fields[-1]]) if fields else list(SOURCE_KINDS)
        if kind == "union_tag_invalid":
            return f"set `{tag}` to one of: {', '.join(allowed)}"
        return f"add `{tag}:` with one of: {', '.join(allowed)}"
    if kind == "string_pattern_mismatch" and (fix := _FIX_BY_PATTERN.get(detail.get("ctx", {}).get("pattern"))):
        return fix
    if kind == "value_error":
        error = detail.get("ctx", {}).get("error")
        return error.fix if isinstance(error, ConfigValueError) else "change the value as the message says"
    return _FIX_BY_ERROR_TYPE.get(kind, "see the field's description in docs/sources.md")


def _problems_from_validation(file: Path, error: ValidationError) -> list[ConfigProblem]:
    problems = []
    for detail in error.errors(include_url=False):
        message = detail["msg"].removeprefix("Value error, ")
        error = detail.get("ctx", {}).get("error")
        # Never echo an input that is (or looks like) a secret.
        hidden = isinstance(error, ConfigValueError) and error.hide_input
        shown = detail["type"] != "missing" and "input" in detail and not hidden
        if shown and not isinstance(detail["input"], dict):
            message += f" (got {detail['input']!r})"
        problems.append(ConfigProblem(file, _field_path(tuple(detail["loc"])), message, _fix_for(detail)))
    return problems


def _walk(value: Any, path: str) -> Iterable[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")
    else:
        yield path, value


def literal_secret_problems(file: Path, document: dict[str, Any]) -> list[ConfigProblem]:
    """Values anywhere in the file that look like credentials (tokens, keys, URLs with passwords or keys).

    Checked before the schema, on the raw YAML, so that no field (headers, args, description)
    can carry a secret into the repository. The value is never repeated in the message.
    """
    problems = []
    for path, value in _walk(document, ""):
        if not isinstance(value, str):
            continue
        if what := secret_looking_value(value):
            message = f"the value looks like {what}, and secrets must not be written in the file (value hidden)"
            problems.append(ConfigProblem(file, path, message, SECRET_REFERENCE_FIX))
        elif names := secret_query_params(value):
            problems.append(ConfigProblem(file, path, url_secret_message(names), url_secret_fix(names[0])))
    return problems


def _parents(field: str) -> Iterator[str]:
    """`a.b.c` -> `a`, `a.b` (the fields that contain it)."""
    start = 0
    while (dot := field.find(".", start)) != -1:
        yield field[:dot]
        start = dot + 1


def _overlap_filter(fields: set[str]) -> Callable[[str], bool]:
    """A test of whether a field is one of `fields`, contains one, or lies inside one (linear, no pairs)."""
    containing = fields | {parent for field in fields for parent in _parents(field)}
    return lambda field: field in containing or any(parent in fields for parent in _parents(field))


def parse_source_file(path: Path, *, extra_checks: ExtraChecks | None = None) -> SourceConfig:
    """Parse and validate one source config file; raise ConfigError naming the file and field.

    `extra_checks` also looks outside the file (referenced connections and env vars exist, a
    python source's function imports, a local folder exists). That is for `mallard validate`,
    never for DAG parsing (it may query Airflow's metadata database).
    """
    try:
        document = parsed(path, read_source_yaml)  # parsed once per file content (parsed_files.py)
    except SourceYamlError as error:
        raise ConfigError([ConfigProblem(path, error.field, error.message, error.fix)]) from error
    except OSError as error:
        problem = ConfigProblem(
            path, "(file)", f"cannot be read: {error}", "check that the file exists and is readable"
        )
        raise ConfigError([problem]) from error
    return validate_document(path, document, extra_checks=extra_checks)


def validate_document(path: Path, document: Any, *, extra_checks: ExtraChecks | None = None) -> SourceConfig:
    """Validate the YAML document read from `path` (named in every problem); raise ConfigError."""
    if not isinstance(document, dict):
        problem = ConfigProblem(
            path, "(file)", "must be a YAML mapping of fields", "start from an example in docs/sources.md"
        )
        raise ConfigError([problem])
    document.setdefault("name", path.stem)
    problems = literal_secret_problems(path, document)
    try:
        source = SOURCE_ADAPTER.validate_python(document)
    except ValidationError as error:
        # One report per secret: skip the schema's error on a field the secret scan already named.
        flagged = _overlap_filter({problem.field for problem in problems})
        problems += [p for p in _problems_from_validation(path, error) if not flagged(p.field)]
        raise ConfigError(problems) from error
    issues = source.cross_checks()
    if extra_checks is not None:
        issues += extra_checks(source)
    problems += [ConfigProblem(path, issue.field, issue.message, issue.fix) for issue in issues]
    if problems:
        raise ConfigError(problems)
    return source


def source_files(sources_dir: Path) -> list[Path]:
    """The config files in a folder, sorted so that task groups have a stable order."""
    return sorted(p for p in sources_dir.iterdir() if p.suffix.lower() in CONFIG_SUFFIXES and p.is_file())


def checked_source_files(sources_dir: Path) -> list[Path]:
    """`source_files`, or a ConfigError naming the folder when it is missing or holds no source file.

    An empty folder is an error rather than a DAG without sources: dbt would rebuild the marts
    from stale raw tables and report success (say, a mistyped MALLARD_SOURCES_DIR).
    """
    exists = sources_dir.is_dir()
    if exists and (files := source_files(sources_dir)):
        return files
    note = env_note(sources_dir, SOURCES_DIR_ENV)  # only for the error: every DAG parse comes here
    elsewhere = f", or set {SOURCES_DIR_ENV} to their folder" if note else ""
    if not exists:
        fix = f"create it and add a source YAML file{elsewhere}"
        raise ConfigError([ConfigProblem(sources_dir, "(folder)", f"does not exist{note}", fix)])
    suffixes = " or ".join(f"*{suffix}" for suffix in sorted(CONFIG_SUFFIXES, reverse=True))
    fix = f"add a source YAML file (`mallard add source` writes one){elsewhere}"
    raise ConfigError([ConfigProblem(sources_dir, "(folder)", f"holds no source file ({suffixes}){note}", fix)])


def load_sources(
    sources_dir: Path, *, include_disabled: bool = False, extra_checks: ExtraChecks | None = None
) -> list[SourceConfig]:
    """Load every source config in `sources_dir`; raise one ConfigError listing every bad file.

    `extra_checks` also checks connections, env vars, modules and folders (see `parse_source_file`).
    """
    sources: list[SourceConfig] = []
    problems: list[ConfigProblem] = []
    first_file_by_name: dict[str, Path] = {}
    for path in checked_source_files(sources_dir):
        try:
            source = parse_source_file(path, extra_checks=extra_checks)
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


def all_disabled_warning(sources: list[SourceConfig], sources_dir: Path) -> str | None:
    """A warning when sources exist and every one is `enabled: false`, else None.

    The ELT DAG then has no ingestion task, and each run rebuilds the marts from the raw tables
    loaded earlier: a run that succeeds on stale data. It may be meant (dbt alone), so it is said
    rather than refused.
    """
    if not sources or any(source.enabled for source in sources):
        return None
    names = ", ".join(sorted(source.name for source in sources))
    return (
        f"every source in {sources_dir} is disabled (`enabled: false`: {names}): the ELT DAG loads nothing, and "
        "each run rebuilds the marts from the raw tables loaded earlier. Fix: set `enabled: true` in the sources "
        "to load (or leave it, if dbt is meant to run alone)"
    )


def get_source(sources_dir: Path, name: str) -> SourceConfig:
    """The config of one source, read again at task run time."""
    for source in load_sources(sources_dir, include_disabled=True):
        if source.name == name:
            return source
    raise KeyError(f"no source named {name!r} in {sources_dir}")
