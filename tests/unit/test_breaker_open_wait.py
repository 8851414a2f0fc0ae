"""policy.breaker: the open wait grows after each failed probe and starts over when the breaker closes.

Fake clock, no sleeps: every time below is a float handed to the pure functions.
"""

from __future__ import annotations

import math
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_sync_provider.config import CircuitBreakerConfig, SyncConfig
from airflow_sync_provider.hooks.guard import breaker_settings
from airflow_sync_provider.policy import breaker
from airflow_sync_provider.policy.breaker import BreakerSettings, BreakerSnapshot, BreakerState

T0 = 1_000_000.0
GROWING = BreakerSettings(
    failure_threshold=2,
    reset_timeout=300.0,
    half_open_max_attempts=1,
    reset_multiplier=2.0,
    max_reset_timeout=7200.0,
)


def trip(snap: BreakerSnapshot, settings: BreakerSettings, now: float) -> BreakerSnapshot:
    """Count failures in closed until the breaker opens at ``now``."""
    while snap.state is BreakerState.CLOSED:
        snap, _ = breaker.record_failure(snap, settings, now, "503")
    return snap


def failed_probe_waits(settings: BreakerSettings, probes: int) -> tuple[list[float], BreakerSnapshot, float]:
    """Open the breaker, then let ``probes`` probes fail, each sent the moment it is allowed.

    Returns the open waits seen (from each opening to the first moment a probe is allowed), the
    snapshot and the clock after the last failed probe.
    """
    now = T0
    snap = trip(BreakerSnapshot(), settings, now)
    waits = []
    for _ in range(probes + 1):
        probe_at = snap.next_probe_at(settings)
        assert probe_at is not None
        early = breaker.before_request(snap, settings, probe_at - 0.001)
        assert not early.allowed and early.retry_at == probe_at  # refused until the wait has passed
        waits.append(probe_at - snap.opened_at)  # type: ignore[operator]
        if len(waits) > probes:
            break
        now = probe_at
        permit = breaker.before_request(snap, settings, now)
        assert permit.allowed and permit.snapshot.state is BreakerState.HALF_OPEN
        snap, moved = breaker.record_failure(permit.snapshot, settings, now, "503")
        assert moved is not None and (moved.source_state, moved.target_state) == (
            BreakerState.HALF_OPEN,
            BreakerState.OPEN,
        )
    return waits, snap, now


def test_each_failed_probe_doubles_the_wait_up_to_the_cap():
    waits, snap, _ = failed_probe_waits(GROWING, 7)
    minutes = [w / 60 for w in waits]
    assert minutes == [5, 10, 20, 40, 80, 120, 120, 120]
    assert snap.failed_probes == 7


def test_multiplier_one_keeps_the_constant_wait():
    constant = BreakerSettings(failure_threshold=2, reset_timeout=300.0, half_open_max_attempts=1)
    waits, snap, _ = failed_probe_waits(constant, 4)
    assert waits == [300.0] * 5
    assert snap.failed_probes == 4  # counted, but the wait does not grow


def test_a_successful_probe_starts_the_wait_over():
    _, snap, now = failed_probe_waits(GROWING, 3)  # the next wait would be 40 min
    now = snap.next_probe_at(GROWING)  # type: ignore[assignment]
    permit = breaker.before_request(snap, GROWING, now)
    closed, moved = breaker.record_success(permit.snapshot, now)
    assert moved is not None and closed.state is BreakerState.CLOSED
    assert closed.failed_probes == 0
    reopened = trip(closed, GROWING, now + 10)
    assert reopened.next_probe_at(GROWING) == now + 10 + 300  # reset_timeout again, not 80 min


def test_a_manual_reset_starts_the_wait_over():
    _, snap, now = failed_probe_waits(GROWING, 4)
    closed, moved = breaker.reset(snap, now + 1)
    assert moved is not None and (closed.state, closed.failed_probes) == (BreakerState.CLOSED, 0)
    reopened = trip(closed, GROWING, now + 2)
    assert reopened.next_probe_at(GROWING) == now + 2 + 300


