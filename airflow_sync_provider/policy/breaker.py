"""Circuit breaker: closed / open / half-open over consecutive failures, as a pure state machine.

::

    closed    --failure_count >= threshold-->  open
    open      --reset_timeout elapsed------->  half-open
    half-open --probe succeeded------------->  closed
    half-open --probe failed---------------->  open (fresh timer, longer wait: see below)
    open, half-open --manual reset---------->  closed

The wait before an open breaker lets a probe through starts at ``reset_timeout`` and is multiplied by
``reset_multiplier`` after each failed probe, up to ``max_reset_timeout`` (resilience4j's
``waitIntervalFunctionInOpenState``); closing the breaker (probe success, manual reset) starts it over.

Every move goes through ``transition()``, which refuses anything not in ``LEGAL_TRANSITIONS``.
Functions return a new ``BreakerSnapshot`` and the ``Transition`` they made (or ``None``), so the
layers above can log, count and alert exactly once per transition.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


LEGAL_TRANSITIONS: frozenset[tuple[BreakerState, BreakerState]] = frozenset(
    {
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
        (BreakerState.HALF_OPEN, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.CLOSED),  # manual reset only
    }
)


class IllegalTransition(ValueError):
    """A move the transition table does not allow."""


@dataclass(frozen=True)
class BreakerSettings:
    """The breaker's knobs in plain seconds (built from ``CircuitBreakerConfig``)."""

    failure_threshold: int
    reset_timeout: float
    half_open_max_attempts: int
    reset_multiplier: float = 1.0
    max_reset_timeout: float = math.inf

    def open_wait(self, failed_probes: int) -> float:
        """Seconds an open breaker waits before a probe after ``failed_probes`` consecutive failed probes:
        ``reset_timeout * reset_multiplier ** failed_probes``, at most ``max_reset_timeout`` (never below
        ``reset_timeout``)."""
        if failed_probes <= 0 or self.reset_multiplier <= 1.0:
            return self.reset_timeout
        cap = max(self.max_reset_timeout, self.reset_timeout)
        try:
            # float power: an int multiplier and a hand-edited huge count must not build a huge int
            return min(self.reset_timeout * float(self.reset_multiplier) ** failed_probes, cap)
        except OverflowError:
            return cap


@dataclass(frozen=True)
class BreakerSnapshot:
    """Everything the breaker remembers; serialised into the source's state Variable."""

    state: BreakerState = BreakerState.CLOSED
    failure_count: int = 0
    opened_at: float | None = None
    half_open_since: float | None = None
    probes_in_flight: int = 0
    last_error: str | None = None
    last_failure_at: float | None = None
    failed_probes: int = 0
    """Consecutive failed probes since the breaker last closed (sets the open wait)."""

    def next_probe_at(self, settings: BreakerSettings) -> float | None:
        """When an open breaker lets the next probe through (``None`` unless open)."""
        if self.state is BreakerState.OPEN and self.opened_at is not None:
            return self.opened_at + settings.open_wait(self.failed_probes)
        return None


@dataclass(frozen=True)
class Transition:
    source_state: BreakerState
    target_state: BreakerState
    at: float
    reason: str


@dataclass(frozen=True)
class Permit:
    """The answer to "may I send?": ``allowed``, the new snapshot, and any transition it took."""

    allowed: bool
    snapshot: BreakerSnapshot
    transition: Transition | None = None
    retry_at: float | None = None
    """When refused: the earliest time asking again can succeed."""


def transition(
    snap: BreakerSnapshot, target: BreakerState, now: float, reason: str, **changes: object
) -> tuple[BreakerSnapshot, Transition]:
    """Move ``snap`` to ``target``; raises ``IllegalTransition`` for moves outside the table."""
    if (snap.state, target) not in LEGAL_TRANSITIONS:
        raise IllegalTransition(f"breaker cannot go from {snap.state.value} to {target.value}")
    new = dataclasses.replace(snap, state=target, **changes)  # type: ignore[arg-type]
    return new, Transition(snap.state, target, now, reason)


