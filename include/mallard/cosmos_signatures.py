"""Cosmos reads the same constructor signatures for every operator it renders; read each once.

`DbtLocalBaseOperator.__init__` (cosmos/operators/local.py, Cosmos 1.15) sorts each operator's
keyword arguments by calling `inspect.signature(BaseOperator.__init__)` and
`inspect.getfullargspec` of two Cosmos base classes, for every model and test task, on every DAG
parse. Those answers cannot change while a process runs, yet they cost ~0.17 ms per operator:
~0.3 s of a 1,000-model parse (2,000 operators) and ~7 ms of each task process of the demo, which
parses its DAG again (docs/benchmarks.md, DAG parse).

`remember_cosmos_signatures()` gives that one Cosmos module an `inspect` whose `signature` and
`getfullargspec` remember their answer per function; every other name is the standard module's.
What Cosmos does with the answers is unchanged (tests/unit/test_cosmos_signatures.py builds
operators both ways and compares them). The upstream fix: compute the argument names once per
class in Cosmos (a `functools.cache`), then this module can go.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable
from typing import Any


def _remembered(read: Callable[..., Any]) -> Callable[..., Any]:
    cached = functools.lru_cache(maxsize=512)(read)

    @functools.wraps(read)
    def remembered(*args: Any, **kwargs: Any) -> Any:
        try:
            return cached(*args, **kwargs)
        except TypeError:
            # An unhashable callable (never one of Cosmos's functions): read it each time.
            return read(*args, **kwargs)

    remembered.cache_info = cached.cache_info  # type: ignore[attr-defined]
    return remembered


class RememberingInspect(types.ModuleType):
    """The `inspect` module, with `signature` and `getfullargspec` remembered per callable."""

    def __init__(self) -> None:
        super().__init__("inspect", inspect.__doc__)
        self.signature = _remembered(inspect.signature)
        self.getfullargspec = _remembered(inspect.getfullargspec)

    def __getattr__(self, name: str) -> Any:
        return getattr(inspect, name)


REMEMBERING_INSPECT = RememberingInspect()


def remember_cosmos_signatures() -> bool:
    """Point Cosmos's local operator module at `REMEMBERING_INSPECT`; True when it is (idempotent).

    Left alone (False) when that module no longer uses the standard `inspect` by that name, as a
    later Cosmos might not."""
    from cosmos.operators import local

    if getattr(local, "inspect", None) is inspect:
        local.inspect = REMEMBERING_INSPECT  # type: ignore[attr-defined]
    return getattr(local, "inspect", None) is REMEMBERING_INSPECT
