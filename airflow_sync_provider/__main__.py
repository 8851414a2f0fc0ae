"""``python -m airflow_sync_provider``: see ``airflow_sync_provider.admin.cli``."""

from airflow_sync_provider.admin.cli import run

if __name__ == "__main__":
    run()
