"""``state_reader``: every source's state in one query (Fernet-encrypted values too), next runs, labels."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from airflow_sync_provider.admin import operations
from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.policy.breaker import BreakerSnapshot, BreakerState
from airflow_sync_provider.state import reader as state_reader
from airflow_sync_provider.state.store import SourceState, VariableStateStore

N = 40


@pytest.fixture
def statements(airflow_db: None) -> Iterator[list[str]]:
    """Every SQL statement the in-process metadata DB engine runs while the test reads."""
    from airflow import settings

    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(settings.engine, "before_cursor_execute", record)
    yield seen
    event.remove(settings.engine, "before_cursor_execute", record)


def seed(variables: Any, now: float) -> dict[str, SyncConfig]:
    store = VariableStateStore(variable_api=variables)
    configs = {}
    for i in range(N):
        source = f"rd_{i:03d}"
        configs[source] = SyncConfig(source=source)
        breaker = BreakerSnapshot()
        if i % 10 == 0:
            breaker = BreakerSnapshot(
                BreakerState.OPEN, failure_count=5, opened_at=now - 30, last_error="503"
            )
        elif i % 10 == 1:
            # closed again (a reset or a success) but the error of before is still recorded
            breaker = BreakerSnapshot(last_error="GET /x -> 502", last_failure_at=now - 3600)
        elif i % 10 == 2:
            breaker = BreakerSnapshot(failure_count=2, last_error="timeout", last_failure_at=now - 60)
        store.save(SourceState(source, breaker, window=(now - 10, now - 5), updated_at=now))
    return configs


def test_every_state_is_read_with_one_query(variables: Any, statements: list[str]) -> None:
    now = time.time()
    configs = seed(variables, now)
    statements.clear()
    raw = state_reader.read_state_variables()
    assert len([s for s in statements if "FROM variable" in s]) == 1, statements
    rows = state_reader.describe_all(configs, raw, now=now)
    assert [r["source"] for r in rows] == sorted(configs)
    # the same rows as one hook read per source (the old path), plus the new label
    per_source = {r["source"]: r for r in operations.list_states(configs)}
    for row in rows:
        expected = dict(per_source[row["source"]])
        assert {k: v for k, v in row.items() if k != "last_error_stale"} == expected
    assert len(raw) == N


def test_label_marks_errors_recorded_before_the_breaker_closed(variables: Any) -> None:
    now = time.time()
    configs = seed(variables, now)
    rows = {r["source"]: r for r in state_reader.read_states(configs)}
    assert (rows["rd_000"]["state"], rows["rd_000"]["last_error_stale"]) == ("open", False)
    assert (rows["rd_001"]["state"], rows["rd_001"]["last_error_stale"]) == ("closed", True)
    assert rows["rd_002"]["last_error_stale"] is False  # still failing: the error is current
    assert rows["rd_003"]["last_error_stale"] is False  # no error at all


def test_fernet_encrypted_states_are_decrypted(
    variables: Any, statements: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.models import crypto
    from cryptography.fernet import Fernet

    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    crypto.get_fernet.cache_clear()
    try:
        state = SourceState("rd_secret", BreakerSnapshot(failure_count=3), updated_at=time.time())
        VariableStateStore(variable_api=variables).save(state)
        from airflow.utils.session import create_session

        with create_session() as session:
            row = session.query(variables).filter(variables.key == "sync_state_rd_secret").one()
            assert row.is_encrypted and "failure_count" not in row._val
        raw = state_reader.read_state_variables()
        assert raw["rd_secret"] == state.to_json()
    finally:
        monkeypatch.delenv("AIRFLOW__CORE__FERNET_KEY")
        crypto.get_fernet.cache_clear()


def test_next_run_and_pause_come_from_the_dag_table(airflow_db: None, statements: list[str]) -> None:
    from datetime import UTC, datetime

    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session

    due = datetime(2030, 1, 1, tzinfo=UTC)
    with create_session() as session:
        if session.get(DagBundleModel, "rd_bundle") is None:
            session.add(DagBundleModel(name="rd_bundle"))
            session.flush()
        session.query(DagModel).filter(DagModel.dag_id.in_(["sync_rd_a", "sync_rd_b"])).delete()
        session.add(DagModel(dag_id="sync_rd_a", bundle_name="rd_bundle", is_paused=False))
        session.add(DagModel(dag_id="sync_rd_b", bundle_name="rd_bundle", is_paused=True))
        session.flush()
        session.query(DagModel).filter(DagModel.dag_id == "sync_rd_a").update(
            {DagModel.next_dagrun_create_after: due}
        )
    try:
        statements.clear()
        runs = state_reader.next_runs(["rd_a", "rd_b", "rd_missing"])
        assert len([s for s in statements if "FROM dag" in s]) == 1, statements
        assert runs == {
            "rd_a": {"next_run_at": due.timestamp(), "paused": False},
            "rd_b": {"next_run_at": None, "paused": True},
        }
        configs = {s: SyncConfig(source=s) for s in ("rd_a", "rd_missing")}
        rows = state_reader.describe_all(configs, {}, runs=runs)
        assert [(r["next_run_at"], r["paused"]) for r in rows] == [(due.timestamp(), False), (None, None)]
    finally:
        with create_session() as session:
            session.query(DagModel).filter(DagModel.dag_id.in_(["sync_rd_a", "sync_rd_b"])).delete()


def test_environment_variables_that_shadow_a_state_are_named() -> None:
    env = {"AIRFLOW_VAR_SYNC_STATE_AIRDROPS": "{}", "AIRFLOW_VAR_OTHER": "x", "PATH": "/bin"}
    assert state_reader.shadowing_env_variables(env) == ["AIRFLOW_VAR_SYNC_STATE_AIRDROPS"]
