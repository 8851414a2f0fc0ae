"""Sliding-window log limiter: never more than ``max_requests`` requests in any ``window`` seconds.

The log holds the times of the requests still inside the window. Entries leave it by time only:
a run with a tighter limit (a trigger param, a second DAG of the same source, a lowered config) is
refused while the log is longer than its limit, but it never shortens the log, so a later run with
the larger limit still sees every request of the window. A request at ``t`` frees its slot at
``t + window`` (the guard passes the window plus its safety margin, and stamps each slot with the
time its response arrived).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class WindowDecision:
    granted: bool
    timestamps: tuple[float, ...]
    """The log after the decision (with ``now`` appended when granted)."""
    wait: float
    """When refused: seconds until enough slots free for one more request (0 when granted)."""


def prune(timestamps: tuple[float, ...] | list[float], now: float, window: float) -> tuple[float, ...]:
    """Drop entries that left the window; clamp entries from the future (clock skew) to ``now``."""
    kept = sorted(min(t, now) for t in timestamps if t > now - window)
    return tuple(kept)


def acquire(
    timestamps: tuple[float, ...] | list[float], now: float, *, max_requests: int, window: float
) -> WindowDecision:
    """Take one slot at ``now`` if the window has room; else say how long until one frees.

    Only time removes entries: a log longer than ``max_requests`` (written under a larger limit)
    is kept whole and refuses until it has fewer than ``max_requests`` live entries.
    """
    live = prune(timestamps, now, window)
    if len(live) < max_requests:
        return WindowDecision(True, (*live, now), 0.0)
    wait = live[-max_requests] + window - now  # when all but max_requests - 1 entries have left
    return WindowDecision(False, live, max(wait, 0.0))


def restamp(timestamps: tuple[float, ...], old: float, new: float) -> tuple[float, ...]:
    """Move one entry ``old`` to ``new`` (a slot held until its response arrived); no-op if absent."""
    if old not in timestamps:
        return timestamps
    rest = list(timestamps)
    rest.remove(old)
    return tuple(sorted((*rest, new)))


def merge(
    ours: tuple[float, ...], theirs: tuple[float, ...], known: tuple[float, ...] | list[float]
) -> tuple[float, ...]:
    """Our log plus what a foreign writer added: the entries of ``theirs`` not in ``known`` (the log
    as we last read or wrote it), counted as multisets, so two requests at one instant both count
    and an entry both of us hold counts once."""
    added = Counter(theirs) - Counter(known)
    return tuple(sorted((*ours, *added.elements())))


def usage(
    timestamps: tuple[float, ...] | list[float], now: float, *, max_requests: int, window: float
) -> float:
    """Fraction of the window in use: requests in the window / ``max_requests`` (may exceed 1)."""
    return len(prune(timestamps, now, window)) / max_requests
