"""The shipped sync DAGs: one per source in sources.yaml (or $SYNC_SOURCES_FILE), plus sync_admin."""

from pathlib import Path

from airflow_sync_provider import build_sync_dags
from airflow_sync_provider.admin_dag import build_admin_dag
from airflow_sync_provider.sources_file import load_sources, resolve_path

CONFIGS = load_sources(resolve_path(Path(__file__).with_name("sources.yaml")))

globals().update(build_sync_dags(CONFIGS))
sync_admin = build_admin_dag(CONFIGS)
