"""``python -m airflow_sync_provider``: see ``airflow_sync_provider.cli``."""

from airflow_sync_provider.cli import run

if __name__ == "__main__":
    run()
