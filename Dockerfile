# Astro Runtime 3.3-2 ships Apache Airflow 3.3.2, the version the tests run against
# (tests/dags/test_packaging.py keeps the two in step).
FROM astrocrpublic.azurecr.io/runtime:3.3-2

# The project (copied to /usr/local/airflow by the image's ONBUILD steps) imports `include.mallard`.
ENV PYTHONPATH=/usr/local/airflow \
    AIRFLOW__COSMOS__ENABLE_TELEMETRY=False \
    AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY=False \
    AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME=0.15 \
    AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL=1 \
    DO_NOT_TRACK=1 \
    RUNTIME__DLTHUB_TELEMETRY=false \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    PROVIDERS__ENABLE_AIRFLOW_SECRETS=false \
    MALLARD_DBT_DOCS_DIR=/usr/local/airflow/include/dbt/target/docs \
    AIRFLOW__COSMOS__DBT_DOCS_PROJECTS='{"mallard": {"dir": "/usr/local/airflow/include/dbt/target/docs", "index": "index.html", "name": "Mallard dbt docs"}}'

# dbt runs in the same environment as Airflow (requirements.txt), so Cosmos can invoke it
# in-process (InvocationMode.DBT_RUNNER). Build the manifest Cosmos renders the DAG from, so that
# parsing the DAG never runs dbt. `mallard manifest` checks the dbt profile, and runs `dbt deps`
# first when include/dbt declares packages (packages.yml) and has no dbt_packages/ yet; hub and git
# packages need network access at build time, and the build fails naming the fix without it.
RUN python -m include.mallard.cli manifest
