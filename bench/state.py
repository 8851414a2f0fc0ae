"""State size and write cost at small and large limits: the window's log form against buckets.

In process, on a fake clock: a source whose window already holds ``limit - 20`` requests of the last
55 minutes (a busy steady state) syncs 20 more pages through the real ``SourceGuard`` on an
``InMemoryStateStore`` (the Variable's JSON, encoded and parsed on every write and read). Measured
per limit (60 and 10,000) for the shipped form choice (``ours``: a log up to ``LOG_MAX`` requests,
buckets above) and for the exact log at every size (``exact_log``: what the state held before
buckets), alternately, median of repetitions: the stored bytes and the guard's ms per page. The
Variable round trip through a real Airflow is in ``overhead.ms_per_extra_page``.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from airflow_sync_provider.config import RateLimitConfig, SyncConfig
from airflow_sync_provider.hooks.guard import SourceGuard, hold_seconds
from airflow_sync_provider.hooks.outcome import Attempt, BreakerEffect
from airflow_sync_provider.policy import rate_limit
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState, variable_key
from bench.measure import median, rounded

LIMITS = (60, 10_000)
PAGES = 20
OK = Attempt(None, False, BreakerEffect.SUCCESS, "ok", 200)
T0 = 1_800_000_000.0


class _Log:
    def warning(self, *_: Any, **__: Any) -> None:
        pass

    info = warning


def seeded(limit: int, hold: float) -> str:
    """The stored state of a source with ``limit - PAGES`` requests spread over the last 55 min, in
    the form the current ``rate_limit.LOG_MAX`` gives it (what the previous sync wrote)."""
    n = limit - PAGES
    times = tuple(T0 - 3300.0 + i * 3300.0 / n for i in range(n))
    window = rate_limit.fit(times, T0, max_requests=limit, window=hold)
    return SourceState("bench_state", window=window, updated_at=T0, writer="seed").to_json()


def one_sync(limit: int, exact_log: bool) -> dict[str, float]:
    config = SyncConfig(
        source="bench_state", rate_limit=RateLimitConfig(max_requests=limit, window=timedelta(hours=1))
    )
    now = [T0]
    saved = rate_limit.LOG_MAX
    rate_limit.LOG_MAX = 10**9 if exact_log else saved
    try:
        store = InMemoryStateStore({variable_key("bench_state"): seeded(limit, hold_seconds(config))})
        guard = SourceGuard(config, store, clock=lambda: now[0], log=_Log(), writer="bench/run")
        written = 0
        started = time.perf_counter()
        for _ in range(PAGES):
            if not guard.admit().allowed:
                raise RuntimeError(f"window refused a page at limit {limit}")
            written += len(store.raw[variable_key("bench_state")])
            now[0] += 0.5
            guard.record(OK)
        guard.finish({"success": True})
        seconds = time.perf_counter() - started
    finally:
        rate_limit.LOG_MAX = saved
    raw = store.raw[variable_key("bench_state")]
    return {
        "bytes": len(raw.encode()),
        "ms_per_page": seconds * 1000 / PAGES,
        "bytes_written_per_page": written / PAGES,
        "writes_per_page": (store.writes - 1) / PAGES,  # the final result write aside
        "form": "buckets" if '"window_buckets"' in raw else "log",
    }


def run(quick: bool = False, reps: int | None = None) -> dict[str, Any]:
    reps = reps or (5 if quick else 15)
    rows: dict[str, list[dict[str, float]]] = {}
    for _ in range(reps + 1):  # the first round warms up
        for limit in LIMITS:
            for variant in ("ours", "exact_log"):
                rows.setdefault(f"{variant}_{limit}", []).append(one_sync(limit, variant == "exact_log"))
    per: dict[str, dict[str, Any]] = {}
    for key, samples in rows.items():
        samples = samples[1:]
        per[key] = {
            "bytes": samples[0]["bytes"],
            "form": samples[0]["form"],
            "ms_per_page": rounded(median(s["ms_per_page"] for s in samples), 3),
            "bytes_written_per_page": rounded(median(s["bytes_written_per_page"] for s in samples), 0),
            "writes_per_page": samples[0]["writes_per_page"],
        }
    ours = {limit: per[f"ours_{limit}"] for limit in LIMITS}
    return {
        "bytes": {f"limit_{limit}": ours[limit]["bytes"] for limit in LIMITS},
        "bytes_exact_log": {f"limit_{limit}": per[f"exact_log_{limit}"]["bytes"] for limit in LIMITS},
        "guard_ms_per_page": {f"limit_{limit}": ours[limit]["ms_per_page"] for limit in LIMITS},
        "guard_ms_per_page_exact_log": {
            f"limit_{limit}": per[f"exact_log_{limit}"]["ms_per_page"] for limit in LIMITS
        },
        "ratio_ms_per_page_10000_vs_60": rounded(ours[10_000]["ms_per_page"] / ours[60]["ms_per_page"], 2),
        "writes_per_page": ours[60]["writes_per_page"],
        "goal_bytes": 8192,
        "repetitions": reps,
        "per_variant": per,
    }
