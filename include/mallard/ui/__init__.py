"""The Mallard pages in the Airflow UI (plugins/mallard_plugin.py mounts them at /mallard).

- `data.py`: read-only access to the published warehouse snapshot and its run history;
- `dbt_models.py`: the tables dbt builds and the tasks that show a node, from the manifest;
- `sources_page.py`, `runs_page.py`, `tables_page.py`: the pages (server-rendered HTML, `html.py`);
- `app.py`: the FastAPI app, every route behind Airflow's auth; `auth.py`: the same check for
  Cosmos's dbt docs view; `text.py`: no absolute host path on any page.
"""
