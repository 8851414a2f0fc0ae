"""Sliding-window limiter: never more than ``max_requests`` requests in any ``window`` seconds.

The window (``policy.window.Window``) is kept in one of two forms, chosen per state by ``fit``
(``acquire`` applies it):

* a **log** (``policy.log.Log``, request times) while at most ``LOG_MAX`` requests can be live in it:
  exact;
* **buckets** (``policy.buckets.Buckets``, ``BUCKETS_PER_WINDOW`` per window) above that: counts
  per bucket, a bucket freeing only when its end (its latest possible request) has left the window.
  Never more than the limit; a slot frees at most one bucket width (1/100 of the window) late.

The functions below take a plain tuple or list of times as a log too.

Entries leave by time only: a run with a tighter limit (a trigger param, a second DAG of the same
source, a lowered config) is refused while the window holds more than its limit, but it never
shortens it, so a later run with the larger limit still sees every request of the window. A
request at ``t`` frees its slot at ``t + window`` (the guard passes the window plus its safety
margin, and stamps each slot with the time its response arrived).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from airflow_sync_provider.policy.log import Log
from airflow_sync_provider.policy.window import SUM, Window

LOG_MAX = 128
"""A log never holds more live requests than this; a larger limit or window uses buckets."""
BUCKETS_PER_WINDOW = 100
"""Bucket width = window / this: the most a bucketed slot frees late is 1% of the window."""

Windowish = Window | Iterable[float]
"""A window, or request times (a log)."""


def as_window(timestamps: Windowish) -> Window:
    """``timestamps`` as a window: a plain tuple or list of times is a log."""
    return timestamps if isinstance(timestamps, Window) else Log.of(timestamps)


@dataclass(frozen=True)
class WindowDecision:
    granted: bool
    timestamps: Window
    """The window after the decision (with ``now`` added when granted), in the form ``fit`` chose."""
    wait: float
    """When refused: seconds until enough slots free for one more request (0 when granted)."""


def prune(timestamps: Windowish, now: float, window: float) -> Window:
    """Drop entries that left the window; clamp entries from the future (clock skew) to ``now``."""
    return as_window(timestamps).prune(now, window)


def clamp_future(timestamps: Windowish, now: float) -> tuple[Window, int, float]:
    """Entries from the future (clock skew, hand edits) moved to ``now``: the window, how many moved,
    and the furthest ahead one was (seconds; a bucket counts from its start)."""
    return as_window(timestamps).clamp_future(now)


def fit(
    timestamps: Windowish,
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
        return live.as_buckets(window / (BUCKETS_PER_WINDOW if per_window is None else per_window))
    return live.as_log(now)


def acquire(
    timestamps: Windowish,
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
        return WindowDecision(True, live.admit(now), 0.0)
    return WindowDecision(False, live, live.room(now, max_requests=max_requests, window=window))


def restamp(timestamps: Windowish, old: float, new: float) -> Window:
    """Move one entry ``old`` to ``new`` (a slot held until its response arrived); no-op if absent."""
    return as_window(timestamps).restamp(old, new)


def union(ours: Windowish, extra: Windowish) -> Window:
    """Every entry of both; buckets if either is bucketed (a log moves onto the buckets' grid)."""
    return as_window(ours).merge(as_window(extra), SUM)


def oldest(timestamps: Windowish) -> float | None:
    """The time the oldest entry counts as (a bucket's end), ``None`` when empty."""
    return as_window(timestamps).oldest()


def usage(timestamps: Windowish, now: float, *, max_requests: int, window: float) -> float:
    """Fraction of the window in use: requests in the window / ``max_requests`` (may exceed 1)."""
    return as_window(timestamps).in_window(now, window) / max_requests
