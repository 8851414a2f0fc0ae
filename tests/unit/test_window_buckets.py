"""policy.buckets and the form switch in policy.rate_limit: bucketed windows never admit more than
the limit, free at most one bucket width late, and stay small (fake clock, no sleeps)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_sync_provider.policy import buckets as bk
from airflow_sync_provider.policy import rate_limit
from airflow_sync_provider.policy.buckets import Buckets
from airflow_sync_provider.policy.rate_limit import LOG_MAX, acquire, fit, restamp

T0 = 1_764_390_000.0
HOUR = 3600.0


def test_index_of_puts_every_time_in_a_bucket_ending_at_or_after_it():
    for width in (0.1, 0.3, 0.6, 36.0, 36.01, 1e-3):
        for t in (T0, T0 + 0.1, T0 + 0.3, 3 * width, 7 * width, T0 + 1e-6):
            i = bk.index_of(t, width)
            assert i * width >= t > (i - 2) * width


def test_a_large_limit_is_bucketed_and_a_small_one_is_a_log():
    assert isinstance(acquire((), T0, max_requests=10_000, window=HOUR).timestamps, Buckets)
    assert acquire((), T0, max_requests=LOG_MAX, window=HOUR).timestamps == (T0,)
    assert isinstance(acquire((), T0, max_requests=LOG_MAX + 1, window=HOUR).timestamps, Buckets)


def test_a_bucket_frees_only_when_its_end_has_left_the_window():
    width = HOUR / 100  # 36 s
    window = acquire((), T0 + 1, max_requests=2, window=HOUR, log_max=1).timestamps
    window = acquire(window, T0 + 2, max_requests=2, window=HOUR, log_max=1).timestamps
    assert isinstance(window, Buckets) and len(window) == 2
    end = bk.index_of(T0 + 2, width) * width
    assert end >= T0 + 2
    refused = acquire(window, end + HOUR - 0.01, max_requests=2, window=HOUR, log_max=1)
    assert not refused.granted and refused.wait == pytest.approx(0.01)
    assert acquire(window, end + HOUR, max_requests=2, window=HOUR, log_max=1).granted
    # the exact log would have freed at T0 + 1 + HOUR: the bucket is late by less than one width
    assert 0 <= end - (T0 + 1) <= width


def test_limit_10000_fills_exactly_then_refuses_and_stays_small():
    window: rate_limit.Window = ()
    for i in range(10_000):
        decision = acquire(window, T0 + i * 0.3, max_requests=10_000, window=HOUR)
        assert decision.granted, i
        window = decision.timestamps
    assert isinstance(window, Buckets) and len(window) == 10_000 and len(window.counts) <= 101
    refused = acquire(window, T0 + 3000.0, max_requests=10_000, window=HOUR)
    assert not refused.granted and 600.0 <= refused.wait <= 600.0 + 36.0
    assert len(json.dumps({"width": window.width, "counts": window.counts})) < 2500


def test_a_stored_log_of_10000_becomes_buckets_with_the_same_count():
    log = tuple(T0 + i * 0.3 for i in range(10_000))  # written by an older provider
    shaped = fit(log, T0 + 3000.0, max_requests=10_000, window=HOUR)
    assert isinstance(shaped, Buckets) and len(shaped) == 10_000


def test_buckets_back_to_a_log_stamp_each_request_at_its_bucket_end_but_not_in_the_future():
    window = Buckets(36.0, ((bk.index_of(T0, 36.0), 3),))
    log = fit(window, T0 + 1, max_requests=10, window=HOUR)
    assert log == (min(window.end(window.counts[0][0]), T0 + 1),) * 3
    assert all(t >= T0 for t in log)


def test_restamp_moves_one_request_to_its_response_bucket():
    window = bk.from_times([T0, T0], 10.0)
    moved = restamp(window, T0, T0 + 25.0)
    assert len(moved) == 2
    assert dict(moved.counts) == {bk.index_of(T0, 10.0): 1, bk.index_of(T0 + 25, 10.0): 1}
    assert restamp(moved, T0 + 100.0, T0 + 200.0) == moved  # nothing there: no-op


def test_future_buckets_are_clamped_to_now():
    window = bk.from_times([T0 - 5, T0 + 500.0, T0 + 900.0], 10.0)
    clamped, moved, furthest = rate_limit.clamp_future(window, T0)
    assert (len(clamped), moved) == (3, 2) and 880.0 <= furthest <= 900.0
    assert max(i for i, _ in clamped.counts) == bk.index_of(T0, 10.0)


def test_oldest_is_the_end_of_the_oldest_bucket():
    assert rate_limit.oldest(bk.from_times([T0 + 3, T0 + 15], 10.0)) == bk.index_of(T0 + 3, 10.0) * 10.0
    assert rate_limit.oldest(Buckets(10.0)) is None and rate_limit.oldest(()) is None


def test_bad_width_names_the_field():
    with pytest.raises(ValueError, match="bucket width must be a positive number of seconds, got 0"):
        Buckets(0)


# --- property: never more than the limit, in both forms and across the switch -------------------------
#
# Each step advances the fake clock, picks the limit in force (some below ``log_max``, some above: the
# form switches between log and buckets as they change) and sends a burst; a granted request is held
# until its response (re-stamped), as the guard does. At every grant, the requests still in the window
# by their real response times must number fewer than the limit in force; and a refusal's wait is at
# most one bucket width longer than the exact log's.

LOG_MAX_SMALL = 6
PER_WINDOW = 10
WINDOW = 60.0
WIDTH = WINDOW / PER_WINDOW

step = st.tuples(
    st.sampled_from([0.0, 0.5, 3.0, 6.0, 17.5, 59.0, 61.0]),  # clock advance
    st.sampled_from([2, 4, 6, 7, 12, 25]),  # limit in force (log_max is 6)
    st.integers(min_value=1, max_value=12),  # burst size
    st.sampled_from([0.0, 0.25, 2.0, 7.0]),  # response delay
)


def exact_wait(responses: list[float], now: float, limit: int) -> float:
    live = sorted(r for r in responses if r > now - WINDOW)
    if len(live) < limit:
        return 0.0
    return live[len(live) - limit] + WINDOW - now


@settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=40), round_trip=st.booleans())
def test_never_more_than_the_limit_in_any_window_in_either_form(steps, round_trip):
    now = T0
    window: rate_limit.Window = ()
    responses: list[float] = []
    for dt, limit, burst, delay in steps:
        now += dt
        for _ in range(burst):
            decision = acquire(
                window, now, max_requests=limit, window=WINDOW, log_max=LOG_MAX_SMALL, per_window=PER_WINDOW
            )
            window = decision.timestamps
            if not decision.granted:
                assert decision.wait <= exact_wait(responses, now, limit) + WIDTH + 1e-6
                break
            live = [r for r in responses if r > now - WINDOW]
            assert len(live) < limit, (now, limit, live)
            now += delay  # the response arrives; the slot is held from then
            window = restamp(window, now - delay, now)
            responses.append(now)
            if round_trip and isinstance(window, Buckets):  # what a reader of the Variable gets back
                raw = json.loads(json.dumps({"width": window.width, "counts": window.counts}))
                window = Buckets(raw["width"], tuple(tuple(p) for p in raw["counts"]))
        if isinstance(window, Buckets):
            assert len(window.counts) <= PER_WINDOW + 2
        else:
            assert len(window) <= LOG_MAX_SMALL


@settings(max_examples=200, deadline=None, database=None)
@given(
    offsets=st.lists(st.floats(min_value=0, max_value=500, allow_nan=False), max_size=20),
    widths=st.tuples(st.sampled_from([0.7, 6.0, 36.0, 37.5]), st.sampled_from([0.6, 6.0, 36.0, 100.0])),
)
def test_regrid_for_another_window_never_moves_a_request_earlier(offsets, widths):
    """A changed window (another bucket width) moves every bucket to one ending at or after its end."""
    times = [T0 + o for o in offsets]
    moved = bk.regrid(bk.from_times(times, widths[0]), widths[1])
    assert len(moved) == len(times)
    ends = sorted(moved.ends())
    for cut in sorted(times):
        assert sum(1 for e in ends if e >= cut) >= sum(1 for t in times if t >= cut)
    # ... and at most one width of each grid later
    assert all(e <= max(times) + widths[0] + widths[1] for e in ends)


def test_a_bucket_end_maps_back_to_its_bucket_so_form_switches_do_not_drift():
    for width in (0.1, 0.3, 0.6, 36.0, 36.01, 7.2):
        for i in (3, 7, 49_011_000, 2_940_650_001):
            assert bk.index_of(i * width, width) == i
    window = bk.from_times([T0 + 0.05 * k for k in range(50)], 0.6)
    for _ in range(20):  # a learned lower limit and ours alternating: log, buckets, log, ...
        window = bk.from_times(bk.to_times(window, T0 + 10_000), 0.6)
    assert window == bk.from_times([T0 + 0.05 * k for k in range(50)], 0.6)
