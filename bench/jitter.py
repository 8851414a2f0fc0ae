"""Jitter: the AWS "Exponential Backoff and Jitter" contention experiment, with our backoff functions.

The model follows the experiment in Marc Brooker's post on the AWS Architecture Blog (2015):
``clients`` clients each want to make one optimistic-concurrency write to the same row. A client
reads the row's version, then writes with that version; the write succeeds only if nobody wrote in
between. A client whose write lost waits its backoff, then reads and writes again. Every message
crosses a network whose delay is ``|normal(10 ms, 2 ms)|``; the backoff starts at 5 ms and is capped
at 2 s, as in the post. We count the writes sent (the post's "calls") and the time until the last
client succeeded, averaged over seeded trials.

The waits come from ``airflow_sync_provider.policy.backoff.retry_delay`` (the function ``SyncRun``
uses), so this measures the provider's own strategies: ``proportional`` (the original design's
±10 %), ``full`` and ``decorrelated``. ``none`` (the same exponential curve without jitter) is the
post's "Exponential" reference line.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import asdict, dataclass
from typing import Any

from airflow_sync_provider.policy.backoff import retry_delay
from bench.measure import mean, rounded

STRATEGIES = ("none", "proportional", "full", "decorrelated")
"""``none`` is the reference (no jitter); the other three are the provider's strategies."""

_READ, _READ_REPLY, _WRITE, _WRITE_REPLY = range(4)


@dataclass(frozen=True)
class JitterParams:
    clients: int = 100
    trials: int = 100
    seed: int = 2015
    initial: float = 0.005
    multiplier: float = 2.0
    cap: float = 2.0
    jitter_factor: float = 0.1
    net_mean: float = 0.010
    net_sd: float = 0.002


def wait_for(
    strategy: str, retry: int, previous: float | None, params: JitterParams, rng: random.Random
) -> float:
    """The wait before retry ``retry`` (0 = first retry) under ``strategy``, from the provider's policy."""
    return retry_delay(
        retry,
        strategy="proportional" if strategy == "none" else strategy,
        initial=params.initial,
        multiplier=params.multiplier,
        cap=params.cap,
        jitter_factor=0.0 if strategy == "none" else params.jitter_factor,
        rng=rng,
        previous=previous,
    )


def simulate(strategy: str, params: JitterParams, rng: random.Random) -> tuple[int, float]:
    """One trial: (writes sent, seconds until the last client's write succeeded)."""
    version = 0
    writes = 0
    finished_at = 0.0
    retries = [0] * params.clients
    previous: list[float | None] = [None] * params.clients
    order = itertools.count()
    queue: list[tuple[float, int, int, int, int | bool | None]] = []

    def delay() -> float:
        return abs(rng.normalvariate(params.net_mean, params.net_sd))

    def send(at: float, client: int, kind: int, payload: int | bool | None = None) -> None:
        heapq.heappush(queue, (at, next(order), client, kind, payload))

    for client in range(params.clients):
        send(delay(), client, _READ)
    while queue:
        now, _, client, kind, payload = heapq.heappop(queue)
        if kind == _READ:  # the server reads the row's version
            send(now + delay(), client, _READ_REPLY, version)
        elif kind == _READ_REPLY:  # the client writes with the version it read
            send(now + delay(), client, _WRITE, payload)
        elif kind == _WRITE:  # the server's conditional write
            writes += 1
            won = payload == version
            if won:
                version += 1
            send(now + delay(), client, _WRITE_REPLY, won)
        elif payload:  # the client learns it won
            finished_at = max(finished_at, now)
        else:  # lost: back off, then read again
            wait = wait_for(strategy, retries[client], previous[client], params, rng)
            retries[client] += 1
            previous[client] = wait
            send(now + wait + delay(), client, _READ)
    return writes, finished_at


def recommend(results: dict[str, dict[str, float]]) -> tuple[str, str]:
    """Pick among the provider's strategies: fewest writes; within 5 % of that, the fastest."""
    candidates = {name: r for name, r in results.items() if name != "none"}
    fewest = min(r["calls_mean"] for r in candidates.values())
    close = {name: r for name, r in candidates.items() if r["calls_mean"] <= fewest * 1.05}
    best = min(close, key=lambda name: close[name]["completion_ms_mean"])
    rule = "fewest writes; among strategies within 5 % of the fewest, the shortest completion time"
    return best, rule


def run(quick: bool = False, params: JitterParams | None = None) -> dict[str, Any]:
    params = params or JitterParams(trials=20 if quick else 100)
    results: dict[str, dict[str, float]] = {}
    for strategy in STRATEGIES:
        calls: list[float] = []
        times: list[float] = []
        for trial in range(params.trials):
            writes, finished = simulate(strategy, params, random.Random(params.seed * 1000 + trial))
            calls.append(writes)
            times.append(finished)
        results[strategy] = {
            "calls_mean": rounded(mean(calls), 1),
            "calls_max": int(max(calls)),
            "completion_ms_mean": rounded(mean(times) * 1000, 1),
            "completion_ms_max": rounded(max(times) * 1000, 1),
        }
    best, rule = recommend(results)
    return {
        "clients": params.clients,
        "trials": params.trials,
        "seed": params.seed,
        "params": asdict(params),
        "strategies": results,
        "recommendation": best,
        "recommendation_rule": rule,
        "minimum_calls": params.clients,
    }
