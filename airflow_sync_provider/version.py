"""The package version, kept apart so packaging can read it without importing Airflow."""

__version__ = "0.1.0"
