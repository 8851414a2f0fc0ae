"""Properties of the pure policy under random interleavings (hypothesis)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_sync_provider.policy import breaker
from airflow_sync_provider.policy.backoff import retry_delay
from airflow_sync_provider.policy.breaker import (
    LEGAL_TRANSITIONS,
    BreakerSettings,
    BreakerSnapshot,
    BreakerState,
)

OPS = st.one_of(
    st.just(("before_request", 0.0)),
    st.just(("success", 0.0)),
    st.just(("failure", 0.0)),
    st.just(("neutral", 0.0)),
    st.just(("reset", 0.0)),
    # ticks on a 1/1024 s grid: exact floats, so "now - since < timeout" and "since + timeout > now" agree
    st.tuples(st.just("tick"), st.integers(0, 5 * 1024).map(lambda n: n / 1024)),
    st.tuples(st.just("tick"), st.integers(5 * 1024, 5_000 * 1024).map(lambda n: n / 1024)),
    st.tuples(st.just("tick"), st.sampled_from([1.0, 10.0, 60.0, 299 + 1023 / 1024, 300.0, 600.0])),
)


@settings(max_examples=400, deadline=None, database=None)
@given(
    ops=st.lists(OPS, max_size=80),
    threshold=st.integers(1, 6),
    reset_timeout=st.sampled_from([1.0, 60.0, 300.0]),
    max_probes=st.integers(1, 3),
)
def test_breaker_invariants_under_random_interleavings(ops, threshold, reset_timeout, max_probes):
    cfg = BreakerSettings(
        failure_threshold=threshold, reset_timeout=reset_timeout, half_open_max_attempts=max_probes
    )
    snap = BreakerSnapshot()
    now = 1_000_000.0
    seen: set[tuple[BreakerState, BreakerState]] = set()
    for op, amount in ops:
        before = snap
        moved = None
        if op == "tick":
            now += amount
            continue
        if op == "before_request":
            permit = breaker.before_request(snap, cfg, now)
            snap, moved = permit.snapshot, permit.transition
            if permit.allowed:
                assert permit.retry_at is None
            else:
                assert snap == before  # a refusal changes nothing
                assert permit.retry_at is not None and permit.retry_at > now
        elif op == "success":
            snap, moved = breaker.record_success(snap, now)
        elif op == "failure":
            snap, moved = breaker.record_failure(snap, cfg, now, "boom")
            assert snap.failure_count == before.failure_count + 1
            assert snap.last_failure_at == now
        elif op == "neutral":
            snap = breaker.record_neutral(snap)
        elif op == "reset":
            snap, moved = breaker.reset(snap, now)
            assert snap.state is BreakerState.CLOSED and snap.failure_count == 0

        if moved is not None:
            pair = (moved.source_state, moved.target_state)
            assert pair in LEGAL_TRANSITIONS
            assert moved.source_state is before.state
            assert moved.target_state is snap.state
            assert moved.at == now
            seen.add(pair)
        else:
            assert snap.state is before.state  # no state change without a transition
        assert snap.failure_count >= 0
        assert snap.probes_in_flight >= 0
        if snap.state is BreakerState.OPEN:
            assert snap.opened_at is not None
            assert snap.probes_in_flight == 0
        if snap.state is BreakerState.HALF_OPEN:
            assert 0 <= snap.probes_in_flight <= max_probes
            assert snap.half_open_since is not None
        if snap.state is BreakerState.CLOSED:
            assert snap.failure_count < threshold
            assert snap.opened_at is None
        if op == "failure" and before.state is BreakerState.CLOSED:
            assert (snap.state is BreakerState.OPEN) == (before.failure_count + 1 >= threshold)
    assert seen <= LEGAL_TRANSITIONS


@settings(max_examples=300, deadline=None, database=None)
@given(
    strategy=st.sampled_from(["proportional", "full", "decorrelated"]),
    initial=st.one_of(st.just(0.0), st.floats(1e-6, 100.0)),
    extra=st.floats(0.0, 10_000.0),
    multiplier=st.floats(1.0, 100.0),
    jitter=st.floats(0.0, 1.0),
    retries=st.lists(st.integers(0, 10_000), min_size=1, max_size=20),
    seed=st.integers(0, 2**32 - 1),
)
def test_backoff_delays_stay_within_zero_and_cap_plus_jitter(
    strategy, initial, extra, multiplier, jitter, retries, seed
):
    cap = initial + extra
    rng = random.Random(seed)
    previous = None
    bound = cap * (1 + jitter) * (1 + 1e-12)
    for retry in retries:
        delay = retry_delay(
            retry,
            strategy=strategy,
            initial=initial,
            multiplier=multiplier,
            cap=cap,
            jitter_factor=jitter,
            rng=rng,
            previous=previous,
        )
        assert 0.0 <= delay <= bound
        if strategy != "proportional":
            assert delay <= cap
        previous = delay
