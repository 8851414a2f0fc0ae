"""policy.breaker: the transition table and the closed / open / half-open machine, on a fake clock."""

from __future__ import annotations

import itertools

import pytest

from airflow_sync_provider.policy.breaker import (
    LEGAL_TRANSITIONS,
    BreakerSettings,
    BreakerSnapshot,
    BreakerState,
    IllegalTransition,
    Transition,
    before_request,
    merge,
    record_failure,
    record_neutral,
    record_success,
    reset,
    transition,
)

CLOSED, OPEN, HALF = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
SETTINGS = BreakerSettings(failure_threshold=5, reset_timeout=300.0, half_open_max_attempts=1)
T0 = 1_000_000.0

EXPECTED_LEGAL = {
    (CLOSED, OPEN),
    (OPEN, HALF),
    (HALF, CLOSED),
    (HALF, OPEN),
    (OPEN, CLOSED),
}


def opened(at: float = T0, count: int = 5) -> BreakerSnapshot:
    return BreakerSnapshot(
        state=OPEN, failure_count=count, opened_at=at, last_error="boom", last_failure_at=at
    )


def half_open(since: float, in_flight: int = 1, count: int = 5) -> BreakerSnapshot:
    return BreakerSnapshot(
        state=HALF,
        failure_count=count,
        opened_at=since - 300,
        half_open_since=since,
        probes_in_flight=in_flight,
    )


# --- transition table -------------------------------------------------------------------------------


def test_legal_transitions_are_exactly_the_documented_table():
    assert set(LEGAL_TRANSITIONS) == EXPECTED_LEGAL


@pytest.mark.parametrize(
    ("source", "target"),
    list(itertools.product(BreakerState, BreakerState)),
    ids=lambda s: s.value,
)
def test_transition_for_every_pair(source, target):
    snap = BreakerSnapshot(state=source, failure_count=2, opened_at=10.0)
    if (source, target) in EXPECTED_LEGAL:
        new, moved = transition(snap, target, 42.0, "why", failure_count=7)
        assert new.state is target
        assert new.failure_count == 7
        assert new.opened_at == 10.0  # untouched fields carry over
        assert moved == Transition(source, target, 42.0, "why")
        assert snap.state is source  # snapshots are immutable
    else:
        with pytest.raises(IllegalTransition, match=f"from {source.value} to {target.value}"):
            transition(snap, target, 42.0, "why")


def test_illegal_transition_is_a_value_error():
    assert issubclass(IllegalTransition, ValueError)


# --- closed -----------------------------------------------------------------------------------------


def test_closed_admits_requests_without_transition():
    snap = BreakerSnapshot(failure_count=3)
    permit = before_request(snap, SETTINGS, T0)
    assert permit.allowed is True
    assert permit.snapshot == snap
    assert permit.transition is None
    assert permit.retry_at is None


def test_closed_counts_consecutive_failures_and_opens_exactly_at_threshold():
    snap = BreakerSnapshot()
    for i in range(1, 5):
        snap, moved = record_failure(snap, SETTINGS, T0 + i, f"HTTP 50{i}")
        assert moved is None
        assert snap.state is CLOSED
        assert snap.failure_count == i
        assert snap.last_error == f"HTTP 50{i}"
        assert snap.last_failure_at == T0 + i
        assert snap.opened_at is None
    snap, moved = record_failure(snap, SETTINGS, T0 + 5, "timeout")
    assert snap.state is OPEN
    assert snap.failure_count == 5
    assert snap.opened_at == T0 + 5
    assert moved is not None
    assert (moved.source_state, moved.target_state, moved.at) == (CLOSED, OPEN, T0 + 5)
    assert "5 consecutive failures" in moved.reason
    assert "timeout" in moved.reason


def test_threshold_one_opens_on_first_failure():
    settings = BreakerSettings(failure_threshold=1, reset_timeout=10.0, half_open_max_attempts=1)
    snap, moved = record_failure(BreakerSnapshot(), settings, 5.0, "x")
    assert snap.state is OPEN
    assert moved == Transition(CLOSED, OPEN, 5.0, "1 consecutive failures: x")


def test_success_in_closed_resets_the_count():
    snap = BreakerSnapshot()
    for i in range(4):
        snap, _ = record_failure(snap, SETTINGS, T0 + i, "e")
    assert snap.failure_count == 4
    snap, moved = record_success(snap, T0 + 10)
    assert moved is None
    assert snap.state is CLOSED
    assert snap.failure_count == 0
    # counting starts over: four more failures do not open it
    for i in range(4):
        snap, moved = record_failure(snap, SETTINGS, T0 + 20 + i, "e")
        assert moved is None
    assert snap.state is CLOSED
    assert snap.failure_count == 4