def before_request(snap: BreakerSnapshot, settings: BreakerSettings, now: float) -> Permit:
    """Ask permission to send one request."""
    if snap.state is BreakerState.CLOSED:
        return Permit(True, snap)
    if snap.state is BreakerState.OPEN:
        probe_at = snap.next_probe_at(settings) or now
        if now < probe_at:
            return Permit(False, snap, retry_at=probe_at)
        half, moved = transition(
            snap,
            BreakerState.HALF_OPEN,
            now,
            "reset timeout elapsed",
            half_open_since=now,
            probes_in_flight=1,
        )
        return Permit(True, half, moved)
    # half-open: a bounded number of probes; probes lost to a crash expire after reset_timeout.
    # A half-open state without ``half_open_since`` (hand-edited, or written by an older provider)
    # cannot tell how old its probes are: they count as expired, so it can never stick.
    since = snap.half_open_since
    in_flight = snap.probes_in_flight
    if since is None or now - since >= settings.reset_timeout:
        in_flight, since = 0, now
    if in_flight < settings.half_open_max_attempts:
        return Permit(True, dataclasses.replace(snap, probes_in_flight=in_flight + 1, half_open_since=since))
    return Permit(False, snap, retry_at=since + settings.reset_timeout)


def record_success(snap: BreakerSnapshot, now: float) -> tuple[BreakerSnapshot, Transition | None]:
    """A request succeeded: closed resets its count; a half-open probe closes the breaker."""
    if snap.state is BreakerState.HALF_OPEN:
        return transition(snap, BreakerState.CLOSED, now, "probe succeeded", **_CLEARED)
    if snap.state is BreakerState.CLOSED and snap.failure_count:
        return dataclasses.replace(snap, failure_count=0), None
    return snap, None


def record_failure(
    snap: BreakerSnapshot, settings: BreakerSettings, now: float, error: str
) -> tuple[BreakerSnapshot, Transition | None]:
    """A request failed in a way that counts (5xx, 408, timeout, connection error)."""
    counted = dataclasses.replace(
        snap, failure_count=snap.failure_count + 1, last_error=error, last_failure_at=now
    )
    if snap.state is BreakerState.HALF_OPEN:
        return transition(
            counted,
            BreakerState.OPEN,
            now,
            f"probe failed: {error}",
            opened_at=now,
            half_open_since=None,
            probes_in_flight=0,
            failed_probes=snap.failed_probes + 1,
        )
    if snap.state is BreakerState.CLOSED and counted.failure_count >= settings.failure_threshold:
        reason = f"{counted.failure_count} consecutive failures: {error}"
        return transition(counted, BreakerState.OPEN, now, reason, opened_at=now)
    return counted, None


def record_neutral(snap: BreakerSnapshot) -> BreakerSnapshot:
    """An answer that is neither success nor failure (429, other 4xx): a half-open probe is returned."""
    if snap.state is BreakerState.HALF_OPEN and snap.probes_in_flight > 0:
        return dataclasses.replace(snap, probes_in_flight=snap.probes_in_flight - 1)
    return snap


SEVERITY = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


def merge(
    ours: BreakerSnapshot, theirs: BreakerSnapshot, settings: BreakerSettings | None = None
) -> BreakerSnapshot:
    """Two writers' views of one breaker: the more severe state (open > half-open > closed) wins,
    with the higher failure count of the two. Two open ones: the later next probe wins (the longer
    open wait; with no ``settings``, the later ``opened_at`` with the more failed probes). Another
    tie keeps ``ours``."""
    winner = theirs if SEVERITY[theirs.state] > SEVERITY[ours.state] else ours
    if ours.state is theirs.state is BreakerState.OPEN and _probes_later(theirs, ours, settings):
        winner = theirs
    count = max(ours.failure_count, theirs.failure_count)
    return winner if winner.failure_count == count else dataclasses.replace(winner, failure_count=count)


def _probes_later(a: BreakerSnapshot, b: BreakerSnapshot, settings: BreakerSettings | None) -> bool:
    """Does open ``a`` let its next probe through later than open ``b``?"""
    if settings is not None:
        return (a.next_probe_at(settings) or 0.0) > (b.next_probe_at(settings) or 0.0)
    return ((a.opened_at or 0.0), a.failed_probes) > ((b.opened_at or 0.0), b.failed_probes)


def reset(snap: BreakerSnapshot, now: float) -> tuple[BreakerSnapshot, Transition | None]:
    """Manual reset: close the breaker and clear its count (a no-op transition when already closed)."""
    if snap.state is BreakerState.CLOSED:
        return dataclasses.replace(snap, **_CLEARED), None  # type: ignore[arg-type]
    return transition(snap, BreakerState.CLOSED, now, "manual reset", **_CLEARED)


_CLEARED: dict[str, object] = {
    "failure_count": 0,
    "opened_at": None,
    "half_open_since": None,
    "probes_in_flight": 0,
    "failed_probes": 0,
}
