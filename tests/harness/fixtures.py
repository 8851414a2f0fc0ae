"""Fixtures for tests that need real Airflow, a demo API, or services."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import airflow_cli
from tests.harness.metadata_variables import MetadataVariables


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The session's SQLite metadata DB, migrated once."""
    airflow_cli.migrate_db()


@pytest.fixture
def variables(airflow_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """``airflow.models.Variable`` on the session DB; ``sync_state_*`` Variables are removed after.

    ``airflow.models.Variable`` switches to the Task SDK's path (which outside a task sees only
    ``AIRFLOW_VAR_*``) once any earlier test in this process left the task runner's
    ``SUPERVISOR_COMMS`` set; this fixture always talks to the DB."""
    import sys

    from airflow.models import Variable

    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    if runner is not None and hasattr(runner, "SUPERVISOR_COMMS"):
        monkeypatch.delattr(runner, "SUPERVISOR_COMMS")
    yield Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(Variable).filter(Variable.key.like("sync_state_%")).delete(synchronize_session=False)


@pytest.fixture
def stored_variables(airflow_db: None) -> Iterator[MetadataVariables]:
    """The session DB's Variables read and written directly (what ``airflow dags test`` runs see);
    ``sync_state_*`` Variables are removed after."""
    store = MetadataVariables()
    yield store
    store.delete_like("sync_state_%")


def connection_env(url: str, **fields: object) -> dict[str, str]:
    """``AIRFLOW_CONN_SYNC_DEFAULT`` for a local API at ``url`` (http://host:port)."""
    host, _, port = url.split("://", 1)[1].partition(":")
    conn = {"conn_type": "http", "host": host, "port": int(port), **fields}
    return {"AIRFLOW_CONN_SYNC_DEFAULT": json.dumps(conn)}


def require_service(name: str, available: bool) -> None:
    """Skip with a reason where a service is absent, but fail under CI where it must be present."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is required under CI=true but is not reachable")
    pytest.skip(f"{name} is not reachable on this machine")


def window_count(state: dict[str, Any]) -> int:
    """Requests a stored state's window holds, in either form: the log (``window``) or, for limits
    above ``rate_limit.LOG_MAX``, per-bucket counts (``window_buckets.counts``: ``[[index, n], ...]``)."""
    buckets = state.get("window_buckets") or {}
    return len(state.get("window") or []) + sum(n for _, n in buckets.get("counts", []))
