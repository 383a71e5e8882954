"""The source kinds: one module each, and the union the loader validates a file against.

To add a kind, write `config/kinds/<kind>.py` (a model with `kind: Literal["<kind>"]`), add it to
`SourceModel` below, and write `sources/<kind>.py` with its builder (docs/design.md, "Adding a
source kind"). Everything else is derived from the union.
"""

from __future__ import annotations

from typing import Annotated, get_args

from pydantic import Field, TypeAdapter

from include.mallard.config.kinds.files import FilesSource, FileTable
from include.mallard.config.kinds.python import PythonSource
from include.mallard.config.kinds.rest_api import RestApiSource, RestAuth, RestPaginator, RestResource
from include.mallard.config.kinds.sql_database import SqlCredentials, SqlDatabaseSource, SqlTable
from include.mallard.config.kinds.synthetic import SyntheticSource

SourceModel = SyntheticSource | FilesSource | RestApiSource | SqlDatabaseSource | PythonSource
SOURCE_ADAPTER: TypeAdapter[SourceModel] = TypeAdapter(Annotated[SourceModel, Field(discriminator="kind")])


def _tags(union: object, tag: str) -> tuple[str, ...]:
    """The values of the discriminator `tag` across the members of a (possibly Annotated) union."""
    members = get_args(union)
    if members and not isinstance(members[0], type):  # Annotated[Union, Field]: unwrap it
        members = get_args(members[0])
    return tuple(get_args(member.model_fields[tag].annotation)[0] for member in members)


SOURCE_KINDS: tuple[str, ...] = _tags(SourceModel, "kind")
AUTH_TYPES: tuple[str, ...] = _tags(RestAuth, "type")
PAGINATOR_TYPES: tuple[str, ...] = _tags(RestPaginator, "type")

__all__ = [
    "AUTH_TYPES",
    "PAGINATOR_TYPES",
    "SOURCE_ADAPTER",
    "SOURCE_KINDS",
    "FileTable",
    "FilesSource",
    "PythonSource",
    "RestApiSource",
    "RestResource",
    "SourceModel",
    "SqlCredentials",
    "SqlDatabaseSource",
    "SqlTable",
    "SyntheticSource",
]
