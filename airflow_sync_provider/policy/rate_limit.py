"""Sliding-window log limiter: never more than ``max_requests`` requests in any ``window`` seconds.

The log holds the send times of the requests still inside the window, so it never has more than
``max_requests`` entries. A request at ``t`` frees its slot at ``t + window``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WindowDecision:
    granted: bool
    timestamps: tuple[float, ...]
    """The log after the decision (with ``now`` appended when granted)."""
    wait: float
    """When refused: seconds until the oldest slot frees (0 when granted)."""


def prune(timestamps: tuple[float, ...] | list[float], now: float, window: float) -> tuple[float, ...]:
    """Drop entries that left the window; clamp entries from the future (clock skew) to ``now``."""
    kept = sorted(min(t, now) for t in timestamps if t > now - window)
    return tuple(kept)


def acquire(
    timestamps: tuple[float, ...] | list[float], now: float, *, max_requests: int, window: float
) -> WindowDecision:
    """Take one slot at ``now`` if the window has room; else say how long until one frees."""
    live = prune(timestamps, now, window)
    if len(live) > max_requests:  # a stored log from a larger limit: keep the newest
        live = live[-max_requests:]
    if len(live) < max_requests:
        return WindowDecision(True, (*live, now), 0.0)
    wait = live[-max_requests] + window - now
    return WindowDecision(False, live, max(wait, 0.0))


def usage(
    timestamps: tuple[float, ...] | list[float], now: float, *, max_requests: int, window: float
) -> float:
    """Fraction of the window in use: requests in the window / ``max_requests``."""
    return len(prune(timestamps, now, window)) / max_requests
