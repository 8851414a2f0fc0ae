"""The guard at large limits (InMemoryStateStore, fake clock): the bucketed window keeps the state
Variable small, never admits more than the limit, survives re-stamps, foreign writes and limit changes."""

from __future__ import annotations

from datetime import timedelta

from airflow_sync_provider.config import RateLimitConfig, SyncConfig
from airflow_sync_provider.hooks.guard import SourceGuard
from airflow_sync_provider.policy import buckets as bk
from airflow_sync_provider.policy.buckets import Buckets
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState, variable_key
from tests.reliability.test_shared_state import OK, T0, Clock, Log

KEY = variable_key("quests")


class SizedStore(InMemoryStateStore):
    """Remembers the largest value ever written."""

    largest = 0

    def save(self, state: SourceState) -> None:
        super().save(state)
        self.largest = max(self.largest, len(self.raw[KEY].encode()))


def config(max_requests: int) -> SyncConfig:
    return SyncConfig(
        source="quests", rate_limit=RateLimitConfig(max_requests=max_requests, window=timedelta(hours=1))
    )


def stored(store: InMemoryStateStore) -> SourceState:
    return SourceState.from_json(store.raw[KEY], "quests")


def sync(store, clock, cfg, requests: int, writer: str, gap: float = 0.3) -> int:
    guard = SourceGuard(cfg, store, clock=clock, log=Log(), writer=writer)
    sent = 0
    for _ in range(requests):
        if not guard.admit().allowed:
            break
        clock.now += gap
        guard.record(OK)
        sent += 1
    guard.finish({"sent": sent})
    return sent


def test_limit_10000_fills_exactly_with_every_write_under_8_kb():
    store, clock = SizedStore(), Clock()
    assert sync(store, clock, config(10_000), 10_001, "scheduled__1") == 10_000
    window = stored(store).window
    assert isinstance(window, Buckets) and len(window) == 10_000
    # a 0.3 s page rate under the 1 s margin leases 3 slots a write (hooks.lease): a third of the writes
    assert store.writes < 10_001 / 2 and store.largest < 8 * 1024
    # the next run is refused until the oldest bucket has left the window plus the margin
    guard = SourceGuard(config(10_000), store, clock=clock, log=Log(), writer="scheduled__2")
    refused = guard.admit()
    exact = T0 + 0.3 + guard.hold_seconds - clock.now  # the first response + window + margin
    assert not refused.allowed and exact <= refused.wait <= exact + 36.01


def test_the_slot_is_written_before_the_send_and_re_stamped_to_the_response_bucket():
    store, clock = InMemoryStateStore(), Clock()
    guard = SourceGuard(config(10_000), store, clock=clock, log=Log(), writer="dag_a/run_1")
    assert guard.admit().allowed
    width = guard.hold_seconds / 100
    assert stored(store).window == Buckets(width, ((bk.index_of(T0, width), 1),))  # before the send
    clock.now += 90.0  # a slow response: two buckets later
    guard.record(OK)
    guard.finish({})
    assert stored(store).window == Buckets(width, ((bk.index_of(T0 + 90.0, width), 1),))


def test_a_smaller_limit_between_large_ones_keeps_every_request_of_the_hour():
    store, clock = InMemoryStateStore(), Clock()
    assert sync(store, clock, config(10_000), 100, "scheduled__1") == 100
    assert sync(store, clock, config(60), 10, "manual__1") == 0  # 100 live > 60: refused
    assert len(stored(store).window) == 100  # now a log of the buckets' ends, none dropped
    assert isinstance(stored(store).window, tuple)
    assert sync(store, clock, config(200), 500, "scheduled__2") == 100
    assert isinstance(stored(store).window, Buckets) and len(stored(store).window) == 200


def test_two_syncs_outside_the_pool_stay_within_a_large_limit_together():
    store, clock = InMemoryStateStore(), Clock()
    cfg = config(300)
    guards = {name: SourceGuard(cfg, store, clock=clock, log=Log(), writer=f"dag_{name}/r") for name in "ab"}
    sent = {"a": 0, "b": 0}
    for step in range(800):
        name = "ab"[step % 2]
        if guards[name].admit().allowed:
            clock.now += 0.5
            guards[name].record(OK)
            sent[name] += 1
    for guard in guards.values():
        guard.finish({})
    assert sent["a"] > 0 and sent["b"] > 0 and sent["a"] + sent["b"] <= 300
    assert len(stored(store).window) >= sent["a"] + sent["b"]


def test_every_write_stays_under_8_kb_at_the_log_and_bucket_extremes():
    """Windows kept full for an hour and a half at the largest log (128), the smallest bucketed limit
    (129) and 10,000: requests spread so that every bucket of the window is occupied."""
    for limit in (128, 129, 10_000):
        store, clock = SizedStore(), Clock()
        gap = 3601.0 / limit
        for run in range(3):
            sync(store, clock, config(limit), limit // 2, f"scheduled__{run}", gap=gap)
        assert store.largest < 8 * 1024, (limit, store.largest)
        assert len(stored(store).window) <= limit


def test_a_lower_advertised_limit_over_a_bucketed_window_is_obeyed_and_counts_every_request():
    """Ours 10,000/h (buckets), the API advertises 50/h: the obeyed limit decides in the log form, and
    when ours decides again every request sent meanwhile is still counted."""
    from airflow_sync_provider.hooks.outcome import Attempt, BreakerEffect
    from airflow_sync_provider.policy.quota import Quota

    store, clock = SizedStore(), Clock()
    assert sync(store, clock, config(10_000), 30, "scheduled__1") == 30
    guard = SourceGuard(config(10_000), store, clock=clock, log=Log(), writer="scheduled__2")
    advertised = Quota(limit=50, window=3600.0, reset_at=clock.now + 600, observed_at=clock.now)
    sent = 0
    for _ in range(40):
        if not guard.admit().allowed:
            break
        clock.now += 0.3
        guard.record(Attempt(None, False, BreakerEffect.SUCCESS, "ok", 200, quota=advertised))
        sent += 1
    assert sent == 20  # 30 earlier + 20 = the advertised 50
    guard.finish({})
    clock.now += 700  # the report has expired: our 10,000 decides again
    assert len(stored(store).window) == 50
    assert sync(store, clock, config(10_000), 5, "scheduled__3") == 5
    assert isinstance(stored(store).window, Buckets) and len(stored(store).window) == 55
