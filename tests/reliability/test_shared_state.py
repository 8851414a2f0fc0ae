"""The shared window and breaker of one source under every writer: no shrinking log, no lost write.

In-process, on fake clocks, with the real ``SourceGuard`` and an ``InMemoryStateStore`` (the same
JSON a Variable holds). Issue 10 items 1 and 9:

- a tighter limit (a trigger param, a second DAG, a lowered config) never shortens the shared log;
- two syncs of one source outside the pool (what the operator now refuses) do not exceed the limit
  together, and a stale one does not write ``closed 0`` over a breaker the other opened: every write
  after a guard's first re-reads the state and merges a foreign write instead of overwriting it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow_sync_provider.config import RateLimitConfig, SyncConfig
from airflow_sync_provider.hooks.guard import SourceGuard
from airflow_sync_provider.hooks.outcome import Attempt, BreakerEffect
from airflow_sync_provider.policy.breaker import BreakerState
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState, variable_key

T0 = 1_800_000_000.0
OK = Attempt(None, False, BreakerEffect.SUCCESS, "ok", 200)
FAILED = Attempt(SyncErrorKind.HTTP_ERROR, True, BreakerEffect.FAILURE, "GET /x -> 503", 503)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Log(list[str]):
    def warning(self, msg: str, *args: Any, **_: Any) -> None:
        self.append(msg % args if args else msg)

    def info(self, msg: str, *args: Any, **_: Any) -> None:
        pass


def config(max_requests: int = 60) -> SyncConfig:
    return SyncConfig(
        source="quests", rate_limit=RateLimitConfig(max_requests=max_requests, window=timedelta(hours=1))
    )


def stored(store: InMemoryStateStore) -> SourceState:
    return SourceState.from_json(store.raw[variable_key("quests")], "quests")


def sync(store: InMemoryStateStore, clock: Clock, cfg: SyncConfig, requests: int, writer: str) -> int:
    """One sync of up to ``requests`` one-request pages, 1 s apart; returns how many were sent."""
    guard = SourceGuard(cfg, store, clock=clock, log=Log(), writer=writer)
    sent = 0
    for _ in range(requests):
        if not guard.admit().allowed:
            break
        clock.now += 1.0
        guard.record(OK)
        sent += 1
    guard.finish({"sent": sent})
    return sent


def test_a_run_with_a_tighter_limit_does_not_shrink_the_log_of_the_hour() -> None:
    """50 requests at 60/h, a manual run with max_requests=10, then 60/h again: 60 in the hour, not 100."""
    store, clock = InMemoryStateStore(), Clock()
    assert sync(store, clock, config(60), 50, "scheduled__1") == 50
    assert sync(store, clock, config(10), 50, "manual__1") == 0
    assert len(stored(store).window) == 50  # the refused run saved the whole log back
    assert sync(store, clock, config(60), 50, "scheduled__2") == 10
    window = stored(store).window
    assert len(window) == 60 and window[-1] - window[0] < 3600


def test_two_syncs_outside_the_pool_stay_within_the_limit_together() -> None:
    """Interleaved page by page (each read its state just before its first request): 60, not 120."""
    store, clock = InMemoryStateStore(), Clock()
    logs = {"a": Log(), "b": Log()}
    cfg = config(60)
    first = SourceGuard(cfg, store, clock=clock, log=logs["a"], writer="dag_a/run_1")
    guards: dict[str, SourceGuard] = {"a": first}
    sent = {"a": 0, "b": 0}
    for step in range(120):
        name = "ab"[step % 2]
        if name not in guards:
            guards[name] = SourceGuard(cfg, store, clock=clock, log=logs[name], writer="dag_b/run_1")
        if guards[name].admit().allowed:
            clock.now += 0.5
            guards[name].record(OK)
            sent[name] += 1
    for guard in guards.values():
        guard.finish({})
    # never more than the limit together (before: 60 each). A merge errs on the side of the limit: a
    # request of the other sync can count twice (its send stamp and its response stamp) for a while
    assert 0 < sent["a"] + sent["b"] <= 60 and sent["a"] > 0 and sent["b"] > 0
    assert len(stored(store).window) >= sent["a"] + sent["b"]
    assert any("was written by dag_b/run_1 since this sync (dag_a/run_1)" in m for m in logs["a"])


def test_two_syncs_that_read_before_either_wrote_forget_no_slot() -> None:
    """Both read an empty window, both take a slot (the race the pool rules out); the next write of
    either merges the other's slot in, so the window remembers both and refuses a third."""
    store, clock = InMemoryStateStore(), Clock()
    cfg = config(2)
    first = SourceGuard(cfg, store, clock=clock, log=Log(), writer="dag_a/run_1")
    second = SourceGuard(cfg, store, clock=clock, log=Log(), writer="dag_b/run_1")
    assert first.admit().allowed
    clock.now += 1
    assert second.admit().allowed  # written over the first's slot: blind, it had just read
    clock.now += 1
    first.record(OK)
    refused = first.admit()  # re-reads, sees the second's write, merges it
    assert (refused.allowed, refused.kind) == (False, SyncErrorKind.RATE_LIMIT_EXCEEDED)
    first.finish({})
    assert len(stored(store).window) == 2