def test_success_in_closed_with_zero_count_is_a_no_op():
    snap = BreakerSnapshot(last_error="old")
    assert record_success(snap, T0) == (snap, None)


# --- open -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("elapsed", [0.0, 1.0, 299.0, 299.999])
def test_open_refuses_before_reset_timeout(elapsed):
    snap = opened()
    permit = before_request(snap, SETTINGS, T0 + elapsed)
    assert permit.allowed is False
    assert permit.snapshot == snap
    assert permit.transition is None
    assert permit.retry_at == T0 + 300.0


def test_open_moves_to_half_open_exactly_at_reset_timeout():
    snap = opened()
    permit = before_request(snap, SETTINGS, T0 + 300.0)
    assert permit.allowed is True
    assert permit.transition == Transition(OPEN, HALF, T0 + 300.0, "reset timeout elapsed")
    assert permit.snapshot.state is HALF
    assert permit.snapshot.probes_in_flight == 1
    assert permit.snapshot.half_open_since == T0 + 300.0
    assert permit.snapshot.failure_count == 5
    assert permit.retry_at is None


def test_open_long_after_reset_timeout_also_probes():
    permit = before_request(opened(), SETTINGS, T0 + 10_000.0)
    assert permit.allowed is True
    assert permit.snapshot.state is HALF
    assert permit.snapshot.half_open_since == T0 + 10_000.0


def test_failure_while_open_counts_without_transition():
    snap, moved = record_failure(opened(), SETTINGS, T0 + 1, "late")
    assert moved is None
    assert snap.state is OPEN
    assert snap.failure_count == 6
    assert snap.opened_at == T0  # the timer is not restarted by in-flight stragglers


def test_success_while_open_changes_nothing():
    snap = opened()
    assert record_success(snap, T0 + 1) == (snap, None)


# --- half-open --------------------------------------------------------------------------------------


def test_half_open_admits_max_attempts_probes_then_refuses():
    settings = BreakerSettings(failure_threshold=5, reset_timeout=300.0, half_open_max_attempts=3)
    permit = before_request(opened(), settings, T0 + 300)
    assert permit.allowed and permit.snapshot.probes_in_flight == 1
    snap = permit.snapshot
    for expected in (2, 3):
        permit = before_request(snap, settings, T0 + 301)
        assert permit.allowed is True
        assert permit.transition is None
        assert permit.snapshot.probes_in_flight == expected
        snap = permit.snapshot
    permit = before_request(snap, settings, T0 + 302)
    assert permit.allowed is False
    assert permit.snapshot == snap
    assert permit.retry_at == T0 + 300 + 300


def test_single_probe_default_refuses_the_second_request():
    snap = before_request(opened(), SETTINGS, T0 + 300).snapshot
    permit = before_request(snap, SETTINGS, T0 + 300.5)
    assert permit.allowed is False
    assert permit.retry_at == T0 + 600


def test_probe_success_closes_with_count_zero():
    snap = before_request(opened(), SETTINGS, T0 + 300).snapshot
    closed, moved = record_success(snap, T0 + 301)
    assert moved == Transition(HALF, CLOSED, T0 + 301, "probe succeeded")
    assert closed.state is CLOSED
    assert closed.failure_count == 0
    assert closed.opened_at is None
    assert closed.half_open_since is None
    assert closed.probes_in_flight == 0


def test_probe_failure_reopens_with_a_fresh_timer():
    snap = before_request(opened(), SETTINGS, T0 + 300).snapshot
    again, moved = record_failure(snap, SETTINGS, T0 + 302, "HTTP 503")
    assert moved == Transition(HALF, OPEN, T0 + 302, "probe failed: HTTP 503")
    assert again.state is OPEN
    assert again.opened_at == T0 + 302
    assert again.half_open_since is None
    assert again.probes_in_flight == 0
    assert again.failure_count == 6
    assert again.last_error == "HTTP 503"
    assert again.next_probe_at(SETTINGS) == T0 + 602
    assert before_request(again, SETTINGS, T0 + 601).allowed is False
    assert before_request(again, SETTINGS, T0 + 602).allowed is True


def test_record_neutral_returns_a_probe():
    snap = before_request(opened(), SETTINGS, T0 + 300).snapshot
    neutral = record_neutral(snap)
    assert neutral.state is HALF
    assert neutral.probes_in_flight == 0
    permit = before_request(neutral, SETTINGS, T0 + 301)
    assert permit.allowed is True
    assert permit.snapshot.probes_in_flight == 1


@pytest.mark.parametrize(
    "snap",
    [BreakerSnapshot(failure_count=2), opened(), half_open(T0, in_flight=0)],
    ids=["closed", "open", "half-open-idle"],
)
def test_record_neutral_is_a_no_op_otherwise(snap):
    assert record_neutral(snap) == snap


