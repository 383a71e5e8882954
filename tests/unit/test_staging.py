"""Generated staging from a hand-made dlt schema: rendering, and the marker/ownership rules (no warehouse)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from include.mallard import staging
from include.mallard.staging import (
    StagingError,
    config_facts,
    file_state,
    run_command,
    sync_staging,
    tables_from_dlt_schema,
)
from include.mallard.staging.schema import sql_type

SEEN = {"x-normalizer": {"seen-data": True}}
DLT_ROOT = {
    "_dlt_load_id": {"name": "_dlt_load_id", "data_type": "text", "nullable": False},
    "_dlt_id": {"name": "_dlt_id", "data_type": "text", "nullable": False, "unique": True, "row_key": True},
}
DLT_CHILD = {
    "_dlt_root_id": {"name": "_dlt_root_id", "data_type": "text", "nullable": False, "root_key": True},
    "_dlt_parent_id": {"name": "_dlt_parent_id", "data_type": "text", "nullable": False, "parent_key": True},
    "_dlt_list_idx": {"name": "_dlt_list_idx", "data_type": "bigint", "nullable": False},
    "_dlt_id": {"name": "_dlt_id", "data_type": "text", "nullable": False, "unique": True, "row_key": True},
}


def _columns(*columns: dict) -> dict:
    return {c["name"]: c for c in columns}


# What dlt stores in raw_shop._dlt_version.schema, trimmed to what the generator reads.
SCHEMA = {
    "name": "mallard_shop",
    "tables": {
        "_dlt_version": {"name": "_dlt_version", "columns": _columns({"name": "version", "data_type": "bigint"})},
        "_dlt_loads": {"name": "_dlt_loads", "columns": _columns({"name": "load_id", "data_type": "text"})},
        "orders": {
            "name": "orders",
            "write_disposition": "merge",
            "description": "One row per order.",
            "columns": _columns(
                {"name": "id", "data_type": "bigint", "nullable": False, "primary_key": True},
                {"name": "customer_id", "data_type": "bigint"},
                {"name": "status", "data_type": "text", "description": "Where the order is."},
                {"name": "total", "data_type": "decimal", "precision": 18, "scale": 2},
                {"name": "weight", "data_type": "double"},
                {"name": "is_gift", "data_type": "bool"},
                {"name": "order", "data_type": "text"},  # a reserved word
                {"name": "ordered_at", "data_type": "timestamp", "incremental": True},
                {"name": "ship_by", "data_type": "date"},
                {"name": "extra", "data_type": "json"},
                {"name": "never_seen"},  # no data type: dlt never created it
            )
            | DLT_ROOT,
            **SEEN,
        },
        "orders__items": {
            "name": "orders__items",
            "parent": "orders",
            "columns": _columns({"name": "sku", "data_type": "text"}, {"name": "qty", "data_type": "bigint"})
            | DLT_CHILD,
            **SEEN,
        },
        "customers": {
            "name": "customers",
            "write_disposition": "replace",
            "columns": _columns(
                {"name": "id", "data_type": "bigint", "primary_key": True},
                {"name": "email", "data_type": "text"},
                {"name": "signed_up_at", "data_type": "timestamp"},
            )
            | DLT_ROOT,
            **SEEN,
        },
        "spend": {
            "name": "spend",
            "write_disposition": "merge",
            "columns": _columns(
                {"name": "spend_date", "data_type": "date", "primary_key": True},
                {"name": "channel", "data_type": "text", "primary_key": True},
                {"name": "amount", "data_type": "double"},
            ),
            **SEEN,
        },
        "events": {
            "name": "events",
            "write_disposition": "append",
            "columns": _columns({"name": "event_id", "data_type": "text", "primary_key": True}) | DLT_ROOT,
            **SEEN,
        },
        "declared_only": {"name": "declared_only", "columns": _columns({"name": "a", "data_type": "text"})},
    },
}
MODELS = ["customers", "events", "orders", "orders__items", "spend"]


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "dbt"
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: t\nprofile: t\nconfig-version: 2\nmodel-paths: ['models']\n")
    return root


def _dir(project: Path) -> Path:
    return project / "models" / "staging" / "shop"


def _read(project: Path, name: str) -> str:
    return (_dir(project) / name).read_text()


def _body(project: Path, name: str) -> str:
    return _read(project, name).partition("\n")[2]


def _yaml(project: Path, name: str) -> dict:
    return yaml.safe_load(_read(project, name))


def _model_columns(project: Path, table: str) -> dict[str, dict]:
    (model,) = _yaml(project, f"stg_shop__{table}.yml")["models"]
    return {c["name"]: c for c in model["columns"]}


def _snapshot(project: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(_dir(project).iterdir())}


def test_loaded_tables_parents_first_without_dlt_tables_or_unseen_ones():
    tables = tables_from_dlt_schema(SCHEMA)
    assert [t.name for t in tables] == ["customers", "events", "orders", "spend", "orders__items"]
    orders = next(t for t in tables if t.name == "orders")
    assert orders.children == ("orders__items",)
    assert orders.cursor == "ordered_at"
    assert "never_seen" not in [c.name for c in orders.columns]


def test_first_generation_writes_sources_and_one_sql_and_yml_per_table(project):
    result = sync_staging("shop", SCHEMA, project)
    expected = {"_shop__sources.yml"} | {f"stg_shop__{t}.{ext}" for t in MODELS for ext in ("sql", "yml")}
    assert {p.name for p in result.created} == expected
    assert {p.name for p in _dir(project).iterdir()} == expected
    assert not (result.updated or result.user_owned or result.skipped_models)
    for name in expected:
        first_line = _read(project, name).splitlines()[0]
        assert first_line.startswith(("-- generated by mallard (checksum ", "# generated by mallard (checksum "))
        assert file_state(_dir(project) / name) == "generated"


def test_model_sql_is_jaffle_shop_style_typed_and_grouped(project):
    sync_staging("shop", SCHEMA, project)
    sql = _body(project, "stg_shop__orders.sql")
    assert sql.startswith(
        "with\n\nsource as (\n\n    select * from {{ source('shop', 'orders') }}\n\n),\n\nrenamed as ("
    )
    assert sql.endswith("    from source\n\n)\n\nselect * from renamed\n")
    headers = [line.strip() for line in sql.splitlines() if line.strip().startswith("----------")]
    assert headers == [f"---------- {k}" for k in ("ids", "text", "numerics", "booleans", "dates", "timestamps")] + [
        "---------- other",
        "---------- dlt",
    ]
    assert "cast(id as bigint) as id,  -- primary key" in sql
    assert "cast(customer_id as bigint) as customer_id," in sql
    assert "cast(total as decimal(18, 2)) as total," in sql
    assert "cast(is_gift as boolean) as is_gift," in sql
    assert 'cast("order" as varchar) as "order",' in sql  # reserved word, quoted
    assert "cast(ordered_at as timestamp with time zone) as ordered_at,  -- incremental cursor" in sql
    assert "cast(extra as json) as extra," in sql
    # dlt columns pass through; orders has a child table, so its row key stays (last column: no comma).
    assert "        _dlt_load_id,  -- the dlt load that wrote the row\n" in sql
    assert "        _dlt_id  -- row key set by dlt; nested tables join on it\n" in sql


def test_dlt_columns_rules(project):
    sync_staging("shop", SCHEMA, project)
    # A table with a primary key and no children drops _dlt_id, keeps _dlt_load_id.
    assert list(_model_columns(project, "customers")) == ["id", "email", "signed_up_at", "_dlt_load_id"]
    assert "_dlt_id" not in _body(project, "stg_shop__customers.sql")
    # A parent keeps _dlt_id (its children join to it), tested unique.
    assert _model_columns(project, "orders")["_dlt_id"]["data_tests"] == ["not_null", "unique"]
    # A child keeps every join key.
    child = _model_columns(project, "orders__items")
    assert {"_dlt_root_id", "_dlt_parent_id", "_dlt_list_idx", "_dlt_id"} <= child.keys()
    child_sql = _body(project, "stg_shop__orders__items.sql")
    assert "_dlt_parent_id,  -- joins stg_shop__orders._dlt_id" in child_sql
    assert "cast(_dlt_parent_id" not in child_sql


def test_tests_on_keys_and_the_parent_child_link(project):
    sync_staging("shop", SCHEMA, project)
    assert _model_columns(project, "orders")["id"]["data_tests"] == ["not_null", "unique"]
    # An append table may repeat its key by design: not_null only.
    assert _model_columns(project, "events")["event_id"]["data_tests"] == ["not_null"]
    # A compound key: not_null on each column, unique on the key as one row value.
    (spend,) = _yaml(project, "stg_shop__spend.yml")["models"]
    assert spend["data_tests"] == [{"unique": {"arguments": {"column_name": "row(spend_date, channel)"}}}]
    assert {c["name"]: c.get("data_tests") for c in spend["columns"]}["channel"] == ["not_null"]
    # A child table without a primary key: its row key is unique, its parent key points at the parent model.
    child = _model_columns(project, "orders__items")
    assert child["_dlt_id"]["data_tests"] == ["not_null", "unique"]
    assert child["_dlt_parent_id"]["data_tests"] == [
        "not_null",
        {"relationships": {"arguments": {"to": "ref('stg_shop__orders')", "field": "_dlt_id"}}},
    ]
    assert _model_columns(project, "orders")["status"]["description"] == "Where the order is."


def test_sources_yml_has_types_descriptions_and_freshness_for_cursors_only(project):
    sync_staging("shop", SCHEMA, project, cursors={"spend": "spend_date"}, description="The shop.")
    (source,) = _yaml(project, "_shop__sources.yml")["sources"]
    assert (source["name"], source["schema"], source["description"]) == ("shop", "raw_shop", "The shop.")
    tables = {t["name"]: t for t in source["tables"]}
    assert list(tables) == ["customers", "events", "orders", "spend", "orders__items"]
    assert tables["orders"]["description"] == "One row per order."
    columns = {c["name"]: c for c in tables["orders"]["columns"]}
    assert columns["ordered_at"]["data_type"] == "timestamp with time zone"
    assert columns["status"]["description"] == "Where the order is."
    assert columns["order"]["quote"] is True
    assert tables["orders"]["config"] == {"loaded_at_field": "ordered_at", "freshness": staging.DEFAULT_FRESHNESS}
    # The cursor of spend comes from the config (dlt did not mark it); a date is cast for dbt.
    assert tables["spend"]["config"]["loaded_at_field"] == "cast(spend_date as timestamp)"
    assert "config" not in tables["customers"]
    assert "&id" not in _read(project, "_shop__sources.yml")  # no YAML aliases


def test_cursor_description_and_freshness_come_from_the_source_config(tmp_path):
    (tmp_path / "shop.yml").write_text("kind: synthetic\ndescription: Demo shop.\n")
    (tmp_path / "files.yml").write_text(
        "kind: files\npath: /tmp\nfreshness: {error_after: {count: 6, period: hour}}\ntables:\n"
        "  - {name: spend, glob: '*.csv', primary_key: [day], cursor: day}\n"
        "  - {name: stores, glob: '*.csv'}\n"
    )
    (tmp_path / "quiet.yml").write_text("kind: synthetic\nfreshness: false\n")
    default = staging.DEFAULT_FRESHNESS
    assert config_facts(tmp_path, "shop") == ({"orders": "ordered_at", "payments": "paid_at"}, "Demo shop.", default)
    assert config_facts(tmp_path, "files") == ({"spend": "day"}, "", {"error_after": {"count": 6, "period": "hour"}})
    assert config_facts(tmp_path, "quiet").freshness is None
    assert config_facts(tmp_path, "unknown") == ({}, "", default)
    assert config_facts(None, "shop") == ({}, "", default)


def test_a_source_without_freshness_gets_no_freshness_block(project):
    sync_staging("shop", SCHEMA, project, cursors={"spend": "spend_date"}, freshness=None)
    (source,) = _yaml(project, "_shop__sources.yml")["sources"]
    assert all("config" not in table for table in source["tables"])


def test_regenerating_the_same_schema_changes_nothing(project):
    sync_staging("shop", SCHEMA, project)
    before = _snapshot(project)
    result = sync_staging("shop", SCHEMA, project)
    assert not result.changed
    assert len(result.unchanged) == 11
    assert _snapshot(project) == before


def test_a_new_column_updates_only_the_generated_files_that_show_it(project):
    sync_staging("shop", SCHEMA, project)
    before = _snapshot(project)
    evolved = copy.deepcopy(SCHEMA)
    evolved["tables"]["customers"]["columns"]["phone"] = {"name": "phone", "data_type": "text"}
    result = sync_staging("shop", evolved, project)
    assert {p.name for p in result.updated} == {
        "_shop__sources.yml",
        "stg_shop__customers.sql",
        "stg_shop__customers.yml",
    }
    assert "cast(phone as varchar) as phone," in _body(project, "stg_shop__customers.sql")
    after = _snapshot(project)
    assert {n for n in after if after[n] != before[n]} == {p.name for p in result.updated}


def test_an_edited_file_is_left_alone_and_its_whole_model_skipped(project):
    sync_staging("shop", SCHEMA, project)
    sql_file = _dir(project) / "stg_shop__customers.sql"
    edited = sql_file.read_text().replace("cast(email as varchar) as email", "lower(email) as email")
    sql_file.write_text(edited)
    yml_before = _read(project, "stg_shop__customers.yml")
    assert file_state(sql_file) == "user"

    evolved = copy.deepcopy(SCHEMA)
    evolved["tables"]["customers"]["columns"]["phone"] = {"name": "phone", "data_type": "text"}
    result = sync_staging("shop", evolved, project)
    assert sql_file.read_text() == edited
    assert _read(project, "stg_shop__customers.yml") == yml_before  # no half-updated model
    assert result.skipped_models == ["stg_shop__customers"]
    assert "edited since it was generated" in result.user_owned[sql_file.relative_to(project)]
    assert "stg_shop__customers" in result.report()
    assert [p.name for p in result.updated] == ["_shop__sources.yml"]


def test_deleting_the_marker_line_takes_ownership(project):
    sync_staging("shop", SCHEMA, project)
    yml_file = _dir(project) / "stg_shop__orders.yml"
    owned = yml_file.read_text().partition("\n")[2]
    yml_file.write_text(owned)
    result = sync_staging("shop", SCHEMA, project)
    assert yml_file.read_text() == owned
    assert "stg_shop__orders" in result.skipped_models
    assert result.user_owned[yml_file.relative_to(project)].startswith("has no mallard marker")
    # The child's relationship test now points at the raw parent (the user's model may drop _dlt_id).
    child = _model_columns(project, "orders__items")
    relationship = child["_dlt_parent_id"]["data_tests"][1]["relationships"]["arguments"]
    assert relationship["to"] == "source('shop', 'orders')"


def test_a_user_sources_yml_is_not_written_and_its_missing_tables_are_reported(project):
    sync_staging("shop", SCHEMA, project)
    sources_file = _dir(project) / "_shop__sources.yml"
    user_sources = "version: 2\nsources:\n  - name: shop\n    schema: raw_shop\n    tables:\n      - name: orders\n"
    sources_file.write_text(user_sources)
    result = sync_staging("shop", SCHEMA, project)
    assert sources_file.read_text() == user_sources
    assert result.missing_from_user_sources == ["customers", "events", "spend", "orders__items"]
    # Models of undeclared tables could not compile: not generated, and generated ones removed.
    assert {p.name for p in _dir(project).iterdir()} == {
        "_shop__sources.yml",
        "stg_shop__orders.sql",
        "stg_shop__orders.yml",
    }
    assert "your sources YAML lacks tables customers, events, spend, orders__items" in result.report()


def test_a_model_the_user_defines_elsewhere_is_not_generated(project):
    (project / "models" / "mine").mkdir()
    (project / "models" / "mine" / "stg_shop__events.sql").write_text("select 1 as event_id\n")
    result = sync_staging("shop", SCHEMA, project)
    assert "stg_shop__events" in result.skipped_models
    assert not (_dir(project) / "stg_shop__events.sql").exists()
    assert not (_dir(project) / "stg_shop__events.yml").exists()


def test_a_vanished_table_removes_generated_files_and_reports_user_ones(project):
    sync_staging("shop", SCHEMA, project)
    (_dir(project) / "stg_shop__events.sql").write_text("select 1 as mine\n")  # now the user's
    shrunk = copy.deepcopy(SCHEMA)
    del shrunk["tables"]["events"], shrunk["tables"]["customers"]
    result = sync_staging("shop", shrunk, project)
    assert {p.name for p in result.removed} == {
        "stg_shop__customers.sql",
        "stg_shop__customers.yml",
        "stg_shop__events.yml",
    }
    assert [p.name for p in result.orphaned] == ["stg_shop__events.sql"]
    assert (_dir(project) / "stg_shop__events.sql").read_text() == "select 1 as mine\n"


def test_a_schema_without_loaded_tables_is_an_error(project):
    with pytest.raises(StagingError, match="load the source first"):
        sync_staging("shop", {"tables": {"_dlt_loads": SCHEMA["tables"]["_dlt_loads"]}}, project)


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        ({"data_type": "text"}, "varchar"),
        ({"data_type": "bigint"}, "bigint"),
        ({"data_type": "bigint", "precision": 8}, "tinyint"),
        ({"data_type": "bigint", "precision": 16}, "smallint"),
        ({"data_type": "bigint", "precision": 32}, "integer"),
        ({"data_type": "bigint", "precision": 64}, "bigint"),
        ({"data_type": "bigint", "precision": None}, "bigint"),
        ({"data_type": "double"}, "double"),
        ({"data_type": "bool"}, "boolean"),
        ({"data_type": "date"}, "date"),
        ({"data_type": "time"}, "time"),
        ({"data_type": "timestamp"}, "timestamp with time zone"),
        ({"data_type": "timestamp", "timezone": True, "precision": 3}, "timestamp with time zone"),
        ({"data_type": "timestamp", "timezone": False}, "timestamp"),
        ({"data_type": "timestamp", "timezone": False, "precision": None}, "timestamp"),
        ({"data_type": "timestamp", "timezone": False, "precision": 0}, "timestamp_s"),
        ({"data_type": "timestamp", "timezone": False, "precision": 3}, "timestamp_ms"),
        ({"data_type": "timestamp", "timezone": False, "precision": 6}, "timestamp"),
        ({"data_type": "timestamp", "timezone": False, "precision": 9}, "timestamp_ns"),
        ({"data_type": "decimal"}, "decimal(38, 9)"),
        ({"data_type": "decimal", "precision": 18, "scale": 2}, "decimal(18, 2)"),
        ({"data_type": "wei"}, "decimal(38, 0)"),
        ({"data_type": "json"}, "json"),
        ({"data_type": "binary"}, "blob"),
    ],
)
def test_sql_types_are_the_duckdb_types_dlt_creates(column, expected):
    assert sql_type({"name": "c", **column}, "t") == expected


def test_cli_needs_a_source_or_all(tmp_path, capsys):
    paths = {"dbt_project_dir": tmp_path, "sources_dir": tmp_path, "warehouse": None, "rebuild_manifest": False}
    assert run_command(None, False, **paths) == 2
    assert run_command("shop", True, **paths) == 2
    assert "give a source name or --all" in capsys.readouterr().err


def test_cli_reports_a_missing_warehouse_as_a_failure(tmp_path, capsys):
    paths = {"dbt_project_dir": tmp_path, "sources_dir": tmp_path, "rebuild_manifest": False}
    assert run_command("shop", False, warehouse=tmp_path / "none.duckdb", **paths) == 1
    assert "staging: no warehouse at" in capsys.readouterr().err


def test_a_folder_without_dbt_project_is_an_error(tmp_path):
    with pytest.raises(StagingError, match=r"dbt_project\.yml does not exist"):
        sync_staging("shop", SCHEMA, tmp_path)


def _with_variant() -> dict:
    """SCHEMA with the readings of a sensor: `temperature` was mostly whole numbers, some were not."""
    schema = copy.deepcopy(SCHEMA)
    schema["tables"]["readings"] = {
        "name": "readings",
        "write_disposition": "append",
        "columns": _columns(
            {"name": "id", "data_type": "bigint", "primary_key": True},
            {"name": "temperature", "data_type": "bigint"},
            # What dlt writes for a value that does not fit the column's type (description included).
            {
                "name": "temperature__v_double",
                "data_type": "double",
                "variant": True,
                "description": "Variant of column temperature__v_double generated by dlt",
            },
        )
        | DLT_ROOT,
        **SEEN,
    }
    return schema


def test_a_variant_column_is_kept_apart_and_says_it_is_not_coalesced(project):
    (readings,) = [t for t in tables_from_dlt_schema(_with_variant()) if t.name == "readings"]
    assert {c.name: c.variant_of for c in readings.columns}["temperature__v_double"] == "temperature"
    sync_staging("shop", _with_variant(), project)
    sql = _body(project, "stg_shop__readings.sql")
    # Both columns are selected as dlt typed them, each with a comment that points at the other.
    assert (
        "cast(temperature as bigint) as temperature,  -- values of other types are in temperature__v_double, not here"
    ) in sql
    assert (
        "cast(temperature__v_double as double) as temperature__v_double,  -- variant of temperature: "
        "its values that are not bigint; not coalesced into it"
    ) in sql
    assert "coalesce(" not in sql
    columns = _model_columns(project, "readings")
    assert columns["temperature__v_double"]["description"] == (
        "Variant of temperature: its values that are not bigint; not coalesced into it."
    )


def test_a_column_named_like_a_variant_is_not_one_without_dlts_mark():
    schema = _with_variant()
    schema["tables"]["readings"]["columns"]["price__v_eur"] = {"name": "price__v_eur", "data_type": "double"}
    (readings,) = [t for t in tables_from_dlt_schema(schema) if t.name == "readings"]
    assert {c.name: c.variant_of for c in readings.columns}["price__v_eur"] is None
