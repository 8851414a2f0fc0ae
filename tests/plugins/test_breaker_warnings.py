"""``breaker_warnings``: an open breaker puts a DAG warning on its source's DAGs, a closed one removes
it, and a runtime-varying-value warning of Airflow's own is left alone. (The scheduler end to end, read
through the REST API: tests/e2e/test_scheduler_e2e.py.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_sync_provider.plugins.breaker_warnings import (
    LOOP,
    MARK,
    breaker_message,
    in_scheduler,
    sync_warnings,
    wanted_warnings,
)
from airflow_sync_provider.policy.breaker import BreakerSnapshot, BreakerState
from airflow_sync_provider.state.store import SourceState, VariableStateStore

OPENED = 1_796_000_000.0  # 2026-11-30 00:53:20 UTC


def row(source: str, state: str, **extra: Any) -> dict[str, Any]:
    return {"source": source, "state": state, "failure_count": 5, "opened_at": OPENED, **extra}


def test_the_message_names_the_breaker_the_next_probe_and_the_page() -> None:
    message = breaker_message(row("airdrops", "open", next_probe_at=OPENED + 300))
    assert message == (
        "Circuit breaker of airdrops is open since 2026-11-30 00:53:20 UTC (after 5 failed requests): its "
        "syncs send nothing and end as skipped; the next probe may go at 2026-11-30 00:58:20 UTC (the first "
        "run at or after it sends one request). See Browse → Sync breakers."
    )


def test_only_open_breakers_warn_on_every_dag_of_their_source() -> None:
    rows = [row("a", "open", next_probe_at=OPENED), row("b", "half-open"), row("c", "closed")]
    dags = {"a": ["sync_a", "custom_a"], "b": ["sync_b"], "c": ["sync_c"]}
    assert sorted(wanted_warnings(rows, dags)) == ["custom_a", "sync_a"]


@pytest.fixture
def dags(variables: Any) -> Iterator[Any]:
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.dagwarning import DagWarning
    from airflow.utils.session import create_session

    ids = ["sync_bw_open", "sync_bw_closed", "sync_bw_theirs"]
    with create_session() as session:
        if session.get(DagBundleModel, "bw_bundle") is None:
            session.add(DagBundleModel(name="bw_bundle"))
            session.flush()
        session.query(DagWarning).filter(DagWarning.dag_id.in_(ids)).delete()
        session.query(DagModel).filter(DagModel.dag_id.in_(ids)).delete()
        session.add_all(DagModel(dag_id=i, bundle_name="bw_bundle") for i in ids)
    yield variables
    with create_session() as session:
        session.query(DagWarning).filter(DagWarning.dag_id.in_(ids)).delete()
        session.query(DagModel).filter(DagModel.dag_id.in_(ids)).delete()


def warnings_now() -> dict[str, str]:
    from airflow.models.dagwarning import DagWarning
    from airflow.utils.session import create_session

    with create_session() as session:
        return {w.dag_id: w.message for w in session.query(DagWarning) if w.dag_id.startswith("sync_bw_")}


def set_breaker(variables: Any, source: str, state: BreakerState) -> None:
    opened = time.time() - 30 if state is BreakerState.OPEN else None
    snapshot = BreakerSnapshot(state, failure_count=5 if opened else 0, opened_at=opened)
    VariableStateStore(variable_api=variables).save(
        SourceState(source, breaker=snapshot, updated_at=time.time())
    )


def sync() -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return sync_warnings(session)


def test_a_warning_while_open_none_once_closed_and_airflows_own_left_alone(dags: Any) -> None:
    from airflow.models.dagwarning import DagWarning, DagWarningType
    from airflow.utils.session import create_session

    theirs = "Airflow's own: a value that varies at runtime"
    with create_session() as session:
        session.add(DagWarning("sync_bw_theirs", DagWarningType.RUNTIME_VARYING_VALUE, theirs))
    set_breaker(dags, "bw_open", BreakerState.OPEN)
    set_breaker(dags, "bw_closed", BreakerState.CLOSED)
    set_breaker(dags, "bw_theirs", BreakerState.OPEN)

    sync()
    now = warnings_now()
    assert now["sync_bw_open"].startswith(f"{MARK}bw_open is open since ")
    assert "the next probe may go at " in now["sync_bw_open"]
    assert "sync_bw_closed" not in now and now["sync_bw_theirs"] == theirs

    set_breaker(dags, "bw_open", BreakerState.CLOSED)
    sync()
    assert warnings_now() == {"sync_bw_theirs": theirs}


def test_only_the_scheduler_runs_the_loop() -> None:
    assert in_scheduler(["/venv/bin/airflow", "scheduler"])
    assert not in_scheduler(["/venv/bin/airflow", "dags", "test", "sync_airdrops"])
    LOOP.poke()  # in pytest, as in `airflow dags test`: nothing starts
    assert LOOP._thread is None
