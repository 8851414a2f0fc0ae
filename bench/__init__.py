"""Benchmarks of airflow-sync-provider against what users would do instead (see bench/README.md)."""
