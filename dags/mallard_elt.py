"""The Mallard ELT DAG (Airflow): one dlt task group per include/sources/*.yml, then dbt via Cosmos.

Everything is built by the factory; this file stays thin. (Airflow's DAG processor skips files
that do not mention both "airflow" and "dag".)
"""

from include.mallard.factory import build_elt_dag

dag = build_elt_dag()
