"""Bucketed window: per-bucket request counts for large limits, conservative by construction.

Bucket ``i`` of width ``w`` holds the requests made in ``((i - 1) * w, i * w]``; it is *stamped*
with its end ``i * w``, the latest time any of its requests can have been made. A bucket frees
only when that end has left the window, so no request is ever counted as gone before it is
(never more than the limit), and a request frees at most one bucket width later than in the
exact log. Every conversion below keeps that rule: an entry may move later, never earlier.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from airflow_sync_provider.policy.window import Tally, Window


@dataclass(frozen=True)
class Buckets(Window):
    width: float
    """Seconds per bucket (> 0)."""
    counts: tuple[tuple[int, int], ...] = ()
    """``(index, count)`` pairs, ascending index, every count > 0."""

    def __post_init__(self) -> None:
        if not (self.width > 0 and math.isfinite(self.width)):
            raise ValueError(f"bucket width must be a positive number of seconds, got {self.width!r}")

    def __len__(self) -> int:
        return sum(c for _, c in self.counts)

    def end(self, index: int) -> float:
        return index * self.width

    def ends(self) -> tuple[float, ...]:
        """One stamp per request: its bucket's end (what the bucket counts as its time)."""
        return tuple(self.end(i) for i, c in self.counts for _ in range(c))

    # the Window interface (policy.window), by the functions below

    @property
    def grid(self) -> float | None:
        return self.width

    def prune(self, now: float, window: float) -> Buckets:
        return prune(self, now, window)

    def admit(self, now: float, count: int = 1) -> Buckets:
        return add(self, now, count)

    def free_at(self, n: int, window: float) -> float:
        return free_at(self, n, window)

    def restamp(self, old: float, new: float) -> Buckets:
        return restamp(self, old, new)

    def clamp_future(self, now: float) -> tuple[Buckets, int, float]:
        """A bucket starting after ``now`` moves to now's; how far ahead counts from its start."""
        current = index_of(now, self.width)
        ahead = [(i, c) for i, c in self.counts if i > current]
        if not ahead:
            return self, 0, 0.0
        moved = sum(c for _, c in ahead)
        furthest = self.end(ahead[-1][0] - 1) - now
        return add(Buckets(self.width, self.counts[: -len(ahead)]), now, moved), moved, max(furthest, 0.0)

    def oldest(self) -> float | None:
        return self.end(self.counts[0][0]) if self.counts else None

    def as_buckets(self, width: float) -> Buckets:
        return regrid(self, width)

    def as_log(self, now: float) -> Window:
        from airflow_sync_provider.policy.log import Log  # log.py builds on this module

        return Log(to_times(self, now))

    def serialise(self, keep: int | None = None) -> dict[str, Any]:
        return {"window": [], "window_buckets": {"width": self.width, "counts": self.counts}}

    def share_json(self, seq: int) -> list[Any]:
        return [seq, self.width, self.counts]

    def tally(self) -> Tally:
        return Counter(dict(self.counts))

    def from_tally(self, tally: Tally) -> Buckets:
        return of(tally, self.width)


def index_of(t: float, width: float) -> int:
    """The first bucket whose end is at or after ``t`` (float-safe: ``index * width >= t`` always, and
    a bucket's own end maps back to it, so a log of bucket ends converts back without drifting)."""
    i = math.ceil(t / width)
    while i * width < t:
        i += 1
    while (i - 1) * width >= t:
        i -= 1
    return i


def of(counter: Counter[int] | dict[int, int], width: float) -> Buckets:
    return Buckets(width, tuple(sorted((i, c) for i, c in counter.items() if c > 0)))


def from_times(times: Iterable[float], width: float) -> Buckets:
    """Requests at ``times`` counted into buckets of ``width`` (each bucket ends at or after them)."""
    return of(Counter(index_of(t, width) for t in times), width)


def regrid(buckets: Buckets, width: float) -> Buckets:
    """The same requests on another grid: each bucket goes to the new bucket containing its end."""
    if buckets.width == width:
        return buckets
    counter: Counter[int] = Counter()
    for i, c in buckets.counts:
        counter[index_of(buckets.end(i), width)] += c
    return of(counter, width)


def to_times(buckets: Buckets, now: float) -> tuple[float, ...]:
    """A log of the same requests, each at its bucket's end (at most ``now``: none is in the future)."""
    return tuple(min(t, now) for t in buckets.ends())


def prune(buckets: Buckets, now: float, window: float) -> Buckets:
    """Drop buckets whose end left the window; a bucket starting after ``now`` (skew) moves to now's."""
    current = index_of(now, buckets.width)
    kept: list[tuple[int, int]] = []
    for i, c in buckets.counts:  # ascending, and so is min(i, current): one pass, no re-sort
        if buckets.end(i) > now - window:
            i = min(i, current)
            if kept and kept[-1][0] == i:
                c += kept.pop()[1]
            kept.append((i, c))
    return Buckets(buckets.width, tuple(kept))


def add(buckets: Buckets, t: float, count: int = 1) -> Buckets:
    counter = Counter(dict(buckets.counts))
    counter[index_of(t, buckets.width)] += count
    return of(counter, buckets.width)


def free_at(buckets: Buckets, n: int, window: float) -> float:
    """When the oldest ``n`` requests (``1 <= n <= len``) have all left the window."""
    seen = 0
    for i, c in buckets.counts:
        seen += c
        if seen >= n:
            return buckets.end(i) + window
    raise ValueError(f"n must be at most {len(buckets)}, got {n}")


def restamp(buckets: Buckets, old: float, new: float) -> Buckets:
    """Move one request from ``old``'s bucket to ``new``'s; no-op if that bucket is empty."""
    counter = Counter(dict(buckets.counts))
    source = index_of(old, buckets.width)
    if counter[source] <= 0:
        return buckets
    counter[source] -= 1
    counter[index_of(new, buckets.width)] += 1
    return of(counter, buckets.width)


def union(ours: Buckets, extra: Buckets) -> Buckets:
    """Every request of both (``extra`` moved onto our grid, each to a bucket ending no earlier)."""
    return of(ours.tally() + regrid(extra, ours.width).tally(), ours.width)
