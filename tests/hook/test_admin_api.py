"""The original design's admin API on the hook: thin delegates to ``operations`` (no HTTP needed)."""

from __future__ import annotations

import logging

from airflow_sync_provider.admin import operations
from airflow_sync_provider.config import DEFAULT_SYNC_CONFIGS
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.policy.breaker import BreakerSnapshot, BreakerState
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState
from tests.hook import T0, FakeClock, stored


def test_breaker_state_all_states_and_reset_go_through_operations() -> None:
    store = InMemoryStateStore()
    opened = BreakerSnapshot(state=BreakerState.OPEN, failure_count=5, opened_at=T0 - 60, last_error="503")
    store.save(SourceState("quests", breaker=opened, window=(T0 - 30, T0 - 7200), writer="sync_quests/r1"))
    hook = RateLimitedSyncHook(store=store, clock=FakeClock())

    state = hook.get_circuit_breaker_state("quests")
    assert state == operations.breaker_state(store, "quests", DEFAULT_SYNC_CONFIGS, T0)
    assert (state["state"], state["failure_count"], state["next_probe_at"]) == ("open", 5, T0 + 240)
    assert (state["window_requests"], state["window_max_requests"]) == (1, 60)  # the 2 h old entry left
    assert sorted(hook.get_all_states()) == sorted(DEFAULT_SYNC_CONFIGS)

    after = hook.reset_circuit_breaker("quests", writer="sync_admin/manual__1")
    assert (after["state"], after["failure_count"], after["opened_at"]) == ("closed", 0, None)
    saved = stored(store, "quests")
    assert saved.writer == "sync_admin/manual__1" and saved.updated_at == T0
    assert saved.window == (T0 - 7200, T0 - 30)  # a reset touches the breaker only


def test_reset_logs_the_transition_once() -> None:
    store = InMemoryStateStore()
    store.save(SourceState("points", breaker=BreakerSnapshot(state=BreakerState.OPEN, opened_at=T0)))
    log = logging.getLogger("tests.hook.admin")
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    log.addHandler(handler := Keep())
    try:
        operations.reset_breaker(store, "points", T0, log=log)
        operations.reset_breaker(store, "points", T0 + 1, log=log)  # already closed: no transition
    finally:
        log.removeHandler(handler)
    assert messages == ["Circuit breaker of points: open -> closed (manual reset)"]
    assert stored(store, "points").writer == "reset"
