"""The exact form of a window (``policy.window``): a tuple of request times, ascending."""

from __future__ import annotations

from collections import Counter
from typing import Any

from airflow_sync_provider.policy import buckets as bk
from airflow_sync_provider.policy.window import Tally, Window

DECIMALS = 6
"""Stored times are rounded to microseconds: a log read back equals the one written."""


class Log(tuple[float, ...], Window):
    """Request times; equal to the plain tuple of the same times."""

    __slots__ = ()

    @classmethod
    def of(cls, times: Any) -> Log:
        return cls(sorted(times))

    @property
    def grid(self) -> float | None:
        return None

    def prune(self, now: float, window: float) -> Log:
        return Log.of(min(t, now) for t in self if t > now - window)

    def admit(self, now: float, count: int = 1) -> Log:
        return Log.of((*self, *[now] * count))

    def free_at(self, n: int, window: float) -> float:
        if not 1 <= n <= len(self):
            raise ValueError(f"n must be 1-{len(self)}, got {n}")
        return sorted(self)[n - 1] + window

    def restamp(self, old: float, new: float) -> Log:
        if old not in self:
            return self
        rest = list(self)
        rest.remove(old)
        return Log.of((*rest, new))

    def clamp_future(self, now: float) -> tuple[Log, int, float]:
        ahead = [t for t in self if t > now]
        if not ahead:
            return self, 0, 0.0
        return Log.of(min(t, now) for t in self), len(ahead), max(ahead) - now

    def oldest(self) -> float | None:
        return min(self, default=None)

    def as_buckets(self, width: float) -> Window:
        return bk.from_times(self, width)

    def as_log(self, now: float) -> Log:
        return self

    def serialise(self, keep: int | None = None) -> dict[str, Any]:
        return {"window": self.rounded(keep)}

    def share_json(self, seq: int) -> list[Any]:
        return [seq, self.rounded()]

    def rounded(self, keep: int | None = None) -> list[float]:
        """The newest ``keep`` times (all when ``None``), rounded as stored."""
        ordered = sorted(self)
        return [
            round(t, DECIMALS) for t in (ordered if keep is None else ordered[max(len(ordered) - keep, 0) :])
        ]

    def tally(self) -> Tally:
        return Counter(self)

    def from_tally(self, tally: Tally) -> Log:
        return Log.of(tally.elements())