def test_a_stale_sync_does_not_write_closed_0_over_an_open_breaker() -> None:
    store, clock = InMemoryStateStore(), Clock()
    cfg = config(60)  # failure_threshold 5
    stale = SourceGuard(cfg, store, clock=clock, log=(stale_log := Log()), writer="dag_a/run_1")
    assert stale.admit().allowed  # one slow request, sent while the breaker was closed
    other = SourceGuard(cfg, store, clock=clock, log=Log(), writer="dag_b/run_1")
    for _ in range(5):
        assert other.admit().allowed
        clock.now += 1
        other.record(FAILED)
    other.finish({"success": False})
    assert stored(store).breaker.state is BreakerState.OPEN
    clock.now += 1
    stale.record(OK)  # its success would reset a closed count; it must not close the shared breaker
    stale.finish({"success": True})
    state = stored(store)
    assert (state.breaker.state, state.breaker.failure_count) == (BreakerState.OPEN, 5)
    assert state.last_result == {"success": True} and state.writer == "dag_a/run_1"
    assert len(state.window) == 6
    assert any("was written by dag_b/run_1" in m for m in stale_log)


def test_a_sync_alone_never_sees_a_foreign_write() -> None:
    log, store, clock = Log(), InMemoryStateStore(), Clock()
    guard = SourceGuard(config(60), store, clock=clock, log=log, writer="dag_a/run_1")
    for _ in range(3):
        assert guard.admit().allowed
        clock.now += 1
        guard.record(FAILED)
    guard.finish({})
    assert log == [] and stored(store).writer == "dag_a/run_1"
    # the next sync reads the last write as the starting point, not as a foreign write
    nxt = SourceGuard(config(60), store, clock=clock, log=log, writer="dag_a/run_2")
    assert nxt.admit().allowed and nxt.admit().allowed
    assert log == []


def test_a_slot_is_re_stamped_to_its_response_time_in_the_next_write() -> None:
    """Pre-send stamp first (crash safety), the response time with the write the sync makes anyway,
    or at once when the response took longer than the margin (1 s; issue 17 item 11)."""
    store, clock = InMemoryStateStore(), Clock()
    guard = SourceGuard(config(60), store, clock=clock, log=Log(), writer="dag_a/run_1")
    assert guard.admit().allowed
    assert stored(store).window == (T0,)  # written before the request is sent
    clock.now += 0.75  # the response arrives within the margin
    guard.record(OK)  # a success in a closed breaker writes nothing
    assert (store.writes, stored(store).window) == (1, (T0,))
    assert guard.admit().allowed
    clock.now += 2.5  # a slow response: its re-stamp is written at once
    guard.record(OK)
    assert (store.writes, stored(store).window) == (3, (T0 + 0.75, T0 + 3.25))
    clock.now += 1
    guard.finish({"success": True})
    assert (store.writes, stored(store).window) == (4, (T0 + 0.75, T0 + 3.25))
    # held for the window plus the margin (1 s) from the response: the hour's 61st slot frees then
    assert guard.hold_seconds == 3601.0
