"""How Mallard runs dlt's steps inside a task process: settings scoped to a step, normalize in process.

dlt reads its config from env vars first; these helpers set the keys Mallard needs for one step
and restore them after, so a task never leaves dlt settings behind for the next. Imports dlt only
inside functions (type hints aside).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dlt

NORMALIZE_WORKERS_ENV = "NORMALIZE__WORKERS"  # dlt's config key for its normalize step's workers
# dlt gzips the files its extract step writes for normalize to read back. Without it, row-based
# kinds extract and load 1.14-1.33x as fast at 1M rows (`bench/scale.py --compare-extract-gzip`).
# The files live only until normalize ends, in the run's working folder, and take ~10x the disk
# (105 bytes per 6-column row instead of 11). Setting the variable to `false` keeps dlt's gzip.
EXTRACT_COMPRESSION_OFF_ENV = "SOURCES__DATA_WRITER__DISABLE_COMPRESSION"
# dlt's JSON normalizer for dict rows: Mallard's, whose coercions never change a value (strict_coercion.py).
# A user's own SCHEMA__JSON_NORMALIZER is kept.
STRICT_NORMALIZER_ENV = "SCHEMA__JSON_NORMALIZER"
STRICT_NORMALIZER = '{"module": "include.mallard.strict_coercion"}'


@contextlib.contextmanager
def dlt_settings(settings: Mapping[str, str], *, overriding: bool = True) -> Iterator[None]:
    """dlt config keys set as env vars (dlt's first config provider) for the block, restored after.

    Without `overriding`, a key the environment already sets keeps its value: a default the user
    can change with dlt's own variable.
    """
    saved = {key: os.environ.get(key) for key in settings}
    for key, value in settings.items():
        if overriding or saved[key] is None:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def normalize_in_process(pipeline: dlt.Pipeline) -> Any:
    """`pipeline.normalize()` in this process, whatever dlt's config says.

    A Celery worker runs tasks in daemonic processes, which may not start dlt's process pool, and
    dlt resolves `workers` from its config over the argument: an env var WORKERS (which `make stack
    WORKERS=2` exports) made every normalize fail. The sectioned key wins over it, for this call.
    """
    with dlt_settings({NORMALIZE_WORKERS_ENV: "1"}):
        return pipeline.normalize(workers=1)


def strict_coercion() -> contextlib.AbstractContextManager[None]:
    """For the block, the schemas dlt creates or loads normalize dict rows with `strict_coercion`."""
    return dlt_settings({STRICT_NORMALIZER_ENV: STRICT_NORMALIZER}, overriding=False)


def extract_items(pipeline: dlt.Pipeline, items: list[Any]) -> Any:
    """`pipeline.extract(items)`, its files for normalize uncompressed unless the user's env says otherwise."""
    with dlt_settings({EXTRACT_COMPRESSION_OFF_ENV: "true"}, overriding=False):
        return pipeline.extract(items)


def use_arrow_pool_that_returns_memory() -> None:
    """Allocate Arrow memory from jemalloc, where the platform's pyarrow has it.

    pyarrow's default pool, mimalloc, kept what it freed: on a 5M-row Parquet file, dlt alone with
    the same resources but without this peaked at 364 MB, Mallard at 318 MB (bench/scale.py).
    """
    import pyarrow

    with contextlib.suppress(NotImplementedError):  # a pyarrow built without jemalloc
        pyarrow.set_memory_pool(pyarrow.jemalloc_memory_pool())
