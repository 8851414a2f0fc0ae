"""Admission obeys what the API said about its quota: waits for the reset, lower limits, shared state."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from airflow_sync_provider.config import RateLimitConfig, SyncConfig
from airflow_sync_provider.hooks.guard import SourceGuard
from airflow_sync_provider.hooks.outcome import Attempt, BreakerEffect
from airflow_sync_provider.policy.quota import Quota
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Log:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str, *args: Any) -> None:
        self.warnings.append(message % args if args else message)

    info = warning


def config(max_requests: int = 100, window: float = 60, **limits: Any) -> SyncConfig:
    limit = RateLimitConfig(max_requests=max_requests, window=timedelta(seconds=window), **limits)
    return SyncConfig(source="airdrops", rate_limit=limit)


def ok(quota: Quota | None) -> Attempt:
    return Attempt(None, False, BreakerEffect.SUCCESS, "ok", 200, quota=quota)


def spent(clock: Clock, reset_in: float = 20, limit: int | None = None) -> Quota:
    return Quota(remaining=0, reset_at=clock() + reset_in, limit=limit, observed_at=clock())


def send(guard: SourceGuard, quota: Quota | None = None) -> None:
    assert guard.admit().allowed
    guard.record(ok(quota))


def test_remaining_zero_waits_until_the_reset_and_is_never_sent_early():
    clock, store = Clock(), InMemoryStateStore()
    guard = SourceGuard(config(), store, clock=clock, log=Log())
    send(guard, spent(clock, reset_in=20))
    refused = guard.admit()
    assert not refused.allowed
    assert refused.kind is SyncErrorKind.RATE_LIMIT_EXCEEDED
    assert refused.wait == pytest.approx(20)
    assert "quota is spent" in refused.message
    clock.now += 19.9
    assert not guard.admit().allowed
    clock.now += 0.1  # the reset: the learned value expires
    assert guard.admit().allowed


def test_a_second_dag_obeys_what_the_first_learned_without_seeing_the_header():
    clock, store = Clock(), InMemoryStateStore()
    first = SourceGuard(config(), store, clock=clock, log=Log(), writer="sync_airdrops/run_1")
    send(first, spent(clock, reset_in=30))
    first.finish({"success": True})
    clock.now += 5
    second = SourceGuard(config(max_requests=50), store, clock=clock, log=Log(), writer="other/run_1")
    refused = second.admit()
    assert not refused.allowed and refused.wait == pytest.approx(25)
    assert store.writes == 2  # the slot and the result: learning costs no extra write


def test_learning_off_ignores_a_stored_quota():
    clock, store = Clock(), InMemoryStateStore()
    send(SourceGuard(config(), store, clock=clock, log=Log()), spent(clock))
    guard = SourceGuard(config(learn_from_headers=False), store, clock=clock, log=Log())
    assert guard.admit().allowed


def test_remaining_counts_down_with_every_request_we_send():
    clock = Clock()
    guard = SourceGuard(config(), InMemoryStateStore(), clock=clock, log=Log())
    send(guard, Quota(remaining=2, reset_at=clock() + 60, observed_at=clock()))
    assert guard.admit().allowed  # remaining 2 -> 1
    guard.record(ok(None))  # a response without headers: what we counted stands
    assert guard.admit().allowed  # 1 -> 0
    guard.record(ok(None))
    refused = guard.admit()
    assert not refused.allowed and refused.wait == pytest.approx(60)


def test_a_lower_advertised_limit_is_obeyed_and_logged_once_naming_both_numbers():
    clock, log = Clock(), Log()
    guard = SourceGuard(config(max_requests=100, window=60), InMemoryStateStore(), clock=clock, log=log)
    # only the policy (RateLimit-Policy alone): the limit binds, not a spent remaining count
    advertised = Quota(limit=10, window=60.0, reset_at=clock() + 60, observed_at=clock())
    send(guard, advertised)
    for _ in range(9):
        assert guard.admit().allowed
        guard.record(ok(None))
    refused = guard.admit()
    assert not refused.allowed and refused.kind is SyncErrorKind.RATE_LIMIT_EXCEEDED
    assert "10 requests per 60s" in refused.message
    warned = [w for w in log.warnings if "advertises a lower limit" in w]
    assert len(warned) == 1
    assert "obeying 10 requests per 60s instead of rate_limit.max_requests=100" in warned[0]


def test_our_limit_is_never_raised_by_what_the_api_says():
    clock = Clock()
    guard = SourceGuard(config(max_requests=3, window=60), InMemoryStateStore(), clock=clock, log=Log())
    send(guard, Quota(remaining=499, limit=500, window=60.0, reset_at=clock() + 60, observed_at=clock()))
    send(guard)
    send(guard)
    assert not guard.admit().allowed  # three per minute, whatever the API allows


def test_peek_reports_a_spent_quota_without_taking_anything():
    clock, store = Clock(), InMemoryStateStore()
    guard = SourceGuard(config(), store, clock=clock, log=Log())
    send(guard, spent(clock, reset_in=10))
    writes = store.writes
    assert not guard.peek().allowed
    assert store.writes == writes


def test_a_spent_quota_without_a_window_waits_for_its_reset_not_for_our_window():
    """``X-RateLimit-*`` names no window: its limit counts per our window, but only until its reset
    (a run after one spent request used to be told to wait out our whole hour, and skipped)."""
    clock, store = Clock(), InMemoryStateStore()
    guard = SourceGuard(config(max_requests=60, window=3600), store, clock=clock, log=Log())
    send(guard, spent(clock, reset_in=20, limit=1))
    refused = guard.admit()
    assert not refused.allowed and refused.kind is SyncErrorKind.RATE_LIMIT_EXCEEDED
    assert refused.wait == pytest.approx(20)
    assert "the API's quota is spent (remaining 0); it resets in 20.0s" in refused.message
    clock.now += 20
    assert guard.admit().allowed


def test_a_lower_advertised_limit_refuses_only_while_the_report_holds():
    clock, store = Clock(), InMemoryStateStore()
    guard = SourceGuard(config(max_requests=60, window=3600), store, clock=clock, log=Log())
    send(guard, Quota(remaining=5, reset_at=clock() + 30, limit=1, observed_at=clock()))
    refused = guard.admit()
    assert not refused.allowed and refused.kind is SyncErrorKind.RATE_LIMIT_EXCEEDED
    assert refused.wait == pytest.approx(30)  # then our own 60 per hour has room again
    assert "1 requests per 3600s, the API's advertised limit" in refused.message
    clock.now += 30
    assert guard.admit().allowed


def test_our_own_full_window_outlasts_a_shorter_learned_reset():
    clock, store = Clock(), InMemoryStateStore()
    guard = SourceGuard(config(max_requests=2, window=60), store, clock=clock, log=Log())
    send(guard)
    send(guard, spent(clock, reset_in=5, limit=1))
    refused = guard.admit()
    assert not refused.allowed and refused.wait == pytest.approx(guard.hold_seconds)
    assert "rate limit window full (2 requests per 60s); next slot in 61.0s" in refused.message


# -- issue 17 -------------------------------------------------------------------------------------------

YEAR = 366 * 86400.0


def test_a_year_long_learned_reset_blocks_at_most_max_learned_wait_then_one_request_goes():
    clock, store = Clock(), InMemoryStateStore()
    cfg = config(max_requests=100, window=60, max_learned_wait=timedelta(minutes=10))
    guard = SourceGuard(cfg, store, clock=clock, log=Log())
    send(guard, spent(clock, reset_in=YEAR))
    guard.finish({"success": True})
    later = SourceGuard(cfg, store, clock=clock, log=Log())
    refused = later.admit()
    assert not refused.allowed and refused.wait == pytest.approx(600)
    assert "the API said 31622400s" in refused.message
    assert "rate_limit.max_learned_wait=600s, then one request goes out" in refused.message
    clock.now += 599
    assert not SourceGuard(cfg, store, clock=clock, log=Log()).admit().allowed
    clock.now += 1
    finder = SourceGuard(cfg, store, clock=clock, log=Log())
    assert finder.admit().allowed  # one request finds out ...
    finder.record(ok(spent(clock, reset_in=YEAR)))  # ... and the API's answer is learned again
    assert not finder.admit().allowed


def test_the_default_cap_is_the_larger_of_the_window_and_an_hour():
    clock = Clock()
    for window, cap in ((60, 3600), (7200, 7200)):
        guard = SourceGuard(config(window=window), InMemoryStateStore(), clock=clock, log=Log())
        send(guard, spent(clock, reset_in=YEAR))
        assert guard.admit().wait == pytest.approx(cap)


def test_a_learned_wait_beyond_max_wait_is_remembered_for_the_alert():
    clock = Clock()
    guard = SourceGuard(config(), InMemoryStateStore(), clock=clock, log=Log())  # max_wait 5 min
    send(guard, spent(clock, reset_in=200))
    assert guard.learned_long_wait is None
    send_after = spent(clock, reset_in=3000)
    clock.now += 200
    send(guard, send_after)
    assert guard.learned_long_wait == send_after


def test_remaining_zero_without_a_reset_waits_for_the_oldest_slot_never_zero():
    """``Remaining: 0`` and no reset used to be a wait of 0: the next request went at once."""
    clock = Clock()
    guard = SourceGuard(config(max_requests=100, window=60), InMemoryStateStore(), clock=clock, log=Log())
    send(guard)
    clock.now += 10
    send(guard, Quota(remaining=0, observed_at=clock()))  # no reset header
    refused = guard.admit()
    assert not refused.allowed and refused.kind is SyncErrorKind.RATE_LIMIT_EXCEEDED
    assert refused.wait == pytest.approx(guard.hold_seconds - 10)  # the first slot frees then
    clock.now += refused.wait
    assert guard.admit().allowed


def test_a_dag_that_does_not_learn_keeps_what_another_dag_learned():
    """It used to write the quota away with its slot: the learning DAG's next run was admitted early."""
    clock, store = Clock(), InMemoryStateStore()
    learner = SourceGuard(config(), store, clock=clock, log=Log(), writer="a/1")
    send(learner, Quota(remaining=1, reset_at=clock() + 1800, observed_at=clock()))
    learner.finish({"success": True})
    clock.now += 5
    deaf = SourceGuard(config(learn_from_headers=False), store, clock=clock, log=Log(), writer="b/1")
    send(deaf, Quota(remaining=50, reset_at=clock() + 1, observed_at=clock()))  # not read: it does not learn
    deaf.finish({"success": True})
    assert store.load("airdrops").quota is not None
    assert store.load("airdrops").quota.remaining == 0  # its request counted against what was learned
    clock.now += 5
    again = SourceGuard(config(), store, clock=clock, log=Log(), writer="a/2")
    refused = again.admit()
    assert not refused.allowed and refused.wait == pytest.approx(1790)


