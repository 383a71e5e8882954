"""Mallard: config-driven dlt ingestion and Cosmos-rendered dbt on DuckDB, inside Airflow."""
