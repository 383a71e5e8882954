# Mallard: the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
ENV := source scripts/env.sh &&
MALLARD := $(VENV)/bin/mallard
# The run is recorded under the last day it loads: a later backfill that skips dates with a run
# then skips only a day that was loaded (under 2024-01-08 it skipped a day never loaded).
DEMO_DATE ?= 2024-01-07
DEMO_CONF ?= {"start": "2024-01-01", "end": "2024-01-08"}

.PHONY: install manifest demo stack test lint validate clean

# Install everything into .venv (re-runs only when the requirements change).
install: $(VENV)/.installed
# The project itself is installed in editable mode: that puts the `mallard` command in .venv/bin.
# Without build isolation, so setuptools >= 70.1 (it builds wheels itself): a system Python's venv
# (Debian's 3.11: setuptools 66, no `wheel`) failed with "invalid command 'bdist_wheel'".
$(VENV)/.installed: requirements.txt requirements-local.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=70.1"
	$(PY) -m pip install --quiet -r requirements-local.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Build include/dbt/target/manifest.json, which Cosmos renders the dbt tasks from. Runs `dbt deps`
# first when include/dbt has a packages.yml and no dbt_packages/ (hub and git packages need network).
manifest: install
	$(MALLARD) manifest

# Run the whole pipeline once on the demo sources (a week of data) and print the marts.
demo: manifest
	$(MALLARD) validate
	$(ENV) $(VENV)/bin/airflow db migrate > /dev/null
	$(ENV) $(VENV)/bin/airflow dags test mallard_elt $(DEMO_DATE) --conf '$(DEMO_CONF)' > .airflow/demo-run.log 2>&1 \
		|| { tail -50 .airflow/demo-run.log; echo "The demo run failed; full log: .airflow/demo-run.log"; exit 1; }
	$(MALLARD) marts

# The local Airflow stack (the non-Docker twin of `astro dev start`): api-server, scheduler,
# dag-processor and triggerer on http://127.0.0.1:$(PORT), login admin/admin. Ctrl-C stops it.
# EXECUTOR=celery: CeleryExecutor with its own PostgreSQL and Redis and $(WORKERS) Celery workers.
PORT ?= 8080
EXECUTOR ?= local
WORKERS ?= 2
stack: manifest
	$(PY) scripts/airflow_stack.py start --port $(PORT) --executor $(EXECUTOR)$(if $(filter celery,$(EXECUTOR)), --workers $(WORKERS))

# The test suite (what CI runs).
test: manifest
	$(ENV) $(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

validate: install
	$(MALLARD) validate

clean:
	rm -rf .airflow .mallard warehouse include/dbt/target include/dbt/logs
