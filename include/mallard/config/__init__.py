"""Source config: the common base, one module per kind (`kinds/`), and the loader."""

from include.mallard.config.base import ExternalReference, Issue, SecretRef, SourceBase
from include.mallard.config.kinds import (
    SOURCE_ADAPTER,
    SOURCE_KINDS,
    FilesSource,
    FileTable,
    PythonSource,
    RestApiSource,
    RestResource,
    SqlCredentials,
    SqlDatabaseSource,
    SqlTable,
    SyntheticSource,
)
from include.mallard.config.loader import ConfigError, ConfigProblem, SourceConfig, get_source, load_sources
from include.mallard.config.tables import TableBase, TableSettings

__all__ = [
    "SOURCE_ADAPTER",
    "SOURCE_KINDS",
    "ConfigError",
    "ConfigProblem",
    "ExternalReference",
    "FileTable",
    "FilesSource",
    "Issue",
    "PythonSource",
    "RestApiSource",
    "RestResource",
    "SecretRef",
    "SourceBase",
    "SourceConfig",
    "SqlCredentials",
    "SqlDatabaseSource",
    "SqlTable",
    "SyntheticSource",
    "TableBase",
    "TableSettings",
    "get_source",
    "load_sources",
]
