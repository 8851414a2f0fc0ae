"""The effective limit wired into the guard and the shared state (issue 19, item 4): fake clock, no HTTP.

Each test drives ``SourceGuard.admit``/``record`` directly with scripted attempts, on an
``InMemoryStateStore`` (the same JSON as the Variables), so admission, the stored state and the merge
of two workers' writes are checked exactly.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest

from airflow_sync_provider.admin.api import describe
from airflow_sync_provider.config import RateLimitConfig, SyncConfig
from airflow_sync_provider.hooks.guard import SourceGuard
from airflow_sync_provider.hooks.outcome import Attempt, BreakerEffect
from airflow_sync_provider.observability import metrics
from airflow_sync_provider.policy import adaptive
from airflow_sync_provider.policy.quota import Quota
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.state import adaptive_limit
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState, merge, variable_key
from airflow_sync_provider.state.table import format_states

T0 = 1_800_000_000.0
LOG = logging.getLogger("tests.unit.adaptive_limit")
SOURCE = "hidden"
OK = Attempt(None, False, BreakerEffect.SUCCESS, "ok", status=200)
REFUSED = Attempt(SyncErrorKind.RATE_LIMITED, True, BreakerEffect.NEUTRAL, "429", status=429)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def config(adaptive_on: bool = True, **limit: Any) -> SyncConfig:
    fields = {"max_requests": 20, "window": timedelta(seconds=60), "adaptive": adaptive_on, **limit}
    return SyncConfig(source=SOURCE, rate_limit=RateLimitConfig(**fields))


def guard(store: InMemoryStateStore, clock: Clock, cfg: SyncConfig | None = None) -> SourceGuard:
    return SourceGuard(cfg or config(), store, clock=clock, log=LOG)


def send(g: SourceGuard, attempt: Attempt) -> None:
    assert g.admit().allowed
    g.record(attempt)


def stored(store: InMemoryStateStore) -> dict[str, Any]:
    return json.loads(store.raw[variable_key(SOURCE)])


def effective(store: InMemoryStateStore, cfg: SyncConfig, now: float) -> int:
    return adaptive_limit.effective_limit(store.load(SOURCE), cfg, now)


def test_a_refusal_without_a_quota_lowers_the_shared_limit_at_once() -> None:
    store, clock = InMemoryStateStore(), Clock()
    g = guard(store, clock)
    for _ in range(10):
        send(g, OK)
    send(g, REFUSED)  # the API refused at 10 in the window
    assert effective(store, config(), clock.now) == 7  # 0.7 x 10, saved before the next request
    assert stored(store)["adaptive"]["w_max"] == 10
    assert len(json.dumps(stored(store)["adaptive"], separators=(",", ":"))) < 120  # compact


def test_admission_obeys_the_effective_limit_and_names_it() -> None:
    store, clock = InMemoryStateStore(), Clock()
    g = guard(store, clock)
    for _ in range(10):
        send(g, OK)
    send(g, REFUSED)
    admission = g.admit()  # 11 in the window, effective 7
    assert not admission.allowed and admission.kind is SyncErrorKind.RATE_LIMIT_EXCEEDED
    assert "(7 requests per 60s, the effective limit (adaptive))" in admission.message
    assert g.window_usage() == pytest.approx(11 / 7)


def test_another_worker_obeys_the_lowered_limit_from_its_first_admission() -> None:
    store, clock = InMemoryStateStore(), Clock()
    first = guard(store, clock)
    for _ in range(5):
        send(first, OK)
    send(first, REFUSED)  # effective 0.7 x 5 -> 3, with 6 in the window
    clock.now += 1
    second = guard(store, clock)  # another worker, another guard, the same Variable
    admission = second.admit()
    assert not admission.allowed  # 6 in the window: the configured 20 would admit
    assert "(3 requests per 60s, the effective limit (adaptive))" in admission.message
    fixed = guard(store, clock, config(adaptive_on=False))  # a config without adaptive ignores it
    assert fixed.admit().allowed


def test_two_workers_refused_at_once_decrease_once() -> None:
    """Both requests were sent before either refusal was read: one decrease, not two."""
    store, clock = InMemoryStateStore(), Clock()
    a, b = guard(store, clock), guard(store, clock)
    for _ in range(10):
        send(a, OK)
    assert a.admit().allowed and b.admit().allowed  # both in flight, a's at 10 in the window
    clock.now += 0.5
    a.record(REFUSED)
    clock.now += 0.5
    b.record(REFUSED)  # re-reads a's decrease first: its request was sent before it
    assert effective(store, config(), clock.now) == 7  # 0.7 x 10 once (0.7 x 7 = 4 if decreased twice)


def test_a_stale_copy_does_not_undo_a_decrease() -> None:
    """Worker ``b`` read the state before ``a`` lowered it; its next write keeps ``a``'s decrease."""
    store, clock = InMemoryStateStore(), Clock()
    a, b = guard(store, clock), guard(store, clock)
    assert b.state.adaptive is None  # b reads now, before a's decrease (a guard reads at its first use)
    for _ in range(10):
        send(a, OK)
    send(a, REFUSED)
    lowered = stored(store)["adaptive"]
    clock.now += 61.5
    b.state = b.state.replace(adaptive=None)  # what b held before a's decrease
    send(b, OK)
    assert stored(store)["adaptive"]["decreased_at"] == lowered["decreased_at"]
    assert effective(store, config(), clock.now) <= 7


