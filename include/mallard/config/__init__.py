"""Source config: the typed schema and the loader."""

from include.mallard.config.loader import ConfigError, ConfigProblem, SourceConfig, get_source, load_sources
from include.mallard.config.models import FilesSource, FileTable, SyntheticSource

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "FileTable",
    "FilesSource",
    "SourceConfig",
    "SyntheticSource",
    "get_source",
    "load_sources",
]