def test_the_breaker_reset_clears_the_learned_quota_too():
    """``sync_admin``'s reset (CLI, dashboard) used to leave a learned year-long reset in place."""
    from airflow_sync_provider.admin.operations import reset_breaker

    clock, store, log = Clock(), InMemoryStateStore(), Log()
    guard = SourceGuard(config(), store, clock=clock, log=Log())
    send(guard, spent(clock, reset_in=YEAR))
    guard.finish({"success": True})
    assert not SourceGuard(config(), store, clock=clock, log=Log()).admit().allowed
    reset_breaker(store, "airdrops", clock(), log=log, writer="sync_admin/manual_1")
    assert store.load("airdrops").quota is None
    assert any("the quota learned from the API is cleared (manual reset)" in w for w in log.warnings)
    assert SourceGuard(config(), store, clock=clock, log=Log()).admit().allowed


def test_the_breaker_reset_clears_the_learned_windows_too():
    from airflow_sync_provider.admin.operations import reset_breaker

    clock, store, log = Clock(), InMemoryStateStore(), Log()
    day = (86400.0, 100, clock() + 86400)
    store.save(SourceState("airdrops", learned_windows=(day,), updated_at=clock()))
    reset_breaker(store, "airdrops", clock(), log=log, writer="sync_admin/manual_1")
    assert store.load("airdrops").learned_windows == ()
    assert any(
        "the windows learned from the API are cleared (manual reset): 100 per 86400s" in w
        for w in log.warnings
    )
