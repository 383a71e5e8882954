"""Benchmarks measure what Mallard deploys: scripts/env.sh's settings apply even when the shell did not source it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from include.mallard.paths import PROJECT_ROOT


def test_benchmarks_run_with_the_project_environment_without_sourcing_it(tmp_path):
    # Cosmos's watcher Variable backup (on by default, off in scripts/env.sh) made the dbt build
    # task 3.2x bare dbt at 1,000 models in a benchmark run from a shell without env.sh.
    bare_shell = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "MALLARD", "PYTHONPATH", "PROVIDERS__"))
    }
    code = (
        "import json; from bench.common import prepare_environment; env = prepare_environment(); "
        "print(json.dumps({k: env.get(k) for k in ('AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY', "
        "'PROVIDERS__ENABLE_AIRFLOW_SECRETS', 'DO_NOT_TRACK', 'AIRFLOW_HOME')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=bare_shell, cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    env = json.loads(result.stdout.strip().splitlines()[-1])
    assert env["AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY"] == "False"
    assert env["PROVIDERS__ENABLE_AIRFLOW_SECRETS"] == "false"
    assert env["DO_NOT_TRACK"] == "1"  # telemetry off
    assert not env["AIRFLOW_HOME"].startswith(str(PROJECT_ROOT))  # a throwaway home, not the project's .airflow
