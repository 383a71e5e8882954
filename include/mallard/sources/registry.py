"""From a source config to the dlt resources that load it. Imported only inside tasks (dlt is heavy).

A kind's builder is the function `build(config, interval)` of the module `sources/<kind>.py`,
found by the config's `kind`: adding a kind needs no entry here (tests/unit/test_architecture.py
checks that every configured kind has one). The schema contract, and the check that no record's
keys meet in one column, are applied here, once for all.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from dlt.extract import DltResource, DltSource

from include.mallard.config import SourceConfig
from include.mallard.config.base import SchemaContract
from include.mallard.interval import Interval
from include.mallard.sources.column_names import without_key_collisions

ExtractItem = DltResource | DltSource
Builder = Callable[[Any, Interval], list[ExtractItem]]

# Mallard's three contract settings in dlt's terms. New tables may always appear (a resource
# added to the config, a nested list); what is frozen or filtered is the shape of known tables.
SCHEMA_CONTRACTS: dict[str, Any] = {
    "evolve": "evolve",
    "freeze": {"tables": "evolve", "columns": "freeze", "data_type": "freeze"},
    "discard_rows": {"tables": "evolve", "columns": "discard_row", "data_type": "discard_row"},
}


def builder_for(kind: str) -> Builder:
    """The `build` function of `include.mallard.sources.<kind>`."""
    module = importlib.import_module(f"{__package__}.{kind}")
    build = getattr(module, "build", None)
    if not callable(build):
        raise TypeError(f"{module.__name__} has no build(config, interval) function for kind {kind!r}")
    return build


def apply_schema_contract(items: list[ExtractItem], contract: SchemaContract, source_name: str) -> list[ExtractItem]:
    """Apply the source's schema contract, measured against the schema of its last load.

    Each run starts from an empty working folder, so dlt alone would see every table as new and
    freeze nothing; the schema remembered after the previous run (schema_store) is what the
    contract compares against.
    """
    if contract == "evolve":
        return items
    from include.mallard.sources import schema_store

    setting = SCHEMA_CONTRACTS[contract]
    resources = [item for item in items if isinstance(item, DltResource)]
    sources = [item for item in items if isinstance(item, DltSource)]
    previous = schema_store.restore(source_name)
    for source in sources:
        if previous is not None and previous.name == source.schema.name:
            source.schema = previous
        source.schema_contract = setting
    for resource in resources:
        resource.apply_hints(schema_contract=setting)
    if resources and previous is not None:
        sources.append(DltSource(previous, previous.name, resources))
        return list(sources)
    return [*sources, *resources]


def resources_of(items: list[ExtractItem]) -> list[DltResource]:
    """The selected resources in `items` (resources, or dlt sources holding them)."""
    return [r for i in items for r in (i.selected_resources.values() if isinstance(i, DltSource) else [i])]


def build_resources(config: SourceConfig, interval: Interval) -> list[ExtractItem]:
    """The dlt resources (or sources) that load `config` for `interval`."""
    items = builder_for(config.kind)(config, interval)
    for resource in resources_of(items) if not config.READER_CHECKS_RECORD_KEYS else ():
        resource.add_map(without_key_collisions(config.name, resource.name))  # dict rows; Arrow passes
    return apply_schema_contract(items, config.schema_contract, config.name)
