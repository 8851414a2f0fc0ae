"""Sliding-window limiter: never more than ``max_requests`` requests in any ``window`` seconds.

The window is kept in one of two forms, chosen per state by ``fit`` (``acquire`` applies it):

* a **log** (a tuple of request times) while at most ``LOG_MAX`` requests can be live in it: exact;
* **buckets** (``policy.buckets.Buckets``, ``BUCKETS_PER_WINDOW`` per window) above that: counts
  per bucket, a bucket freeing only when its end (its latest possible request) has left the window.
  Never more than the limit; a slot frees at most one bucket width (1/100 of the window) late.

Entries leave by time only: a run with a tighter limit (a trigger param, a second DAG of the same
source, a lowered config) is refused while the window holds more than its limit, but it never
shortens it, so a later run with the larger limit still sees every request of the window. A
request at ``t`` frees its slot at ``t + window`` (the guard passes the window plus its safety
margin, and stamps each slot with the time its response arrived).
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_sync_provider.policy import buckets as bk
from airflow_sync_provider.policy.buckets import Buckets

LOG_MAX = 128
"""A log never holds more live requests than this; a larger limit or window uses buckets."""
BUCKETS_PER_WINDOW = 100
"""Bucket width = window / this: the most a bucketed slot frees late is 1% of the window."""

Log = tuple[float, ...]
Window = Log | Buckets


@dataclass(frozen=True)
class WindowDecision:
    granted: bool
    timestamps: Window
    """The window after the decision (with ``now`` added when granted), in the form ``fit`` chose."""
    wait: float
    """When refused: seconds until enough slots free for one more request (0 when granted)."""


def prune(timestamps: Window | list[float], now: float, window: float) -> Window:
    """Drop entries that left the window; clamp entries from the future (clock skew) to ``now``."""
    if isinstance(timestamps, Buckets):
        return bk.prune(timestamps, now, window)
    return tuple(sorted(min(t, now) for t in timestamps if t > now - window))


def clamp_future(timestamps: Window, now: float) -> tuple[Window, int, float]:
    """Entries from the future (clock skew, hand edits) moved to ``now``: the window, how many moved,
    and the furthest ahead one was (seconds; a bucket counts from its start)."""
    if isinstance(timestamps, Buckets):
        current = bk.index_of(now, timestamps.width)
        ahead = [(i, c) for i, c in timestamps.counts if i > current]
        if not ahead:
            return timestamps, 0, 0.0
        furthest = timestamps.end(ahead[-1][0] - 1) - now
        moved = bk.add(
            bk.Buckets(timestamps.width, timestamps.counts[: -len(ahead)]), now, sum(c for _, c in ahead)
        )
        return moved, sum(c for _, c in ahead), max(furthest, 0.0)
    ahead_log = [t for t in timestamps if t > now]
    if not ahead_log:
        return timestamps, 0, 0.0
    return tuple(min(t, now) for t in timestamps), len(ahead_log), max(ahead_log) - now


def fit(
    timestamps: Window | list[float],
    now: float,
    *,
    max_requests: int,
    window: float,
    log_max: int | None = None,
    per_window: int | None = None,
) -> Window:
    """The live window in the form for this limit: buckets (``per_window`` per window) when the limit
    or the live count is above ``log_max``, else a log (buckets become a log of their ends)."""
    log_max = LOG_MAX if log_max is None else log_max
    live = prune(timestamps, now, window)
    if max_requests > log_max or len(live) > log_max:
        width = window / (BUCKETS_PER_WINDOW if per_window is None else per_window)
        if isinstance(live, Buckets):
            return live if live.width == width else bk.regrid(live, width)
        return bk.from_times(live, width)
    if isinstance(live, Buckets):
        return bk.to_times(live, now)
    return live


def acquire(
    timestamps: Window | list[float],
    now: float,
    *,
    max_requests: int,
    window: float,
    log_max: int | None = None,
    per_window: int | None = None,
) -> WindowDecision:
    """Take one slot at ``now`` if the window has room; else say how long until one frees.

    Only time removes entries: a window holding more than ``max_requests`` (written under a larger
    limit) is kept whole and refuses until it has fewer than ``max_requests`` live entries.
    ``log_max`` and ``per_window`` (default: the module's ``LOG_MAX``, ``BUCKETS_PER_WINDOW``, read at
    each call) are for tests and benchmarks; the guard uses the defaults.
    """
    live = fit(
        timestamps, now, max_requests=max_requests, window=window, log_max=log_max, per_window=per_window
    )
    if len(live) < max_requests:
        grown = bk.add(live, now) if isinstance(live, Buckets) else (*live, now)
        return WindowDecision(True, grown, 0.0)
    n = len(live) - max_requests + 1  # the oldest n must leave for one more request
    free = bk.free_at(live, n, window) if isinstance(live, Buckets) else live[n - 1] + window
    return WindowDecision(False, live, max(free - now, 0.0))


def restamp(timestamps: Window, old: float, new: float) -> Window:
    """Move one entry ``old`` to ``new`` (a slot held until its response arrived); no-op if absent."""
    if isinstance(timestamps, Buckets):
        return bk.restamp(timestamps, old, new)
    if old not in timestamps:
        return timestamps
    rest = list(timestamps)
    rest.remove(old)
    return tuple(sorted((*rest, new)))


def union(ours: Window, extra: Window) -> Window:
    """Every entry of both; buckets if either is bucketed (a log moves onto the buckets' grid)."""
    if isinstance(ours, Buckets):
        return bk.union(ours, extra if isinstance(extra, Buckets) else bk.from_times(extra, ours.width))
    if isinstance(extra, Buckets):
        return bk.union(bk.from_times(ours, extra.width), extra)
    return tuple(sorted((*ours, *extra)))


def oldest(timestamps: Window) -> float | None:
    """The time the oldest entry counts as (a bucket's end), ``None`` when empty."""
    if isinstance(timestamps, Buckets):
        return timestamps.end(timestamps.counts[0][0]) if timestamps.counts else None
    return min(timestamps, default=None)


def usage(timestamps: Window | list[float], now: float, *, max_requests: int, window: float) -> float:
    """Fraction of the window in use: requests in the window / ``max_requests`` (may exceed 1)."""
    return len(prune(timestamps, now, window)) / max_requests
