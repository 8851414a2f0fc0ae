"""Leased slots (issue 20 item 1): one write reserves several slots; unused ones go back at the end; a
crashed worker's lease holds its slots exactly as sent requests would, until they free.

In-process, the real ``SourceGuard`` on an ``InMemoryStateStore`` and a fake clock (``hooks.lease``).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from airflow_sync_provider.config import RateLimitConfig, SyncConfig
from airflow_sync_provider.config.windows import WindowLimit
from airflow_sync_provider.hooks.guard import SourceGuard
from airflow_sync_provider.hooks.lease import LEASE_MAX, ROOM_SHARE
from airflow_sync_provider.policy import shares as sh
from airflow_sync_provider.policy.log import Log as RequestLog
from airflow_sync_provider.policy.quota import Quota
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState
from tests.reliability.test_shared_state import OK, T0, Clock, Log, config, stored


def pages(guard: SourceGuard, clock: Clock, count: int, gap: float = 0.0) -> int:
    """``count`` admitted requests, each answered ``gap`` seconds later; how many were allowed."""
    sent = 0
    for _ in range(count):
        if not guard.admit().allowed:
            break
        clock.now += gap
        guard.record(OK)
        sent += 1
    return sent


def test_one_write_reserves_a_lease_and_the_pages_under_it_cost_no_state_call() -> None:
    store, clock = InMemoryStateStore(), Clock()
    guard = SourceGuard(config(10_000), store, clock=clock, log=Log(), writer="dag/run")
    assert store.reads == 0  # nothing is read before the first admission
    assert pages(guard, clock, 1) == 1
    assert (store.reads, store.writes) == (1, 1)  # the first read is the re-read; one slot (no rate yet)
    assert pages(guard, clock, 1) == 1  # the second admission knows the page rate: a lease
    assert len(stored(store).window) == 1 + LEASE_MAX
    calls = store.reads + store.writes
    assert pages(guard, clock, LEASE_MAX - 1) == LEASE_MAX - 1
    assert store.reads + store.writes == calls  # spent without a state call
    guard.finish({"sent": 1 + LEASE_MAX})
    assert len(stored(store).window) == 1 + LEASE_MAX


def test_unused_slots_are_returned_at_the_end() -> None:
    store, clock = InMemoryStateStore(), Clock()
    guard = SourceGuard(config(10_000), store, clock=clock, log=Log(), writer="dag/run")
    assert pages(guard, clock, 3) == 3
    assert len(stored(store).window) == 1 + LEASE_MAX  # the lease as written
    guard.finish({"sent": 3})
    assert len(stored(store).window) == 3  # what was sent, nothing more


def test_a_deferral_returns_the_unused_slots_too() -> None:
    store, clock = InMemoryStateStore(), Clock()
    guard = SourceGuard(config(10_000), store, clock=clock, log=Log(), writer="dag/run")
    assert pages(guard, clock, 2) == 2
    guard.flush()
    assert len(stored(store).window) == 2


def test_a_crashed_lease_holds_its_slots_until_they_free_like_sent_requests() -> None:
    """A worker dies holding a lease: a later sync at a limit the lease fills is refused until the
    lease's stamp plus the window and the margin, then admitted."""
    store, clock = InMemoryStateStore(), Clock()
    crashed = SourceGuard(config(128), store, clock=clock, log=Log(), writer="dag/crashed")
    assert pages(crashed, clock, 2) == 2  # then the worker dies: no finish
    held = len(stored(store).window)
    assert held == 1 + 127 // ROOM_SHARE  # two sent, the rest of the lease unused
    clock.now += 60.0
    later = SourceGuard(config(held), store, clock=clock, log=Log(), writer="dag/later")
    refused = later.admit()
    assert not refused.allowed
    assert refused.wait == later.hold_seconds - 60.0  # every leased slot counts from the lease's time
    clock.now = T0 + later.hold_seconds + 0.001
    assert SourceGuard(config(held), store, clock=clock, log=Log(), writer="dag/after").admit().allowed


def test_a_lease_is_at_most_a_quarter_of_the_room_left() -> None:
    store, clock = InMemoryStateStore(), Clock()
    limit = 40
    guard = SourceGuard(config(limit), store, clock=clock, log=Log(), writer="dag/run")
    assert pages(guard, clock, 2) == 2
    assert len(stored(store).window) == 1 + (limit - 1) // ROOM_SHARE