def test_failures_while_closed_do_not_grow_the_wait():
    """Only failed probes grow it: a breaker that opens from closed always waits reset_timeout."""
    snap = trip(BreakerSnapshot(failure_count=0), GROWING, T0)
    assert (snap.failed_probes, snap.next_probe_at(GROWING)) == (0, T0 + 300)


def test_huge_probe_counts_stay_at_the_cap():
    assert GROWING.open_wait(10_000) == 7200.0  # 2.0 ** 10_000 overflows a float
    int_multiplier = BreakerSettings(
        failure_threshold=1,
        reset_timeout=1.0,
        half_open_max_attempts=1,
        reset_multiplier=3,
        max_reset_timeout=60,
    )
    assert int_multiplier.open_wait(10**12) == 60.0  # a hand-edited count: no 10**12-digit integer
    unbounded = BreakerSettings(
        failure_threshold=1, reset_timeout=1.0, half_open_max_attempts=1, reset_multiplier=3
    )
    assert unbounded.open_wait(2) == 9.0
    assert unbounded.open_wait(10_000) == math.inf


def test_a_cap_below_reset_timeout_never_shortens_the_first_wait():
    odd = BreakerSettings(
        failure_threshold=1,
        reset_timeout=600.0,
        half_open_max_attempts=1,
        reset_multiplier=2,
        max_reset_timeout=60,
    )
    assert [odd.open_wait(n) for n in range(3)] == [600.0, 600.0, 600.0]


def test_config_reaches_the_policy():
    growing = SyncConfig(
        source="a",
        circuit_breaker=CircuitBreakerConfig(reset_multiplier=3, max_reset_timeout=timedelta(hours=6)),
    )
    settings_ = breaker_settings(growing)
    assert (settings_.reset_multiplier, settings_.max_reset_timeout) == (3, 6 * 3600.0)
    default = breaker_settings(SyncConfig(source="a"))
    assert (default.reset_timeout, default.reset_multiplier, default.max_reset_timeout) == (
        300.0,
        2.0,
        3000.0,
    )
    assert [default.open_wait(n) / 60 for n in range(6)] == [5, 10, 20, 40, 50, 50]


# --- property: waits are monotone while probes keep failing, bounded, and start over on close -------

EVENTS = st.lists(
    st.tuples(st.sampled_from(["probe_fails", "probe_succeeds", "reset"]), st.floats(0, 10_000)),
    max_size=40,
)


@settings(max_examples=150, deadline=None, database=None)
@given(
    events=EVENTS,
    reset_timeout=st.floats(1.0, 3600.0),
    multiplier=st.floats(1.0, 10.0),
    cap_factor=st.floats(1.0, 100.0),
)
def test_open_waits_are_monotone_bounded_and_restart_on_close(events, reset_timeout, multiplier, cap_factor):
    cfg = BreakerSettings(
        failure_threshold=1,
        reset_timeout=reset_timeout,
        half_open_max_attempts=1,
        reset_multiplier=multiplier,
        max_reset_timeout=reset_timeout * cap_factor,
    )
    now = T0
    snap = trip(BreakerSnapshot(), cfg, now)
    previous = None
    for event, pause in events:
        wait = cfg.open_wait(snap.failed_probes)
        assert snap.next_probe_at(cfg) == snap.opened_at + wait  # type: ignore[operator]
        assert reset_timeout <= wait <= max(reset_timeout, reset_timeout * cap_factor)
        if previous is not None:
            assert wait >= previous  # never shrinks while the probes keep failing
        previous = wait
        if event == "reset":
            snap, _ = breaker.reset(snap, now)
        else:
            now = max(now, snap.next_probe_at(cfg)) + pause  # type: ignore[type-var]
            permit = breaker.before_request(snap, cfg, now)
            assert permit.allowed
            if event == "probe_fails":
                snap, _ = breaker.record_failure(permit.snapshot, cfg, now, "503")
                continue
            snap, _ = breaker.record_success(permit.snapshot, now)
        assert (snap.state, snap.failed_probes) == (BreakerState.CLOSED, 0)
        now += 1
        snap, previous = trip(snap, cfg, now), None
        assert snap.next_probe_at(cfg) == now + reset_timeout  # closed: the wait starts over
