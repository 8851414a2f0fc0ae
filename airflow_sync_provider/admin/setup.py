"""Create what sync DAGs need before they can run: one pool per source, and optionally a connection.

Idempotent. Needs the Airflow metadata DB (run it where ``airflow`` CLI commands work).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from airflow_sync_provider.config import SyncConfig

POOL_SLOTS = 1


def ensure_pools(configs: Iterable[SyncConfig]) -> list[tuple[str, str]]:
    """Create or repair every ``sync_<source>`` pool (1 slot, deferred tasks keep their slot)."""
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    report: list[tuple[str, str]] = []
    with create_session() as session:
        for config in configs:
            pool = session.query(Pool).filter(Pool.pool == config.pool).one_or_none()
            if pool is not None and pool.slots == POOL_SLOTS and pool.include_deferred:
                report.append((config.pool, "ok"))
                continue
            Pool.create_or_update_pool(
                name=config.pool,
                slots=POOL_SLOTS,
                description=f"airflow-sync-provider: serialises every writer of {config.variable_key}",
                include_deferred=True,
                session=session,
            )
            report.append((config.pool, "created" if pool is None else "repaired"))
    return report


def missing_pools(configs: Iterable[SyncConfig]) -> list[str]:
    """Pools that sync DAGs of ``configs`` would wait for forever."""
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    wanted = {c.pool for c in configs}
    with create_session() as session:
        present = {name for (name,) in session.query(Pool.pool).filter(Pool.pool.in_(wanted))}
    return sorted(wanted - present)


def ensure_connection(conn_id: str, url: str, *, replace: bool = False) -> str:
    """Create the HTTP connection ``conn_id`` for ``url`` (http[s]://host[:port]) if absent.

    A path, query, fragment or credentials in ``url`` are refused: a connection's host, port and
    schema cannot hold them (each source's ``endpoint`` is the path), and dropping them would be silent.
    """
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or port == -1
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise ValueError(f"connection url must look like http://host:port, got {url!r}")
    with create_session() as session:
        existing = session.query(Connection).filter(Connection.conn_id == conn_id).one_or_none()
        if existing is not None and not replace:
            return "exists"
        if existing is not None:
            session.delete(existing)
            session.flush()
        session.add(
            Connection(
                conn_id=conn_id,
                conn_type="http",
                host=parts.hostname,
                port=port,
                schema=parts.scheme,
                extra=json.dumps({"Accept": "application/json"}),
                description="airflow-sync-provider: the API that sync DAGs read",
            )
        )
    return "replaced" if existing is not None else "created"
