"""OpenLineage datasets of a sync: the API endpoint it reads and the table it writes.

Used by ``RateLimitedSyncOperator.get_openlineage_facets_on_complete``; returns None when the
OpenLineage provider is not installed. No credentials: URLs lose their user info and query.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from airflow_sync_provider.config import SyncConfig


def input_dataset(url: str) -> tuple[str, str]:
    """``(namespace, name)`` of an HTTP endpoint: ``http://host:port`` and the path."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}", parts.path or "/"


def output_dataset(config: SyncConfig) -> tuple[str, str] | None:
    """``(namespace, name)`` of the table a sync loads into, per OpenLineage's naming where it has one."""
    load = config.load
    if load is None:
        return None
    if load.destination == "duckdb":
        from airflow_sync_provider.load.destination import duckdb_path

        path = duckdb_path(load, config.source)
        return f"duckdb://{path}", f"{path.stem}.{load.dataset}.{load.table}"
    from airflow.sdk import Connection

    assert load.conn_id is not None
    conn = Connection.get(load.conn_id)
    return (
        f"postgres://{conn.host}:{conn.port or 5432}",
        f"{conn.schema or 'postgres'}.{load.dataset}.{load.table}",
    )


def sync_lineage(config: SyncConfig, endpoint_url: str) -> Any:
    """An ``OperatorLineage`` with the endpoint as input and the table (if any) as output."""
    try:
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    outputs = []
    target = output_dataset(config)
    if target is not None:
        outputs.append(Dataset(namespace=target[0], name=target[1]))
    namespace, name = input_dataset(endpoint_url)
    return OperatorLineage(inputs=[Dataset(namespace=namespace, name=name)], outputs=outputs)
