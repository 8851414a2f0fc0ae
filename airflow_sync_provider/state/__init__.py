"""A source's shared state: its JSON form and store (one Airflow Variable per source), per-resource
entries, and the one-query reader the CLI and dashboard use."""
