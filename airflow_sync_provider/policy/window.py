"""One window type: the requests a source made, in one of two forms behind one interface.

* ``policy.log.Log``: an exact log of request times (a tuple), for small limits;
* ``policy.buckets.Buckets``: request counts per bucket, for large limits and long windows
  (conservative: a bucketed request is held until its bucket's end has left the window).

Both answer the same questions (``in_window``, ``room``, ``admit``, ``merge``, ``prune``,
``serialise``, ...), so callers never ask which form they hold; ``tests/unit/test_window_contract.py``
runs one contract against both. Every conversion may move an entry later, never earlier.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from typing import Any

Tally = Counter[Any]
"""Requests per key: a time (log) or a bucket index (buckets)."""

SUM: Callable[[Tally, Tally], Tally] = lambda a, b: a + b  # noqa: E731
"""Every request of both windows (two writers' requests)."""
MOST: Callable[[Tally, Tally], Tally] = lambda a, b: a | b  # noqa: E731
"""Per key the larger count: two copies of the same requests, none counted twice."""
LESS: Callable[[Tally, Tally], Tally] = lambda a, b: a - b  # noqa: E731
"""What the first holds beyond the second (never negative)."""


class Window(ABC):
    """Requests in a sliding window, exact (``Log``) or bucketed (``Buckets``)."""

    @abstractmethod
    def __len__(self) -> int:
        """Every request held (pruned or not)."""

    @property
    @abstractmethod
    def grid(self) -> float | None:
        """The bucket width, or ``None`` for an exact log."""

    @abstractmethod
    def prune(self, now: float, window: float) -> Window:
        """Requests that left ``window`` dropped; a request from the future (skew) counts as ``now``."""

    @abstractmethod
    def admit(self, now: float, count: int = 1) -> Window:
        """With ``count`` more requests made at ``now``."""

    @abstractmethod
    def free_at(self, n: int, window: float) -> float:
        """When the oldest ``n`` requests (``1 <= n <= len``) have all left ``window``."""

    @abstractmethod
    def restamp(self, old: float, new: float) -> Window:
        """One request ``old`` held from ``new`` instead (its response time); no-op if absent."""

    @abstractmethod
    def clamp_future(self, now: float) -> tuple[Window, int, float]:
        """Requests from the future moved to ``now``: the window, how many moved, and the furthest
        ahead one was (seconds)."""

    @abstractmethod
    def oldest(self) -> float | None:
        """The time the oldest request counts as, ``None`` when empty."""

    @abstractmethod
    def as_buckets(self, width: float) -> Window:
        """The same requests in buckets of ``width`` (each to a bucket ending no earlier)."""

    @abstractmethod
    def as_log(self, now: float) -> Window:
        """The same requests as an exact log (a bucket's requests at its end, at most ``now``)."""

    @abstractmethod
    def serialise(self, keep: int | None = None) -> dict[str, Any]:
        """The state's JSON keys for this window (``window``, and ``window_buckets`` when bucketed);
        a log keeps its newest ``keep`` entries."""

    @abstractmethod
    def share_json(self, seq: int) -> list[Any]:
        """A writer's share in ``window_shares``: ``[seq, log]`` or ``[seq, width, counts]``."""

    @abstractmethod
    def tally(self) -> Tally:
        """Requests per key (a time, or a bucket index on ``grid``)."""

    @abstractmethod
    def from_tally(self, tally: Tally) -> Window:
        """A window of this form (and grid) holding ``tally``."""

    def in_window(self, now: float, window: float) -> int:
        """How many requests are live in ``window`` at ``now``."""
        return len(self.prune(now, window))

    def room(self, now: float, *, max_requests: int, window: float) -> float:
        """0 when one more request fits under ``max_requests`` per ``window``; else seconds until one
        does. Only time removes requests: a window over the limit waits until it is under."""
        live = self.prune(now, window)
        if len(live) < max_requests:
            return 0.0
        return max(live.free_at(len(live) - max_requests + 1, window) - now, 0.0)

    def like(self, other: Window, now: float) -> Window:
        """The same requests in ``other``'s form (its grid when bucketed)."""
        return self.as_log(now) if other.grid is None else self.as_buckets(other.grid)

    def merge(self, other: Window, how: Callable[[Tally, Tally], Tally] = SUM) -> Window:
        """Both windows on one grid (buckets if either is bucketed, ours first), combined by ``how``."""
        grid = self.grid if self.grid is not None else other.grid
        if grid is None:
            return self.from_tally(how(self.tally(), other.tally()))
        mine = self.as_buckets(grid)
        return mine.from_tally(how(mine.tally(), other.as_buckets(grid).tally()))
