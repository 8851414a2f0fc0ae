"""The dlt destination of a ``LoadConfig``: a DuckDB file, or PostgreSQL from an Airflow connection."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from airflow_sync_provider.config.load import LoadConfig


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


def duckdb_path(load: LoadConfig, source: str) -> Path:
    """The DuckDB file of ``source``: ``load.path`` with ``{source}``, relative to ``$AIRFLOW_HOME``."""
    path = Path(load.path.replace("{source}", source)).expanduser()
    return path if path.is_absolute() else airflow_home() / path


def postgres_url(conn_id: str) -> str:
    """``postgresql://`` URL of an Airflow connection (schema = database); never logged."""
    from airflow.sdk import Connection

    conn = Connection.get(conn_id)
    user = quote(conn.login or "", safe="")
    password = f":{quote(conn.password or '', safe='')}"  # dlt requires the field; '' serves trust auth
    port = f":{conn.port}" if conn.port else ""
    return f"postgresql://{user}{password}@{conn.host or 'localhost'}{port}/{conn.schema or 'postgres'}"


REPLACE_STRATEGY = "insert-from-staging"
"""dlt's ``replace`` that truncates and inserts in one transaction: a reader sees the old or the new table."""


def make_destination(load: LoadConfig, source: str) -> Any:
    """A dlt destination object (dlt must be importable)."""
    from dlt import destinations

    if load.destination == "duckdb":
        path = duckdb_path(load, source)
        path.parent.mkdir(parents=True, exist_ok=True)
        return destinations.duckdb(str(path), replace_strategy=REPLACE_STRATEGY)
    assert load.conn_id is not None  # LoadConfig requires it for postgres
    return destinations.postgres(credentials=postgres_url(load.conn_id), replace_strategy=REPLACE_STRATEGY)
