"""The Mallard ELT DAG (Airflow): one dlt task group per include/sources/*.yml, then dbt via Cosmos.

Everything is built by the factory; this file stays thin. Sources with a `schedule` of their own
get an ingestion DAG each. (Airflow's DAG processor skips files that do not mention both
"airflow" and "dag".)
"""

from include.mallard.factory import build_elt_dag, build_source_dags

dag = build_elt_dag()
globals().update({source_dag.dag_id: source_dag for source_dag in build_source_dags()})
