"""policy.rate_limit: the sliding-window log, its edges, and a property test over random clocks."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_sync_provider.policy.rate_limit import WindowDecision, acquire, prune, restamp, usage

T0 = 1_764_390_000.0
EPS = 1e-6


def fill(n: int, start: float, step: float, *, max_requests: int, window: float) -> tuple[float, ...]:
    log: tuple[float, ...] = ()
    for i in range(n):
        decision = acquire(log, start + i * step, max_requests=max_requests, window=window)
        assert decision.granted, i
        log = decision.timestamps
    return log


def test_grants_until_full_then_refuses_with_exact_wait():
    log = fill(3, T0, 10.0, max_requests=3, window=60.0)
    assert log == (T0, T0 + 10, T0 + 20)
    decision = acquire(log, T0 + 25, max_requests=3, window=60.0)
    assert decision == WindowDecision(False, (T0, T0 + 10, T0 + 20), 35.0)


def test_slot_frees_exactly_at_t_plus_window():
    log = fill(2, T0, 1.0, max_requests=2, window=60.0)
    decision = acquire(log, T0 + 60.0, max_requests=2, window=60.0)
    assert decision.granted is True
    assert decision.wait == 0.0
    assert decision.timestamps == (T0 + 1, T0 + 60)


def test_slot_does_not_free_just_before_t_plus_window():
    log = fill(2, T0, 1.0, max_requests=2, window=60.0)
    now = T0 + 60.0 - 0.25
    decision = acquire(log, now, max_requests=2, window=60.0)
    assert decision.granted is False
    assert decision.timestamps == (T0, T0 + 1)
    assert decision.wait == 0.25
    # waiting exactly `wait` is enough
    assert acquire(decision.timestamps, now + decision.wait, max_requests=2, window=60.0).granted is True


def test_wait_is_exact_a_hair_before_the_edge():
    log = (100.0,)
    decision = acquire(log, 100.0 + 10.0 - EPS, max_requests=1, window=10.0)
    assert decision.granted is False
    assert decision.wait == pytest.approx(EPS, abs=1e-9)


def test_state_never_exceeds_max_requests():
    log: tuple[float, ...] = ()
    for i in range(500):
        log = acquire(log, T0 + i * 0.5, max_requests=7, window=30.0).timestamps
        assert len(log) <= 7
    assert len(log) == 7


def test_future_timestamps_are_clamped_to_now():
    assert prune((T0 + 500.0, T0 - 5.0, T0 + 1.0), T0, 60.0) == (T0 - 5.0, T0, T0)
    decision = acquire((T0 + 10_000.0,), T0, max_requests=2, window=60.0)
    assert decision.granted is True
    assert decision.timestamps == (T0, T0)
    # a far-future entry blocks for one window from now, not until the year it claims
    refused = acquire((T0 + 10**9, T0 + 10**9), T0, max_requests=2, window=60.0)
    assert refused.granted is False
    assert refused.wait == 60.0


def test_prune_drops_expired_and_sorts():
    assert prune([T0 - 60.0, T0 - 59.5, T0 - 1, T0 - 30], T0, 60.0) == (T0 - 59.5, T0 - 30, T0 - 1)
    assert prune((), T0, 60.0) == ()


def test_a_stored_log_larger_than_the_limit_is_kept_whole():
    stored = tuple(T0 + i for i in range(10))  # written under an older, larger limit
    decision = acquire(stored, T0 + 10, max_requests=4, window=60.0)
    assert decision.granted is False
    assert decision.timestamps == stored  # refused, but nothing inside the window is dropped
    assert decision.wait == 56.0  # when all but 3 have left


def test_a_tighter_limit_never_shrinks_the_log_for_a_later_looser_one():
    """Issue 10 item 1: 50 requests at 60/h, a run at 10/h, then 60/h again: at most 60 in the hour."""
    log: tuple[float, ...] = ()
    sent: list[float] = []

    def run(now: float, limit: int, tries: int) -> None:
        nonlocal log
        for i in range(tries):
            decision = acquire(log, now + i, max_requests=limit, window=3600.0)
            log = decision.timestamps
            if decision.granted:
                sent.append(now + i)

    run(T0, 60, 50)
    run(T0 + 100, 10, 5)  # a manual run with the trigger param max_requests=10: refused, log intact
    assert len(log) == 50
    run(T0 + 200, 60, 60)
    assert len(sent) == 60
    assert max_in_any_window(sent, 3600.0) == 60


def test_a_stored_log_larger_than_the_limit_frees_when_the_newest_expire():
    stored = tuple(T0 + i for i in range(10))
    decision = acquire(stored, T0 + 66.0, max_requests=4, window=60.0)
    assert decision.granted is True
    assert decision.timestamps == (T0 + 7, T0 + 8, T0 + 9, T0 + 66)


def test_usage():
    log = (T0 - 70.0, T0 - 30.0, T0 - 10.0, T0 - 1.0)
    assert usage(log, T0, max_requests=8, window=60.0) == 3 / 8
    assert usage((), T0, max_requests=8, window=60.0) == 0.0
    assert usage(log, T0 + 100.0, max_requests=8, window=60.0) == 0.0
    assert usage(fill(5, T0, 1, max_requests=5, window=60), T0 + 5, max_requests=5, window=60) == 1.0


# --- property: never more than max_requests in any window ---------------------------------------------
#
# The limiter only sees clock readings. A clock stepped backwards (NTP, a skewed worker) cannot be
# told from a real event at that reading, and the log forgets what it pruned, so the guarantee is
# over *real* time: each step advances real time by dt >= 0 and the clock reads real + offset, where
# a backwards jump lowers the offset. (Over raw readings no bounded log can keep the promise: grant
# at 0 and 1, jump to 20 and grant, jump back to 5 and grant -> three readings in [0, 10).)


# Times on a 1/1024 s grid stay exact floats near T0, so "real" and clock arithmetic never round apart.
def grid(low: float, high: float) -> st.SearchStrategy[float]:
    return st.integers(round(low * 1024), round(high * 1024)).map(lambda n: n / 1024)


steps = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), grid(0, 30)),
        st.tuples(st.just("advance"), st.sampled_from([0.0, 0.5, 1.0, 5.0, 10.0])),
        st.tuples(st.just("jump_back"), grid(0.001, 100)),
    ),
    min_size=1,
    max_size=120,
)


def max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:  # keep times[lo..hi] inside (t - window, t]
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=steps,
    max_requests=st.integers(1, 6),
    window=st.sampled_from([1.0, 10.0, 60.0, 3600.0]),
    stored=st.lists(grid(-200, 200), max_size=10),
)
def test_never_more_than_max_requests_in_any_window(steps, max_requests, window, stored):
    real, offset = 0.0, 0.0
    # a pre-existing log (possibly from a larger limit, possibly "from the future") only restricts
    log: tuple[float, ...] = tuple(T0 + s for s in stored)
    granted_real: list[float] = []
    for kind, amount in steps:
        if kind == "advance":
            real += amount
        else:
            offset -= amount
        now = T0 + real + offset
        decision = acquire(log, now, max_requests=max_requests, window=window)
        if decision.granted:
            granted_real.append(real)
            assert decision.wait == 0.0
            assert decision.timestamps[-1] == now
        else:
            assert decision.wait > 0.0
            assert decision.wait <= window
        assert list(decision.timestamps) == sorted(decision.timestamps)
        assert len(decision.timestamps) <= max(max_requests, len(stored))  # only time shortens it
        assert all(t <= now for t in decision.timestamps)
        log = decision.timestamps
    assert max_in_any_window(granted_real, window) <= max_requests


@settings(max_examples=200, deadline=None, database=None)
@given(
    gaps=st.lists(grid(0, 20), min_size=1, max_size=150),
    max_requests=st.integers(1, 5),
    window=st.sampled_from([1.0, 10.0, 60.0]),
)
def test_monotonic_clock_grants_whenever_the_window_has_room(gaps, max_requests, window):
    """A steady clock makes the limiter exact: grant iff < max grants in (now - window, now]."""
    now, log = T0, ()
    granted: list[float] = []
    for gap in gaps:
        now += gap
        decision = acquire(log, now, max_requests=max_requests, window=window)
        in_window = [g for g in granted if g > now - window]
        assert decision.granted == (len(in_window) < max_requests)
        if decision.granted:
            granted.append(now)
        else:
            assert decision.wait == pytest.approx(sorted(in_window)[-max_requests] + window - now)
        log = decision.timestamps
    assert max_in_any_window(granted, window) <= max_requests


def test_max_in_any_window_helper():
    assert max_in_any_window([0, 1, 9.99, 10, 20], 10.0) == 3
    assert max_in_any_window([0, 10, 20], 10.0) == 1
    assert max_in_any_window([], 10.0) == 0


# --- slots held until the response (issue 10 item 10) ------------------------------------------------


def api_arrivals(
    latencies: list[tuple[float, float]], *, max_requests: int, window: float, margin: float, hold: bool
) -> list[float]:
    """Send ``len(latencies)`` requests as the guard does, on a fake clock; return arrival times at the
    API. Each latency pair is (to the API, back from it); ``hold``: re-stamp the slot on the response."""
    now, log, arrivals = T0, (), []
    for up, down in latencies:
        decision = acquire(log, now, max_requests=max_requests, window=window + margin)
        while not decision.granted:
            now += decision.wait
            decision = acquire(log, now, max_requests=max_requests, window=window + margin)
        log, stamp = decision.timestamps, now
        arrivals.append(now + up)
        now += up + down  # the response is in
        if hold:
            log = restamp(log, stamp, now)
    return arrivals


def test_held_slots_keep_the_spacing_at_the_api_at_or_above_the_window():
    """Every 7th request travels slowly, the others fast: stamped on the send, the
    API sees requests ``max_requests`` apart closer than the window; held until the response plus a
    margin, never."""
    latencies = [(0.4, 0.05) if i % 7 == 0 else (0.01, 0.01) for i in range(60)]
    window, limit = 30.0, 10

    def tightest(arrivals: list[float]) -> float:
        return min(b - a for a, b in zip(arrivals, arrivals[limit:], strict=False))

    stamped_on_send = api_arrivals(latencies, max_requests=limit, window=window, margin=0.0, hold=False)
    assert tightest(stamped_on_send) < window  # the defect, reproduced in the model
    held = api_arrivals(latencies, max_requests=limit, window=window, margin=1.0, hold=True)
    assert tightest(held) >= window + 1.0
    assert max_in_any_window(held, window) <= limit


def test_restamp_moves_one_entry_and_keeps_order():
    assert restamp((1.0, 2.0, 2.0, 5.0), 2.0, 6.0) == (1.0, 2.0, 5.0, 6.0)
    assert restamp((1.0,), 3.0, 4.0) == (1.0,)  # not there (pruned): nothing to move
