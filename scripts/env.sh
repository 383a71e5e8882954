# Environment shared by the Makefile targets and the local Airflow stack (source it).
# Everything is relative to the project root, so a fresh clone works wherever it lives.
MALLARD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MALLARD_ROOT
export PYTHONPATH="$MALLARD_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$MALLARD_ROOT/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$MALLARD_ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$MALLARD_ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# Cosmos caches dbt's partial parse per DAG id, by default in /tmp/cosmos shared by every project
# on the machine; keep it with this Airflow home instead.
export AIRFLOW__COSMOS__CACHE_DIR="${AIRFLOW__COSMOS__CACHE_DIR:-$AIRFLOW_HOME/cosmos}"
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-8}"
# After a loop that found nothing to do, the scheduler sleeps this long; a task that just ended
# waits for it before the next one is queued (a run of the 1M-row workload has ~15 such waits on
# its critical path). bench/e2e.py --pairs 5, medians: 1.194x bare at 0.25 s, 1.147-1.190x at
# 0.15 s, 1.151x at 0.1 s; at Airflow's 1 s the demo run took 32.0 s instead of 23.3 s. The price
# is the idle loop: an idle stack uses 3% of a core at 1 s, 6-7% at 0.25 s, ~10% at 0.15 s and
# 12-14% at 0.1 s (bench/scheduler_idle.py; docs/benchmarks.md, End to end, sixteenth session).
export AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="${AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME:-0.15}"
# A task's supervisor (the LocalExecutor worker) waits up to this long between heartbeats; when
# its task process closes its sockets just before it exits, the supervisor finds it still alive
# and waits the whole interval before it reaps it and frees the worker. At Airflow's 5 s, 9-16 of
# a 21-model run's 42 model and test tasks held their worker 5 s after finishing; at 1 s the model
# and test tasks took 8.65 s instead of 11.05 s, the run 21.1 s instead of 23.1 s (medians of 6
# interleaved runs). The price: a running task heartbeats every second (~7 ms of api-server CPU
# each). docs/benchmarks.md, End to end.
export AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL="${AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL:-1}"
# Cosmos's watcher producer otherwise rewrites one Airflow Variable holding every node's result
# on each of its ~5 XCom pushes per node (23 ms each): about half of the per-node overhead of the
# `dbt build` task. What it protects: a producer hard-killed (SIGKILL, OOM) and then cleared
# restores the finished nodes' results instead of each node re-running on its own (docs/design.md).
export AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY=False
# No network here: telemetry of Cosmos, dlt and dbt off.
export AIRFLOW__COSMOS__ENABLE_TELEMETRY=False
export DO_NOT_TRACK=1
export RUNTIME__DLTHUB_TELEMETRY=false
export DBT_SEND_ANONYMOUS_USAGE_STATS=false
# dlt's Airflow Variables provider looks up every config key it resolves as a Variable (~800 per
# extract); Mallard passes credentials itself (include/mallard/secrets.py), so it is off.
export PROVIDERS__ENABLE_AIRFLOW_SECRETS=false
# Cosmos's dbt docs view (Browse > Mallard dbt docs) serves what the DAG's dbt_docs task writes.
export MALLARD_DBT_DOCS_DIR="${MALLARD_DBT_DOCS_DIR:-$MALLARD_ROOT/include/dbt/target/docs}"
export AIRFLOW__COSMOS__DBT_DOCS_PROJECTS="{\"mallard\": {\"dir\": \"$MALLARD_DBT_DOCS_DIR\", \"index\": \"index.html\", \"name\": \"Mallard dbt docs\"}}"
