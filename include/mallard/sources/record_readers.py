"""Readers of one JSON Lines or Parquet file for `kind: files` (CSV: file_readers.py).

Each yields the file's rows in batches; a file that cannot be read fails with a
`MalformedFileError` naming the source, the file (and the line).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dlt.common import json
from dlt.sources.filesystem import FileItemDict

from include.mallard.sources.column_names import CollisionFinder
from include.mallard.sources.file_readers import CSV_BATCH_ROWS, MalformedFileError

JSONL_CHUNK_ROWS = 5_000


def jsonl_rows(item: FileItemDict, source_name: str = "?") -> Iterator[list[dict[str, Any]]]:
    """The objects of one JSON Lines file in chunks; blank lines are skipped.

    dlt's `read_jsonl` fails on a bad line with a bare decode error that names neither the file
    nor the line; here the error names the source, the file and the line. So does a line whose
    keys dlt would load into one column (`a b` and `a_b`), which would lose one of the values.
    """
    chunk: list[dict[str, Any]] = []
    collisions = CollisionFinder()
    with item.open() as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                row = json.loadb(line)
            except ValueError as error:
                raise MalformedFileError(
                    f"source {source_name!r}: file {item['file_url']} line {number} is not a JSON object "
                    f"({error}); it starts with {line[:60]!r}. Fix or remove the file."
                ) from error
            if not isinstance(row, dict):  # dlt would load a list or a number as a row of made-up columns
                raise MalformedFileError(
                    f"source {source_name!r}: file {item['file_url']} line {number} is JSON but not an object "
                    f"(a {type(row).__name__}); it starts with {line[:60]!r}. Each line must be one object "
                    "({...}). Fix or remove the file."
                )
            if collision := collisions.find(row):
                raise MalformedFileError(
                    f"source {source_name!r}: file {item['file_url']} line {number}: {collision}. "
                    "Fix: rename the key where the file is written"
                )
            chunk.append(row)
            if len(chunk) >= JSONL_CHUNK_ROWS:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def parquet_batches(item: FileItemDict, source_name: str = "?") -> Iterator[Any]:
    """The row groups of one Parquet file as Arrow record batches (pyarrow); a damaged file is named."""
    from pyarrow import ArrowException, parquet

    with item.open() as file:
        try:
            yield from parquet.ParquetFile(file, pre_buffer=False).iter_batches(batch_size=CSV_BATCH_ROWS)
        except (ArrowException, OSError) as error:
            raise MalformedFileError(
                f"source {source_name!r}: file {item['file_url']} is not a readable Parquet file ({error}). "
                "Fix or remove the file (a copy that was cut short is a common cause)."
            ) from error