def test_crashed_probe_expires_after_reset_timeout_in_half_open():
    snap = half_open(since=T0, in_flight=1)  # its probe's worker died: nobody will record it
    assert before_request(snap, SETTINGS, T0 + 299.9).allowed is False
    permit = before_request(snap, SETTINGS, T0 + 300)
    assert permit.allowed is True
    assert permit.transition is None
    assert permit.snapshot.state is HALF
    assert permit.snapshot.probes_in_flight == 1
    assert permit.snapshot.half_open_since == T0 + 300
    # the new probe's lease runs from now
    assert before_request(permit.snapshot, SETTINGS, T0 + 599).retry_at == T0 + 600


def test_half_open_without_since_is_treated_as_just_now():
    snap = BreakerSnapshot(state=HALF, failure_count=5, probes_in_flight=0)
    permit = before_request(snap, SETTINGS, T0)
    assert permit.allowed is True
    assert permit.snapshot.half_open_since == T0
    assert permit.snapshot.probes_in_flight == 1


def test_half_open_without_since_and_a_full_probe_count_cannot_stick():
    """Probes of unknown age (no ``half_open_since``) count as expired: a probe goes through now,
    and its lease is stored, so the breaker cannot stay half-open and refusing forever."""
    snap = BreakerSnapshot(state=HALF, failure_count=5, probes_in_flight=10**9)
    permit = before_request(snap, SETTINGS, T0)
    assert (permit.allowed, permit.transition) == (True, None)
    assert (permit.snapshot.half_open_since, permit.snapshot.probes_in_flight) == (T0, 1)
    assert before_request(permit.snapshot, SETTINGS, T0 + 10).retry_at == T0 + 300


# --- merging a foreign write ------------------------------------------------------------------------


def test_merge_keeps_the_more_severe_state_with_the_higher_count():
    opened = BreakerSnapshot(state=OPEN, failure_count=5, opened_at=T0, last_error="503")
    stale = BreakerSnapshot()  # a sync that read "closed 0" before the other one opened the breaker
    assert merge(stale, opened) == opened
    assert merge(opened, stale) == opened
    half = half_open(since=T0, in_flight=1)
    assert merge(half, opened) == opened
    counting = BreakerSnapshot(failure_count=3, last_error="timeout")
    assert merge(BreakerSnapshot(failure_count=1), counting).failure_count == 3
    # the more severe state wins even with a lower count, and takes the higher count along
    merged = merge(BreakerSnapshot(failure_count=7), half)
    assert (merged.state, merged.failure_count, merged.half_open_since) == (HALF, 7, T0)


# --- manual reset and next_probe_at -----------------------------------------------------------------


def test_manual_reset_from_open():
    snap, moved = reset(opened(), T0 + 5)
    assert moved == Transition(OPEN, CLOSED, T0 + 5, "manual reset")
    assert (snap.state, snap.failure_count, snap.opened_at, snap.half_open_since, snap.probes_in_flight) == (
        CLOSED,
        0,
        None,
        None,
        0,
    )
    assert snap.last_error == "boom"  # history is kept for the dashboard


def test_manual_reset_from_half_open():
    snap, moved = reset(half_open(T0, in_flight=1), T0 + 5)
    assert moved == Transition(HALF, CLOSED, T0 + 5, "manual reset")
    assert (snap.state, snap.failure_count, snap.probes_in_flight, snap.half_open_since) == (
        CLOSED,
        0,
        0,
        None,
    )


def test_manual_reset_from_closed_clears_count_without_transition():
    snap, moved = reset(BreakerSnapshot(failure_count=4), T0)
    assert moved is None
    assert snap == BreakerSnapshot()


def test_next_probe_at():
    assert opened(at=100.0).next_probe_at(SETTINGS) == 400.0
    assert BreakerSnapshot().next_probe_at(SETTINGS) is None
    assert half_open(T0).next_probe_at(SETTINGS) is None
    assert BreakerSnapshot(state=OPEN).next_probe_at(SETTINGS) is None


def test_full_cycle_closed_open_half_open_closed():
    snap = BreakerSnapshot()
    transitions = []
    t = T0
    for _ in range(5):
        snap, moved = record_failure(snap, SETTINGS, t, "e")
        transitions.append(moved)
        t += 1
    permit = before_request(snap, SETTINGS, t + 300)
    transitions.append(permit.transition)
    snap, moved = record_success(permit.snapshot, t + 301)
    transitions.append(moved)
    moves = [(m.source_state, m.target_state) for m in transitions if m is not None]
    assert moves == [(CLOSED, OPEN), (OPEN, HALF), (HALF, CLOSED)]
    assert snap == BreakerSnapshot(last_error="e", last_failure_at=T0 + 4)