def test_a_nearly_full_window_leases_one_slot_at_a_time() -> None:
    store, clock = InMemoryStateStore(), Clock()
    guard = SourceGuard(config(6), store, clock=clock, log=Log(), writer="dag/run")
    assert pages(guard, clock, 6) == 6
    assert store.writes == 6  # a room under four slots: a write per slot, as without leases
    assert not guard.admit().allowed


def test_the_page_rate_bounds_a_lease_to_the_safety_margin() -> None:
    """Pages 0.3 s apart under the 1 s margin: each lease covers the responses due within the margin
    of its stamp (1 + 0.7 / 0.3 = 3 slots); a stored stamp never lags its response by more."""
    store, clock = InMemoryStateStore(), Clock()
    guard = SourceGuard(config(10_000), store, clock=clock, log=Log(), writer="dag/run")
    assert pages(guard, clock, 2, gap=0.3) == 2
    assert len(stored(store).window) == 1 + 3
    writes = store.writes
    assert pages(guard, clock, 2, gap=0.3) == 2
    assert store.writes == writes  # both under the lease
    assert pages(guard, clock, 1, gap=0.3) == 1
    assert store.writes == writes + 1  # spent: the next lease


def test_a_foreign_write_between_leases_is_merged_at_the_next_lease() -> None:
    store, clock = InMemoryStateStore(), Clock()
    ours = SourceGuard(config(10_000), store, clock=clock, log=(log := Log()), writer="dag_a/run")
    assert pages(ours, clock, 2) == 2
    other = SourceGuard(config(10_000), store, clock=clock, log=Log(), writer="dag_b/run")
    assert pages(other, clock, 1) == 1  # a write outside the pool while we hold the lease
    assert pages(ours, clock, LEASE_MAX) == LEASE_MAX  # the lease spent, then a new one
    assert any("was written by dag_b/run" in line for line in log)
    ours.finish({})
    other.finish({})
    assert len(stored(store).window) == 2 + LEASE_MAX + 1  # nobody's requests lost


def test_an_api_reporting_fewer_requests_left_than_the_lease_holds_ends_it() -> None:
    """Mid-lease the API says 3 requests are left: the next request is decided again (a write), the
    unused slots go back, and the new lease fits what the API allows."""
    store, clock = InMemoryStateStore(), Clock()
    guard = SourceGuard(config(10_000), store, clock=clock, log=Log(), writer="dag/run")
    assert pages(guard, clock, 1) == 1
    assert guard.admit().allowed  # the lease
    said = Quota(remaining=3, reset_at=clock.now + 600, observed_at=clock.now)
    guard.record(dataclasses.replace(OK, quota=said))
    writes = store.writes
    assert guard.admit().allowed
    assert store.writes == writes + 1  # decided again, not under the lease
    assert len(stored(store).window) == 3  # the two sent and one new slot (a quarter of 3 left: one)


def test_a_lower_limit_the_api_advertises_mid_lease_ends_it() -> None:
    store, clock = InMemoryStateStore(), Clock()
    guard = SourceGuard(config(10_000), store, clock=clock, log=Log(), writer="dag/run")
    assert pages(guard, clock, 2) == 2  # the second under a lease of LEASE_MAX
    said = Quota(limit=2, window=3600.0, reset_at=clock.now + 600, observed_at=clock.now)
    assert guard.admit().allowed  # still under the lease: nothing said yet
    guard.record(dataclasses.replace(OK, quota=said))
    refused = guard.admit()  # at the advertised 2 per hour, three sent fill it
    assert not refused.allowed and "the API's advertised limit" in refused.message


def test_a_lease_fits_the_room_of_every_window() -> None:
    """1,000 per minute and 10,040 per day, 10,000 of them used: the lease is sized by the day's
    room, and holds in both windows."""
    day = WindowLimit(max_requests=10_040, window=timedelta(days=1))
    limit = RateLimitConfig(max_requests=1_000, window=timedelta(minutes=1), extra_windows=(day,))
    busy = sh.of([sh.Share("earlier", 1, RequestLog.of([T0 - 3600.0] * 10_000))])
    store, clock = InMemoryStateStore(), Clock()
    store.save(SourceState("quests", extra_windows=((86_400.0, busy),)))
    guard = SourceGuard(SyncConfig(source="quests", rate_limit=limit), store, clock=clock, log=Log())
    assert pages(guard, clock, 2) == 2
    state = stored(store)
    taken = 1 + 39 // ROOM_SHARE  # the first slot, then a quarter of the day's 39 left
    assert len(state.window) == taken
    assert len(sh.total(state.extra(86_400.0))) == 10_000 + taken
