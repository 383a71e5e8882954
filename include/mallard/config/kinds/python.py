"""`kind: python`: your own dlt code, a function that returns a dlt source or resource(s)."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from include.mallard.config.base import (
    ConfigValueError,
    ExternalReference,
    Issue,
    SecretRef,
    SourceBase,
    is_reference_mapping,
    literal_secret_error,
)
from include.mallard.config.literal_secrets import secret_name
from include.mallard.config.tables import TableDefaults

FUNCTION_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
FUNCTION_FIX = (
    "use 'package.module:function' importable from the project root, e.g. include.examples.custom_source:calendar"
)


def function_problem(reference: str) -> str | None:
    """None if 'module:function' imports and is callable, else what is wrong."""
    module_name, _, function_name = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        return f"cannot import module {module_name!r}: {type(error).__name__}: {error}"
    function = getattr(module, function_name, None)
    if function is None:
        return f"module {module_name!r} has no {function_name!r}"
    if not callable(function):
        return f"{reference} is not a function"
    return None


class PythonSource(TableDefaults, SourceBase):
    """Your own dlt code: a function that returns a dlt source or resource(s)."""

    kind: Literal["python"]
    function: str = Field(
        description=(
            "'package.module:function' importable from the project root, e.g. include.examples.custom_source:calendar. "
            "It is called with `start` and `end` (the run's interval, UTC datetimes) if it accepts them."
        )
    )
    args: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Keyword arguments for the function; a value {env: NAME} or {connection: ID} is resolved at run time."
        ),
    )

    @field_validator("function")
    @classmethod
    def _module_colon_function(cls, value: str) -> str:
        if not re.match(FUNCTION_PATTERN, value):
            raise ValueError("use 'package.module:function', e.g. include.examples.custom_source:calendar")
        return value

    @field_validator("args")
    @classmethod
    def _secret_references(cls, args: dict[str, Any]) -> dict[str, Any]:
        for key, value in args.items():
            if is_reference_mapping(value):
                try:
                    SecretRef.model_validate(value)
                except ValidationError as error:
                    # Name the argument: the reference's own error location would say only `env`.
                    detail = error.errors(include_url=False)[0]
                    where = ".".join(str(part) for part in detail["loc"])
                    raise ConfigValueError(
                        f"argument {key!r}{f' `{where}`' if where else ''}: {detail['msg']}",
                        fix="reference an environment variable by its name (`{env: MY_TOKEN}`: letters, digits, '_', "
                        "not starting with a digit) or an Airflow connection (`{connection: my_conn}`), not both",
                    ) from None
            elif secret_name(key) and isinstance(value, str):
                raise literal_secret_error(f"argument {key!r} looks like a credential; it")
        return args

    def secret_references(self) -> Iterator[tuple[str, ExternalReference]]:
        yield from super().secret_references()
        for key, value in self.args.items():
            if is_reference_mapping(value):
                yield f"args.{key}", SecretRef.model_validate(value)

    def external_issues(self) -> list[Issue]:
        problem = function_problem(self.function)
        return [Issue("function", problem, FUNCTION_FIX)] if problem else []
