"""Airflow UI plugin of airflow-sync-provider: the "Sync breakers" dashboard (see ``dashboard``)."""
