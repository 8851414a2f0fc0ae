"""Leased slots: several window slots reserved in one state write, spent without writing.

A lease is ``slots`` requests entered in the sync's share of every window at the time ``at`` it was
taken, exactly as that many sent requests would be. A request sent under it is already counted, so
it costs no state call; its stored stamp ``at`` holds it for the window plus the safety margin from
``at``. That covers the request at the API only while its response arrives within the margin of
``at``, so a lease is usable only while the next response is expected by then (a slower response is
re-stamped in the store at once, as a single slot's is). A crashed worker's lease stays in the state
and frees like sent requests; a sync returns its unused slots at its next write (a new lease, a
deferral, the end).

``lease_size`` picks how many: the pages expected before the margin runs out (from the page rate so
far), at most a quarter of the room left in the fullest window, at most ``LEASE_MAX``; one when the
rate is not known yet (the first request of a sync) or the room is small.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

LEASE_MAX = 64
"""The most slots one lease reserves."""
ROOM_SHARE = 4
"""A lease takes at most 1/``ROOM_SHARE`` of the slots left in the fullest window (a nearly full or
small window: one slot at a time)."""


@dataclass
class Lease:
    """Slots reserved in one write: ``slots`` requests stamped ``at``, ``used`` of them sent."""

    at: float
    slots: int
    limit: int
    """The admission limit it was sized under: a lower one since (learned) ends it."""
    used: int = 0
    ended: bool = False
    """No more requests under it (a window was learned since); its unused slots go back at the next
    write."""

    @property
    def unused(self) -> int:
        return self.slots - self.used

    def end(self) -> None:
        self.ended = True

    def usable(self, now: float, margin: float, response: float, limit: int) -> bool:
        """A slot is left, the next response is expected within the margin of ``at``, and the limit
        has not been lowered since."""
        if self.ended or self.unused <= 0 or limit < self.limit:
            return False
        return now + response <= self.at + margin


RECENT = 8
"""How many of the latest intervals and response times the page rate is judged by."""


@dataclass
class PageRate:
    """How fast this sync asks for slots and how long its responses take (for ``lease_size``): the
    shortest of the latest ``RECENT`` of each. Optimistic on purpose: a pause (a batch being loaded, a
    slow page) must not shrink the next lease to one slot, and a lease sized too large only expires
    with slots unused, which go back at the next write."""

    last_admitted: float | None = None
    intervals: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))
    """Seconds between consecutive admissions (empty before the second)."""
    responses: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))
    """Seconds from an admission to its response."""

    @property
    def interval(self) -> float | None:
        return min(self.intervals, default=None)

    @property
    def response(self) -> float:
        return min(self.responses, default=0.0)

    def admitted(self, now: float) -> None:
        if self.last_admitted is not None:
            self.intervals.append(max(now - self.last_admitted, 0.0))
        self.last_admitted = now

    def answered(self, sent: float, now: float) -> None:
        self.responses.append(max(now - sent, 0.0))


def lease_size(rate: PageRate, *, room: int, margin: float) -> int:
    """How many slots to reserve now (at least one; ``room`` is the slots left in the fullest window)."""
    if rate.interval is None:
        return 1
    by_room = room // ROOM_SHARE
    spare = margin - rate.response
    if spare <= 0:
        return 1
    by_rate = LEASE_MAX if rate.interval <= 0 else 1 + math.floor(spare / rate.interval)
    return max(1, min(by_room, by_rate, LEASE_MAX))
