"""Issue 17 items 10-12: a merge of a foreign write is a true union, a slow response's re-stamp is
written at once, and two open breakers merge to the later probe.

In process, real ``SourceGuard`` on an ``InMemoryStateStore`` and a fake clock. ``RacingStore`` plays
the race the pool rules out: one guard's re-read returns the state as it was *before* the other's
last write, so its save lands blind over that write (Variables have no compare-and-set).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_sync_provider.config import CircuitBreakerConfig, RateLimitConfig, SyncConfig
from airflow_sync_provider.hooks.guard import SourceGuard, breaker_settings
from airflow_sync_provider.policy import rate_limit
from airflow_sync_provider.policy.breaker import BreakerSnapshot, BreakerState
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState, Warn, variable_key
from tests.reliability.test_shared_state import OK, T0, Clock, Log

KEY = variable_key("quests")


class RacingStore(InMemoryStateStore):
    """``stale_once()``: the next load returns what was stored before the latest save."""

    def __init__(self) -> None:
        super().__init__()
        self._previous: str | None = None
        self._stale = False

    def save(self, state: SourceState) -> None:
        self._previous = self.raw.get(KEY)
        super().save(state)

    def stale_once(self) -> None:
        self._stale = True

    def load(self, source: str, *, on_warning: Warn | None = None) -> SourceState:
        if self._stale:
            self._stale = False
            self.reads += 1
            return SourceState.from_json(self._previous, source, on_warning=on_warning)
        return super().load(source, on_warning=on_warning)


def config(max_requests: int, window: float = 3600.0, **breaker: object) -> SyncConfig:
    return SyncConfig(
        source="quests",
        rate_limit=RateLimitConfig(max_requests=max_requests, window=timedelta(seconds=window)),
        circuit_breaker=CircuitBreakerConfig(**breaker),  # type: ignore[arg-type]
    )


def seeded(store: InMemoryStateStore, limit: int, n: int, cfg: SyncConfig, guard_hold: float) -> None:
    """``n`` requests of the last 50 minutes, written by an earlier sync (in the form for ``limit``)."""
    times = tuple(T0 - 3000.0 + i * 10.0 for i in range(n))
    window = rate_limit.fit(times, T0, max_requests=limit, window=guard_hold)
    store.raw[KEY] = SourceState("quests", window=window, updated_at=T0 - 1, writer="earlier").to_json()


def admitted_in_the_hour(limit: int) -> int:
    """Two writers race for the last two slots at one instant, then one of them asks for more."""
    cfg = config(limit)
    store, clock = RacingStore(), Clock()
    hold = SourceGuard(cfg, InMemoryStateStore(), clock=clock, log=Log()).hold_seconds
    seeded(store, limit, limit - 2, cfg, hold)
    sent = limit - 2
    a = SourceGuard(cfg, store, clock=clock, log=Log(), writer="dag_a/run_1")
    b = SourceGuard(cfg, store, clock=clock, log=Log(), writer="dag_b/run_1")
    assert a.admit().allowed  # a's slot is written
    store.stale_once()  # b re-read just before a's write landed; b's write goes over it
    assert b.admit().allowed
    sent += 2
    for _ in range(3):  # a re-reads, merges b's write, and must see both slots
        if a.admit().allowed:
            sent += 1
    a.finish({})
    b.finish({})
    return sent


@pytest.mark.parametrize("limit", [60, 200], ids=["log", "buckets"])
def test_two_writers_in_one_bucket_or_at_one_instant_both_count(limit: int) -> None:
    """Issue 17 item 10: before, the merge subtracted what we had written from what the other wrote
    (per bucket, or per timestamp): its request at the same bucket / instant as ours cancelled out,
    201 requests were admitted in the hour at a limit of 200 (61 at 60)."""
    assert admitted_in_the_hour(limit) == limit


def test_the_stored_window_counts_both_writers_after_the_race() -> None:
    cfg = config(200)
    store, clock = RacingStore(), Clock()
    a = SourceGuard(cfg, store, clock=clock, log=Log(), writer="dag_a/run_1")
    b = SourceGuard(cfg, store, clock=clock, log=Log(), writer="dag_b/run_1")
    assert a.admit().allowed
    store.stale_once()
    assert b.admit().allowed  # overwrote a's slot
    a.finish({})  # re-reads b's write, merges, writes
    stored = SourceState.from_json(store.raw[KEY], "quests")
    assert len(stored.window) == 2
    b.finish({})
    assert len(SourceState.from_json(store.raw[KEY], "quests").window) == 2


def test_a_slow_response_is_re_stamped_in_the_store_at_once() -> None:
    """Issue 17 item 11: 1 request per 60 s, a 20 s response, the worker dies before its next write:
    the stored slot is the response time, so the next run waits 61 s from the response (before: the
    pre-send stamp stayed, and the next run was admitted 41 s after the response)."""
    cfg = config(1, window=60.0)
    store, clock = InMemoryStateStore(), Clock()
    guard = SourceGuard(cfg, store, clock=clock, log=Log(), writer="dag_a/run_1")
    assert guard.admit().allowed
    clock.now += 20.0  # the response arrives 20 s after the send, more than the 1 s margin
    guard.record(OK)
    assert SourceState.from_json(store.raw[KEY], "quests").window == (T0 + 20.0,)
    # the worker is killed here (OOM during the load): no finish
    clock.now = T0 + 20.0 + 41.0
    nxt = SourceGuard(cfg, store, clock=clock, log=Log(), writer="dag_a/run_2")
    refused = nxt.admit()
    assert not refused.allowed and refused.wait == pytest.approx(20.0)


def test_a_fast_response_keeps_the_re_stamp_for_the_next_write() -> None:
    """Within the margin the pre-send stamp is close enough: no extra Variable write per page."""
    store, clock = InMemoryStateStore(), Clock()
    guard = SourceGuard(config(60), store, clock=clock, log=Log(), writer="dag_a/run_1")
    assert guard.admit().allowed
    clock.now += 0.5
    guard.record(OK)
    assert store.writes == 1
    guard.finish({})
    assert SourceState.from_json(store.raw[KEY], "quests").window == (T0 + 0.5,)


def test_two_open_breakers_merge_to_the_later_probe() -> None:
    """Issue 17 item 12: ours opened later with a short wait, theirs earlier after failed probes with a
    long one (3,000 s): the merged breaker probes at 3,000 s, not at ours (300 s)."""
    cfg = config(60, reset_timeout=timedelta(seconds=300), reset_multiplier=10)
    settings = breaker_settings(cfg)
    clock = Clock(T0 + 10)
    theirs = BreakerSnapshot(BreakerState.OPEN, 9, opened_at=T0, failed_probes=1, last_error="x")
    ours = BreakerSnapshot(BreakerState.OPEN, 5, opened_at=T0 + 10, last_error="y")
    assert theirs.next_probe_at(settings) == T0 + 3000 and ours.next_probe_at(settings) == T0 + 310
    store = InMemoryStateStore()
    store.save(SourceState("quests", breaker=ours, updated_at=T0, writer="dag_a/run_1"))
    guard = SourceGuard(cfg, store, clock=clock, log=Log(), writer="dag_a/run_1")
    store.save(SourceState("quests", breaker=theirs, updated_at=T0 + 5, writer="dag_b/run_1"))
    clock.now = T0 + 20
    guard.finish({})
    merged = SourceState.from_json(store.raw[KEY], "quests").breaker
    assert merged.next_probe_at(settings) == T0 + 3000 and merged.failure_count == 9
    clock.now = T0 + 400
    late = SourceGuard(cfg, store, clock=clock, log=Log(), writer="dag_a/run_2").admit()
    assert not late.allowed and late.wait == pytest.approx(2600.0)
