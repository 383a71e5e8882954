"""Airflow import errors for invalid source files, while the ELT DAG still runs the valid sources.

An import error on `mallard_elt.py` itself would stop Airflow from scheduling the DAG (the DAG
processor marks every DAG of a file with an import error as having one, and the scheduler skips
those). So `mallard_elt.py` builds the DAG with a failing `ingest_<file>` task per invalid file, and
this file, which defines no DAG, raises the problems (file, field, fix) so that Airflow lists them
under Import errors. (Airflow's DAG processor skips files that do not mention both "airflow" and "dag".)
"""

from include.mallard.config.project import raise_for_invalid_project_files

raise_for_invalid_project_files()