def test_the_merge_keeps_the_latest_decrease_else_the_further_grown_limit() -> None:
    early = {"algorithm": "cubic", "limit": 50.0, "w_max": 60.0, "decreased_at": T0, "in_use": 1}
    late = {**early, "limit": 30.0, "decreased_at": T0 + 5}
    grown = {**early, "limit": 55.0}
    assert adaptive.merge(early, late) == late == adaptive.merge(late, early)
    assert adaptive.merge(early, grown) == grown == adaptive.merge(grown, early)
    assert adaptive.merge(None, early) == early == adaptive.merge(early, None)
    assert adaptive.merge(None, None) is None
    ours, theirs = SourceState(SOURCE, adaptive=early), SourceState(SOURCE, adaptive=late)
    assert merge(ours, theirs).adaptive == late


def test_successes_raise_it_again_never_above_the_configured_limit() -> None:
    store, clock = InMemoryStateStore(), Clock()
    g = guard(store, clock)
    for _ in range(10):
        send(g, OK)
    send(g, REFUSED)
    low = effective(store, config(), clock.now)
    clock.now += 61.5  # the window (and its margin) has passed
    seen = []
    for _ in range(200):
        clock.now += 3.1  # 20 per 62 s: the window always has room for the next one
        send(g, OK)
        g.flush()
        seen.append(effective(store, config(), clock.now))
    assert max(seen) > low
    assert max(seen) == 20  # the configured limit caps it


def test_it_never_goes_below_min_requests() -> None:
    cfg = config(min_requests=4)
    store, clock = InMemoryStateStore(), Clock()
    g = guard(store, clock, cfg)
    for _ in range(30):
        clock.now += 61.5
        send(g, REFUSED)
    assert effective(store, cfg, clock.now) == 4


def test_a_refusal_with_a_quota_signal_is_left_to_the_quota() -> None:
    """A 429 with ``Retry-After`` (or a reset, or a limit) is obeyed as a learned quota, not lowered."""
    store, clock = InMemoryStateStore(), Clock()
    g = guard(store, clock)
    said = Quota(remaining=0, reset_at=T0 + 30, observed_at=T0)
    send(g, Attempt(SyncErrorKind.RATE_LIMITED, True, BreakerEffect.NEUTRAL, "429", status=429, quota=said))
    assert "adaptive" not in stored(store)
    clock.now += 31  # past the reset
    without_reset = Quota(remaining=0, observed_at=clock.now)  # remaining 0 alone: no usable signal
    send(
        g,
        Attempt(
            SyncErrorKind.RATE_LIMITED, True, BreakerEffect.NEUTRAL, "403", status=403, quota=without_reset
        ),
    )
    assert effective(store, config(), clock.now) == 1  # 0.7 x the 1 request in the window


