"""Source config: the typed schema and the loader."""

from include.mallard.config.loader import ConfigError, ConfigProblem, SourceConfig, get_source, load_sources
from include.mallard.config.models import (
    FilesSource,
    FileTable,
    PythonSource,
    RestApiSource,
    RestResource,
    SecretRef,
    SqlCredentials,
    SqlDatabaseSource,
    SqlTable,
    SyntheticSource,
)

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "FileTable",
    "FilesSource",
    "PythonSource",
    "RestApiSource",
    "RestResource",
    "SecretRef",
    "SourceConfig",
    "SqlCredentials",
    "SqlDatabaseSource",
    "SqlTable",
    "SyntheticSource",
    "get_source",
    "load_sources",
]
