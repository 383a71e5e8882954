"""`kind: python`: a function of yours returns a dlt source or resource(s).

For what the declarative kinds cannot express. The function is imported and called inside the
extract task (never at DAG parse time), with the run's interval as `start`/`end` if it accepts
them and the config's `args` (secrets in them resolved here). Loading, merging and the schema
contract work as for every other kind.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from typing import Any

from dlt.extract import DltResource, DltSource

from include.mallard.config import PythonSource
from include.mallard.interval import Interval
from include.mallard.secrets import resolve_args


def load_function(reference: str) -> Any:
    """The callable named by 'package.module:function'."""
    module_name, _, function_name = reference.partition(":")
    function = getattr(importlib.import_module(module_name), function_name, None)
    if not callable(function):
        raise TypeError(f"{reference} is not a function")
    return function


def call_arguments(function: Any, args: dict[str, Any], start: Any, end: Any) -> dict[str, Any]:
    """`args`, plus start/end if the function takes them (by name or through **kwargs)."""
    parameters = inspect.signature(function).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    extra = {key: value for key, value in (("start", start), ("end", end)) if key in parameters or takes_any}
    return {**extra, **args}


def _as_items(result: Any, reference: str) -> list[DltSource | DltResource]:
    items = [result] if isinstance(result, DltSource | DltResource) else result
    if isinstance(items, Iterable) and not isinstance(items, str | bytes | dict):
        items = list(items)
        if items and all(isinstance(item, DltSource | DltResource) for item in items):
            return items
    raise TypeError(
        f"{reference} returned {type(result).__name__}; return a dlt source, a dlt resource or a list of resources"
    )


def build(config: PythonSource, interval: Interval) -> list[DltSource | DltResource]:
    """Call the configured function for `interval`; apply the config's table defaults if it sets them."""
    function = load_function(config.function)
    result = function(**call_arguments(function, resolve_args(config.args), interval.start, interval.end))
    items = _as_items(result, config.function)
    hints: dict[str, Any] = {}
    if config.write_disposition:
        hints["write_disposition"] = config.write_disposition
    if config.primary_key:
        hints["primary_key"] = config.primary_key
    if hints:
        for item in items:
            resources = item.resources.selected.values() if isinstance(item, DltSource) else [item]
            for resource in resources:
                resource.apply_hints(**hints)
    return items