def test_a_decrease_is_one_warning_and_a_gauge(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[str, float, Any]] = []

    class Stats:
        def gauge(self, stat: str, value: float, *args: Any, tags: dict[str, Any] | None = None) -> None:
            sent.append((stat, value, tags))

        def timing(self, stat: str, dt: Any, *, tags: dict[str, Any] | None = None) -> None:
            raise AssertionError("no timer here")

    monkeypatch.setattr(metrics, "get_stats", Stats)
    store, clock = InMemoryStateStore(), Clock()
    g = guard(store, clock)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        for _ in range(10):
            send(g, OK)
        send(g, REFUSED)
    lowered = [r.getMessage() for r in caplog.records if "lowered" in r.getMessage()]
    assert lowered == [
        "rate_limit of hidden lowered: effective 20 -> 7 of 20 after a 429 without a quota signal"
    ]
    tagged = [value for stat, value, tags in sent if stat == metrics.RATE_LIMIT_EFFECTIVE]
    assert tagged == [20, 7]  # at the first admission, then at the change
    assert ("sync.rate_limit.effective_limit.hidden", 7, None) in sent


def test_states_and_the_dashboard_row_show_effective_of_configured() -> None:
    store, clock = InMemoryStateStore(), Clock()
    g = guard(store, clock)
    for _ in range(10):
        send(g, OK)
    send(g, REFUSED)
    row = describe(store.load(SOURCE), config(), clock.now)
    assert (row["effective_limit"], row["configured_limit"]) == (7, 20)
    assert (row["window_requests"], row["window_max_requests"]) == (11, 7)
    assert "11/7 per 1m (effective 7/20)" in format_states([row])
    assert "effective_limit" not in describe(store.load(SOURCE), config(adaptive_on=False), clock.now)


def test_a_malformed_or_future_adaptive_state_is_survived() -> None:
    warnings: list[str] = []
    raw = json.dumps({"schema_version": 1, "source": SOURCE, "adaptive": [1, 2]})
    assert SourceState.from_json(raw, SOURCE, on_warning=warnings.append).adaptive is None
    assert warnings and "adaptive must be an object" in warnings[0]
    ahead = {"algorithm": "cubic", "limit": 5.0, "w_max": 8.0, "decreased_at": T0 + 3600, "in_use": 3}
    store, clock = InMemoryStateStore(), Clock()
    store.save(SourceState(SOURCE, adaptive=ahead))
    g = guard(store, clock)
    send(g, REFUSED)  # a decrease stamped an hour ahead counts as now: this refusal is news
    assert effective(store, config(), clock.now) == 1


def test_adaptive_off_changes_nothing() -> None:
    """The default: 429s without a quota neither lower the limit nor add a key to the state."""
    assert RateLimitConfig().adaptive is False
    cfg = config(adaptive_on=False)
    store, clock = InMemoryStateStore(), Clock()
    g = guard(store, clock, cfg)
    for _ in range(10):
        send(g, REFUSED)
    for _ in range(10):
        send(g, OK)  # the configured 20, whatever was refused
    assert not g.admit().allowed
    assert "adaptive" not in stored(store)
    assert g.adaptive.note(g.state, clock.now) == ""
    assert "effective" not in format_states([describe(store.load(SOURCE), cfg, clock.now)])


def test_the_breaker_reset_clears_the_effective_limit() -> None:
    """``sync_admin``'s reset forgets what was learned from the API, the effective limit included."""
    from airflow_sync_provider.admin.operations import reset_breaker

    store, clock = InMemoryStateStore(), Clock()
    g = guard(store, clock)
    for _ in range(10):
        send(g, OK)
    send(g, REFUSED)
    warnings: list[str] = []

    class Log:
        warning = staticmethod(lambda message, *args: warnings.append(message % args))

    reset_breaker(store, SOURCE, clock.now, log=Log(), writer="sync_admin/manual_1")
    assert "adaptive" not in stored(store)
    assert effective(store, config(), clock.now) == 20
    assert warnings == ["hidden: the effective limit learned from refusals is cleared (manual reset)"]
