"""Quota: does a source ever get more than ``max_requests`` requests in any window?

A discrete-event simulation (integer milliseconds, no sleeping). ``runs`` concurrent runs of one
source each loop: idle (exponential, mean chosen so that the offered load is ``load`` times the
limit), then a sync of 1..``max_pages`` pages, one request per page, ``page_ms`` apart. Every run
draws its idle times and page counts from its own seeded generator, so each limiter faces the same
demand. The simulation ends when ``requests`` requests have been served (429'd ones are sent again).

Limiters compared, each at the same nominal rate (``limit`` per ``window``):

- ``ours``: the provider's ``SourceGuard`` (breaker + sliding-window log) on an
  ``InMemoryStateStore`` (the same JSON as the Airflow Variable). As in Airflow, the source's pool
  (1 slot, ``include_deferred=True``) lets one sync at a time hold the state, so concurrent runs
  queue for the pool; a refused request waits for the slot the guard names (as a deferral would)
  and re-reads the state.
- ``fixed``: a shared fixed-window counter (e.g. a Redis ``INCR`` per clock window); a refused
  request waits for the next window.
- ``token_bucket``: a shared token bucket, capacity ``limit``, refilled at ``limit / window``.
- ``ours_without_pool`` (diagnostic): the guard used by concurrent runs *without* the pool, each
  holding the state it read at the start of its sync. Variables are last-write-wins, so slots get
  lost; this is why the pool is part of the design.

The API enforces the quota as a true sliding window and answers 429 (with ``Retry-After``) when it
is full; a 429'd request is sent again after that wait, through the limiter again.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from airflow_sync_provider.config import RateLimitConfig, SyncConfig
from airflow_sync_provider.hooks.guard import SourceGuard
from airflow_sync_provider.hooks.outcome import Attempt, BreakerEffect
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.state.store import InMemoryStateStore
from bench.measure import max_in_any_window, quiet_logger, rounded

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the guard sees realistic epoch seconds
LIMITERS = ("ours", "fixed", "token_bucket", "ours_without_pool")
_QUIET = quiet_logger("bench.quota.guard")


@dataclass(frozen=True)
class QuotaParams:
    requests: int = 10_000
    limit: int = 60
    window_s: float = 3600.0
    runs: int = 5
    max_pages: int = 20
    load: float = 1.5
    page_ms: int = 200
    seed: int = 7


class FakeApi:
    """Accepts at most ``limit`` requests in any window (a true sliding window); else 429."""

    def __init__(self, limit: int, window_ms: int) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self.accepted: deque[int] = deque()
        self.rejected = 0
        self.arrivals: list[int] = []

    def receive(self, now: int) -> int | None:
        """``None`` when served, else the ``Retry-After`` in milliseconds of the 429."""
        self.arrivals.append(now)
        while self.accepted and self.accepted[0] + self.window_ms <= now:
            self.accepted.popleft()
        if len(self.accepted) < self.limit:
            self.accepted.append(now)
            return None
        self.rejected += 1
        return self.accepted[0] + self.window_ms - now


class FixedWindow:
    def __init__(self, limit: int, window_ms: int) -> None:
        self.limit, self.window_ms = limit, window_ms
        self.index, self.count = -1, 0

    def acquire(self, now: int) -> int:
        """0 when granted, else milliseconds to wait."""
        index = now // self.window_ms
        if index != self.index:
            self.index, self.count = index, 0
        if self.count < self.limit:
            self.count += 1
            return 0
        return (index + 1) * self.window_ms - now


class TokenBucket:
    def __init__(self, limit: int, window_ms: int) -> None:
        self.capacity = float(limit)
        self.rate = limit / window_ms  # tokens per millisecond
        self.tokens = float(limit)
        self.last = 0

    def acquire(self, now: int) -> int:
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0
        return max(1, math.ceil((1.0 - self.tokens) / self.rate))


_OK = Attempt(None, False, BreakerEffect.SUCCESS, "ok", 200)
_TOO_MANY = Attempt(SyncErrorKind.RATE_LIMITED, True, BreakerEffect.NEUTRAL, "429", 429)

# A run is a generator that yields the absolute time (ms) to wake at, or _POOL to queue for the pool.
_POOL = -1
Process = Generator[int, None, None]


class Simulation:
    def __init__(self, params: QuotaParams, kind: str) -> None:
        self.params = params
        self.kind = kind
        self.window_ms = round(params.window_s * 1000)
        self.api = FakeApi(params.limit, self.window_ms)
        self.now = 0
        self.served = 0
        self.pool_holder: int | None = None
        self.pool_queue: deque[int] = deque()
        self._queue: list[tuple[int, int, int]] = []
        self._order = itertools.count()
        self.store = InMemoryStateStore()
        self.config = SyncConfig(
            source="quota",
            rate_limit=RateLimitConfig(max_requests=params.limit, window=timedelta(seconds=params.window_s)),
        )
        self.shared: FixedWindow | TokenBucket | None = None
        if kind == "fixed":
            self.shared = FixedWindow(params.limit, self.window_ms)
        elif kind == "token_bucket":
            self.shared = TokenBucket(params.limit, self.window_ms)

    # -- the guard's view of time ------------------------------------------------------------------

    def clock(self) -> float:
        return EPOCH + self.now / 1000

    def guard(self) -> SourceGuard:
        return SourceGuard(self.config, self.store, clock=self.clock, log=_QUIET)

    # -- one run -------------------------------------------------------------------------------------

    def mean_idle_ms(self) -> float:
        p = self.params
        mean_pages = (1 + p.max_pages) / 2
        per_run_ms = p.runs * mean_pages * self.window_ms / (p.load * p.limit)
        return max(per_run_ms - mean_pages * p.page_ms, 1.0)

    def run(self, number: int) -> Process:
        p = self.params
        rng = random.Random(p.seed * 10_000 + number)
        pooled = self.kind == "ours"
        while self.served < p.requests:
            yield self.now + max(1, round(rng.expovariate(1 / self.mean_idle_ms())))
            pages = rng.randint(1, p.max_pages)
            if pooled:
                yield _POOL
            guard = self.guard() if self.kind.startswith("ours") else None
            for _ in range(pages):
                while self.served < p.requests:
                    wait = self._acquire(guard)
                    if wait:
                        yield self.now + wait
                        if guard is not None:
                            guard = self.guard()  # a resumed sync reads the state again
                        continue
                    retry_after = self.api.receive(self.now)
                    if guard is not None:
                        guard.record(_OK if retry_after is None else _TOO_MANY)
                    if retry_after is not None:
                        yield self.now + retry_after
                        continue
                    self.served += 1
                    yield self.now + p.page_ms
                    break
            if guard is not None:
                guard.finish({"source": "quota", "success": True})
            if pooled:
                self._release(number)

    def _acquire(self, guard: SourceGuard | None) -> int:
        if guard is not None:
            admission = guard.admit()
            return 0 if admission.allowed else max(1, math.ceil(admission.wait * 1000))
        assert self.shared is not None
        return self.shared.acquire(self.now)

    # -- the event loop --------------------------------------------------------------------------------

    def _release(self, number: int) -> None:
        assert self.pool_holder == number
        self.pool_holder = None
        if self.pool_queue:
            nxt = self.pool_queue.popleft()
            self.pool_holder = nxt
            self._wake(nxt, self.now)

    def _wake(self, number: int, at: int) -> None:
        heapq.heappush(self._queue, (at, next(self._order), number))

    def simulate(self) -> None:
        processes = {n: self.run(n) for n in range(self.params.runs)}
        for n in processes:
            self._wake(n, 0)
        while self._queue:
            at, _, number = heapq.heappop(self._queue)
            self.now = at
            step: Callable[[], int] = processes[number].__next__
            try:
                wake = step()
            except StopIteration:
                continue
            if wake == _POOL:
                if self.pool_holder is None:
                    self.pool_holder = number
                    self._wake(number, self.now)
                else:
                    self.pool_queue.append(number)
            else:
                self._wake(number, wake)


def run(quick: bool = False, params: QuotaParams | None = None) -> dict[str, Any]:
    params = params or QuotaParams()
    out: dict[str, Any] = {"limit": params.limit, "window_s": params.window_s, "params": asdict(params)}
    for kind in LIMITERS:
        sim = Simulation(params, kind)
        sim.simulate()
        arrivals = sim.api.arrivals
        out[f"max_in_any_window_{kind}"] = max_in_any_window(arrivals, sim.window_ms)
        out[f"api_429s_{kind}"] = sim.api.rejected
        out[f"requests_sent_{kind}"] = len(arrivals)
        out[f"hours_to_serve_all_{kind}"] = rounded(arrivals[-1] / 3_600_000, 1)
    return out
