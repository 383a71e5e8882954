"""The Mallard ELT DAG (Airflow): one dlt task group per include/sources/*.yml, then dbt via Cosmos.

Everything is built by the factory; this file stays thin. Sources with a `schedule` of their own
get an ingestion DAG each; the start date and schedule come from mallard.yml. An invalid source
file gets a failing task here and an import error from `mallard_source_errors.py`. (Airflow's
DAG processor skips files that do not mention both "airflow" and "dag".)
"""

from include.mallard.factory import build_dags

globals().update(build_dags())
