"""Fixtures for tests that need real Airflow, a demo API, or services."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
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


@pytest.fixture(scope="module")
def private_airflow_home(airflow_db: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A metadata DB (and DAGs folder) of this module's own, that only ``airflow dags test``
    subprocesses and ``stored_variables`` open: never the test process's Airflow engine, which holds
    the session DB open. Two real-Airflow modules that rewrite stored state between runs saw that
    session DB (SQLite, WAL) miss a write and later report "disk image is malformed" in full CI-like
    runs; each passed alone. Set for the module only (``AIRFLOW_HOME`` is read again by subprocesses
    and by ``stored_variables``; the in-process Airflow keeps the session DB)."""
    home = tmp_path_factory.mktemp("airflow_home")
    dags = home / "dags"
    dags.mkdir()
    names = ("AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags)})
    try:
        airflow_cli.migrate_db()
        yield home
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
