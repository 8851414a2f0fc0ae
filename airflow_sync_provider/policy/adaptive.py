"""The effective limit of a source whose API hides its limit, learned from refusals (issue 19, item 4).

An API that publishes no quota still answers 429 (or a rate-limit 403) past a threshold it may change
without notice. The source's *effective limit* (requests per window) starts at the configured
``max_requests`` and moves between two bounds: never above that ceiling, never below ``min_requests``.
Three algorithms behind one interface (``Adaptive``):

- ``aimd`` (additive increase, multiplicative decrease, as TCP's congestion avoidance): a refusal
  multiplies the limit by ``decrease``; each success adds ``increase / limit``, so a window's worth of
  successes adds ``increase`` requests.
- ``cubic`` (the AWS SDKs' adaptive retry mode, after TCP CUBIC): a refusal remembers the limit in
  force as ``w_max`` and multiplies it by ``beta`` (0.7); successes then move it along
  ``scale * (t - K)**3 + w_max`` (``K = cbrt(w_max * (1 - beta) / scale)``): back to ``w_max`` fast,
  a plateau there, then faster and faster probing. The AWS constants are per second (rate in
  requests per second, ``scale`` 0.4, ``t`` in seconds; ``time_unit`` stretches ``t``). Growth is
  capped by what is in use (``headroom``; AWS: twice the measured rate; ours: one slot above it).
  The default algorithm.
- ``sre`` (Google SRE's client-side throttling, "Handling Overload"): over the last ``history``
  seconds, at most ``k`` times the accepted requests are sent (the book's rejection probability
  ``max(0, (requests - k * accepts) / (requests + 1))``, taken as the rate it leaves).

Every refusal is read only once per decrease (as TCP reacts once per round trip): a refusal of a
request sent before the last decrease says nothing the decrease did not already answer. A refusal's
``in_window`` (requests in our window when it was admitted) caps the base of the decrease: the API
refused at that count, so its limit is at most that.

The state is a small JSON-safe dict (a handful of numbers; ``sre``: at most a dozen buckets), meant to
live in the source's shared state so every worker and DAG of the source obeys one limit. ``restore``
turns anything stored (corrupt, foreign, another algorithm's) into a usable state.

Pure: the clock is passed in (``now``, epoch seconds), nothing sleeps, nothing is random.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

State = dict[str, Any]
"""JSON-safe: str keys, numbers, ``None`` and lists of numbers."""

DEFAULT_ALGORITHM = "cubic"
"""Chosen by measurement: ``bench/adaptive_sim.py``, table and reasons in docs/architecture.md."""


@dataclass(frozen=True)
class Bounds:
    """Where the effective limit may go: ``floor <= limit <= ceiling`` requests per ``window`` seconds."""

    ceiling: int
    floor: int
    window: float

    def __post_init__(self) -> None:
        if not 1 <= self.floor <= self.ceiling:
            raise ValueError(
                f"adaptive bounds need 1 <= floor <= ceiling, got {self.floor} and {self.ceiling}"
            )
        if not self.window > 0:
            raise ValueError(f"adaptive bounds need a window > 0, got {self.window}")

    def clamp(self, value: float) -> float:
        return min(max(value, float(self.floor)), float(self.ceiling))


class Adaptive(Protocol):
    """One algorithm: pure functions of (state, now) -> limit or new state."""

    name: ClassVar[str]

    @property
    def bounds(self) -> Bounds: ...

    def start(self, now: float) -> State:
        """A fresh state: the limit at the ceiling, no refusal seen."""
        ...

    def limit(self, state: State, now: float) -> int:
        """The effective limit now (requests per window), within the bounds."""
        ...

    def on_success(self, state: State, now: float, *, in_window: int | None = None) -> State:
        """After an accepted request (``in_window``: requests in our window when it was admitted)."""
        ...

    def on_refused(self, state: State, now: float, *, sent_at: float, in_window: int | None = None) -> State:
        """After a refusal without a usable quota signal (429 or rate-limit 403, no remaining count)."""
        ...

    def restore(self, raw: Any, now: float) -> State:
        """``raw`` as read from the shared state when it is one of ours, else a fresh state."""
        ...


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _fresh_decrease(state: State, sent_at: float) -> bool:
    """Whether a refusal of a request sent at ``sent_at`` is news (sent at or after the last decrease)."""
    last = state.get("decreased_at")
    return last is None or sent_at >= last


def _base(current: float, in_window: int | None) -> float:
    """What a decrease starts from: the limit in force, capped by the count the API refused at."""
    return current if in_window is None else min(current, float(max(in_window, 1)))


@dataclass(frozen=True)
class Aimd:
    """Additive increase (``increase`` requests per window's worth of successes), multiplicative decrease."""

    bounds: Bounds
    decrease: float = 0.7
    increase: float = 0.0
    """Requests added per window's worth of successes; 0 means the default, ``ceiling / 10``."""
    name: ClassVar[str] = "aimd"

    @property
    def step(self) -> float:
        return self.increase if self.increase > 0 else max(self.bounds.ceiling / 10, 1.0)

    def start(self, now: float) -> State:
        return {"algorithm": self.name, "limit": float(self.bounds.ceiling), "decreased_at": None}

    def limit(self, state: State, now: float) -> int:
        return int(self.bounds.clamp(math.floor(state["limit"])))

    def on_success(self, state: State, now: float, *, in_window: int | None = None) -> State:
        current = state["limit"]
        return {**state, "limit": self.bounds.clamp(current + self.step / max(current, 1.0))}

    def on_refused(self, state: State, now: float, *, sent_at: float, in_window: int | None = None) -> State:
        if not _fresh_decrease(state, sent_at):
            return state
        lowered = self.bounds.clamp(_base(state["limit"], in_window) * self.decrease)
        return {**state, "limit": lowered, "decreased_at": now}

    def restore(self, raw: Any, now: float) -> State:
        if not isinstance(raw, Mapping) or raw.get("algorithm") != self.name:
            return self.start(now)
        limit, at = _number(raw.get("limit")), raw.get("decreased_at")
        if limit is None or (at is not None and _number(at) is None):
            return self.start(now)
        return {"algorithm": self.name, "limit": self.bounds.clamp(limit), "decreased_at": at}


@dataclass(frozen=True)
class Cubic:
    """The AWS SDKs' adaptive mode: CUBIC growth from the last refusal, ``beta`` decrease."""

    bounds: Bounds
    beta: float = 0.7
    scale: float = 0.4
    """Growth constant, requests per second per ``time_unit`` cubed (AWS: 0.4)."""
    time_unit: float = 1.0
    """Seconds per unit of CUBIC time (AWS: 1)."""
    headroom: float = 1.0
    """Growth is capped at this times the requests in use, or that count plus one if more (AWS: 2,
    twice the measured rate). 1 (chosen by ``bench/adaptive_sim.py``) opens one slot at a time above
    what is in use, so two workers probing at once cost one refusal, not two."""
    name: ClassVar[str] = "cubic"

    def start(self, now: float) -> State:
        return {
            "algorithm": self.name,
            "limit": float(self.bounds.ceiling),
            "w_max": float(self.bounds.ceiling),
            "decreased_at": None,
            "in_use": None,
        }

    def _curve(self, w_max: float, elapsed: float) -> float:
        """CUBIC at ``elapsed`` seconds after a decrease from ``w_max`` (both limits per window)."""
        per_second = self.bounds.window
        rate_max = w_max / per_second
        k = (rate_max * (1 - self.beta) / self.scale) ** (1 / 3)
        return (self.scale * (elapsed / self.time_unit - k) ** 3 + rate_max) * per_second

    def limit(self, state: State, now: float) -> int:
        return int(self.bounds.clamp(math.floor(state["limit"])))

    def on_success(self, state: State, now: float, *, in_window: int | None = None) -> State:
        at = state["decreased_at"]
        if at is None:
            return state
        grown = self._curve(state["w_max"], max(now - at, 0.0))
        in_use = in_window if in_window is not None else state.get("in_use")
        if in_use is not None:
            used = float(in_use) + 1.0  # this request included
            grown = min(grown, max(self.headroom * used, used + 1.0))
        return {**state, "limit": self.bounds.clamp(grown), "in_use": in_use}

    def on_refused(self, state: State, now: float, *, sent_at: float, in_window: int | None = None) -> State:
        if not _fresh_decrease(state, sent_at):
            return state
        w_max = _base(state["limit"], in_window)
        lowered = self.bounds.clamp(w_max * self.beta)
        return {**state, "limit": lowered, "w_max": w_max, "decreased_at": now, "in_use": in_window}

    def restore(self, raw: Any, now: float) -> State:
        if not isinstance(raw, Mapping) or raw.get("algorithm") != self.name:
            return self.start(now)
        limit, w_max = _number(raw.get("limit")), _number(raw.get("w_max"))
        at, in_use = raw.get("decreased_at"), raw.get("in_use")
        if limit is None or w_max is None or w_max <= 0:
            return self.start(now)
        if (at is not None and _number(at) is None) or (in_use is not None and _number(in_use) is None):
            return self.start(now)
        return {
            "algorithm": self.name,
            "limit": self.bounds.clamp(limit),
            "w_max": w_max,
            "decreased_at": at,
            "in_use": in_use,
        }


@dataclass(frozen=True)
class SreThrottle:
    """Google SRE client-side throttling: send at most ``k`` times the accepted rate of ``history``."""

    bounds: Bounds
    k: float = 2.0
    history: float = 120.0
    """Seconds of requests and accepts remembered (the book: two minutes)."""
    buckets: int = 12
    name: ClassVar[str] = "sre"

    @property
    def width(self) -> float:
        return self.history / self.buckets

    def start(self, now: float) -> State:
        return {"algorithm": self.name, "counts": []}

    def _live(self, state: State, now: float) -> list[list[float]]:
        return [b for b in state["counts"] if b[0] > now - self.history]

    def limit(self, state: State, now: float) -> int:
        live = self._live(state, now)
        requests = sum(b[1] for b in live)
        accepts = sum(b[2] for b in live)
        if requests <= accepts:  # nothing refused lately: no throttling
            return self.bounds.ceiling
        per_window = self.k * accepts * self.bounds.window / self.history
        return int(self.bounds.clamp(math.floor(per_window)))

    def _count(self, state: State, now: float, accepted: bool) -> State:
        start = math.floor(now / self.width) * self.width
        live = [list(b) for b in self._live(state, now)]
        if live and live[-1][0] == start:
            live[-1][1] += 1
            live[-1][2] += 1 if accepted else 0
        else:
            live.append([start, 1, 1 if accepted else 0])
        return {**state, "counts": live[-self.buckets :]}

    def on_success(self, state: State, now: float, *, in_window: int | None = None) -> State:
        return self._count(state, now, True)

    def on_refused(self, state: State, now: float, *, sent_at: float, in_window: int | None = None) -> State:
        return self._count(state, now, False)

    def restore(self, raw: Any, now: float) -> State:
        if not isinstance(raw, Mapping) or raw.get("algorithm") != self.name:
            return self.start(now)
        counts = raw.get("counts")
        if not isinstance(counts, list) or len(counts) > self.buckets:
            return self.start(now)
        for bucket in counts:
            if not (
                isinstance(bucket, list) and len(bucket) == 3 and all(_number(v) is not None for v in bucket)
            ):
                return self.start(now)
        return {"algorithm": self.name, "counts": [list(b) for b in counts]}


ALGORITHMS: dict[str, type[Aimd] | type[Cubic] | type[SreThrottle]] = {
    Aimd.name: Aimd,
    Cubic.name: Cubic,
    SreThrottle.name: SreThrottle,
}


def make(algorithm: str, bounds: Bounds, **tuning: float) -> Adaptive:
    """The algorithm named ``algorithm`` (``aimd``, ``cubic``, ``sre``) with its tuning fields."""
    try:
        kind = ALGORITHMS[algorithm]
    except KeyError:
        raise ValueError(
            f"unknown adaptive algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}"
        ) from None
    return kind(bounds, **tuning)  # type: ignore[arg-type]


def merge(ours: Mapping[str, Any] | None, theirs: Mapping[str, Any] | None) -> State | None:
    """Two workers' adaptive states (one of them a foreign write read back): the one to keep.

    The state with the later decrease wins whole: it answers the newest refusal, and a copy that grew
    since an older decrease must not undo it (two workers refused at once: each decreased once, and
    neither decrease is raised back by the other's stale growth). With the same decrease (or none on
    either side), both grew along the same curve since then, so the further grown one (the higher
    limit) is kept: a stale copy does not undo another worker's successes. ``None`` (never refused)
    yields to any state. Pure; the states need not be valid (``restore`` checks them when read).
    """
    if ours is None or theirs is None:
        kept = ours if theirs is None else theirs
        return None if kept is None else dict(kept)

    def decreased(state: Mapping[str, Any]) -> float:
        at = _number(state.get("decreased_at"))
        return -math.inf if at is None else at

    if decreased(ours) != decreased(theirs):
        return dict(ours if decreased(ours) > decreased(theirs) else theirs)
    limit = lambda state: _number(state.get("limit")) or 0.0  # noqa: E731
    return dict(ours if limit(ours) >= limit(theirs) else theirs)
