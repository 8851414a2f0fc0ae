"""Hidden limits, learned adaptively (issue 19, item 4): the real hook against an API hiding its limit.

``bench.hidden_limit.HiddenLimitApi`` enforces a hidden moving window that changes without notice:
300 per minute, then 120 from minute 3, then 240 from minute 6, for 10 minutes; past it, a bare 429
(no quota headers). Every source is configured at 600 per minute. Side by side in one run, each on its
own hidden window (a tenant of the one server), on the real clock:

- ``ours``: ``rate_limit.adaptive: true`` (the effective limit, CUBIC);
- ``fixed``: the same config without ``adaptive`` (its 600 never binds);
- ``plain``: no window of ours (``max_requests`` at the config's maximum), only retries with backoff,
  as dlt and Singer taps do;
- ``two_dags``: two loops of ``ours`` on one store and one hidden window (two DAGs of one source).

Everything but the API is the provider's own code, in-process: ``RateLimitedSyncHook`` over HTTP,
``SyncRun`` (429s retried after the default backoff, 1 s doubling to 60 s, up to 10 retries),
``SourceGuard`` on an ``InMemoryStateStore``. Each loop runs one sync after another (``PAGES`` pages of
one item, a new guard per sync as in Airflow), so what was learned reaches the next sync only through
the stored state.

Measures (as ``bench/adaptive_sim.py``, from the API's log): ``requests_429_ratio``, 429s per request
after the first minute; ``utilization``, items accepted in the two minutes after each change over what
the new limit allows in them (twice the limit), the worst of the two changes. ``--quick`` scales the
minute to ``QUICK_MINUTE`` seconds (every duration with it: window, backoff, margin); same keys.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from airflow_sync_provider.config import MAX_WINDOW_ENTRIES, BackoffConfig, RateLimitConfig, SyncConfig
from airflow_sync_provider.exceptions import SyncAbort, SyncWaitRequired
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.run.handlers import SyncContext, default_handler
from airflow_sync_provider.run.sync_run import SyncRun
from airflow_sync_provider.state.store import InMemoryStateStore
from bench.hidden_limit import HiddenLimitApi
from bench.measure import quiet_logger, rounded

PHASES = ((0.0, 300), (3.0, 120), (6.0, 240))
"""(from minute, hidden limit per minute)."""
CONFIGURED = 600
MINUTES = 10.0
PAGES = 50
QUICK_MINUTE = 12.0
VARIANTS = {"ours": 1, "fixed": 1, "plain": 1, "two_dags": 2}
"""Variant -> how many sync loops share its store and hidden window."""
_QUIET = quiet_logger("bench.adaptive")


@dataclass(frozen=True)
class AdaptiveParams:
    minute: float = 60.0
    """Seconds per minute of the scenario (the quick run scales it down)."""
    minutes: float = MINUTES


def hidden_limit(minutes: float) -> int:
    return [limit for start, limit in PHASES if minutes >= start][-1]


def config_for(variant: str, params: AdaptiveParams) -> SyncConfig:
    """600 per minute (``plain``: no window of ours); adaptive for ``ours`` and ``two_dags``; waits of
    up to two windows are slept through (no deferral in-process)."""
    scale = params.minute / 60.0
    window = timedelta(seconds=params.minute)
    limit = RateLimitConfig(
        max_requests=MAX_WINDOW_ENTRIES if variant == "plain" else CONFIGURED,
        window=window,
        safety_margin=timedelta(seconds=scale),  # the default 1 s, scaled with the minute
        adaptive=variant in ("ours", "two_dags"),
    )
    return SyncConfig(
        source=f"hidden_{variant}",
        endpoint=f"/{variant}",
        rate_limit=limit,
        backoff=BackoffConfig(
            initial_delay=timedelta(seconds=scale), max_delay=timedelta(seconds=60 * scale)
        ),
        max_retries=10,
        max_wait=2 * window,
        defer_after=2 * window,
        timeout=timedelta(seconds=10),
        max_sync_duration=timedelta(seconds=params.minutes * params.minute * 2),
    )


class _TimeUp(BaseException):
    """The run is over: raised from a wait to end the sync in progress (never caught by the syncs)."""


@dataclass
class Loop:
    """One sync after another until ``deadline`` (epoch seconds), on ``store``."""

    config: SyncConfig
    store: InMemoryStateStore
    deadline: float
    syncs: int = 0
    failed_syncs: int = 0

    def sleep(self, seconds: float) -> None:
        left = self.deadline - time.time()
        time.sleep(max(min(seconds, left), 0.0))
        if seconds >= left:
            raise _TimeUp

    def run(self) -> None:
        hook = RateLimitedSyncHook(conn_id="sync_default", store=self.store)
        try:
            while time.time() < self.deadline:
                guard = hook.open_guard(self.config, log=_QUIET)
                run = SyncRun(self.config, hook, guard, sleep=self.sleep, log=_QUIET)
                ctx = SyncContext(run, {})
                success = True
                try:
                    default_handler(ctx)
                except (SyncAbort, SyncWaitRequired):
                    success = False
                finally:
                    ctx.close()
                guard.finish({"source": self.config.source, "success": success})
                self.syncs += 1
                self.failed_syncs += 0 if success else 1
        except _TimeUp:
            return


def measures(answers: list[tuple[float, int]], started: float, params: AdaptiveParams) -> dict[str, Any]:
    """The 429 ratio after the first minute and the worst utilization after a change."""
    minute = params.minute
    late = [status for t, status in answers if t >= started + minute]
    by_change = {}
    for start, limit in PHASES[1:]:
        begin = started + start * minute
        accepted = sum(1 for t, status in answers if status == 200 and begin <= t < begin + 2 * minute)
        by_change[f"{start:g}m"] = rounded(accepted / (2 * limit))
    return {
        "requests_429_ratio": rounded(late.count(429) / len(late), 4) if late else 0.0,
        "utilization": min(by_change.values()),
        "by_change": by_change,
        "requests": len(answers),
        "api_429s": sum(1 for _, status in answers if status == 429),
    }


def run(quick: bool = False, params: AdaptiveParams | None = None) -> dict[str, Any]:
    params = params or AdaptiveParams(minute=QUICK_MINUTE if quick else 60.0)
    saved = os.environ.get("AIRFLOW_CONN_SYNC_DEFAULT")
    loops: dict[str, list[Loop]] = {}
    with HiddenLimitApi(
        lambda t: hidden_limit((t - started) / params.minute), window=params.minute, pages=PAGES, page_size=1
    ) as api:
        host, port = api.url.split("://", 1)[1].split(":")
        os.environ["AIRFLOW_CONN_SYNC_DEFAULT"] = json.dumps(
            {"conn_type": "http", "host": host, "port": int(port)}
        )
        try:
            started = time.time()
            deadline = started + params.minutes * params.minute
            for variant, count in VARIANTS.items():
                store = InMemoryStateStore()
                loops[variant] = [Loop(config_for(variant, params), store, deadline) for _ in range(count)]
            threads = [
                threading.Thread(target=loop.run, name=f"bench-adaptive-{variant}-{i}")
                for variant, group in loops.items()
                for i, loop in enumerate(group)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            if saved is None:
                os.environ.pop("AIRFLOW_CONN_SYNC_DEFAULT", None)
            else:
                os.environ["AIRFLOW_CONN_SYNC_DEFAULT"] = saved
        found = {variant: measures(api.answers(variant), started, params) for variant in VARIANTS}
    for variant, group in loops.items():
        found[variant]["syncs"] = sum(loop.syncs for loop in group)
        found[variant]["failed_syncs"] = sum(loop.failed_syncs for loop in group)
    ours = found["ours"]
    return {
        "requests_429_ratio": ours["requests_429_ratio"],
        "utilization": ours["utilization"],
        "baselines": {
            "fixed": found["fixed"]["requests_429_ratio"],
            "plain": found["plain"]["requests_429_ratio"],
        },
        "two_dags": {
            "requests_429_ratio": found["two_dags"]["requests_429_ratio"],
            "utilization": found["two_dags"]["utilization"],
        },
        "params": {
            **asdict(params),
            "phases_per_minute": [list(p) for p in PHASES],
            "configured": CONFIGURED,
        },
        "details": found,
    }
