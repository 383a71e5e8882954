"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def warehouse(tmp_path, monkeypatch) -> Path:
    """A DuckDB warehouse and dlt work folder of the test's own (what `ingest.extract`/`load` write)."""
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("MALLARD_WORK_DIR", str(tmp_path / "work"))
    return tmp_path / "warehouse.duckdb"
