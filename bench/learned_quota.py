"""Learned quota: 429s and items per minute against an API whose quota is lower than the config's.

The demo API enforces (and announces, ``RateLimit-*`` with ``RateLimit-Policy``) ``api_limit`` requests
per ``window_s`` for each source; the config allows ``config_limit`` in the same window. Two sources
sync side by side, in one run, for ``seconds`` each: one with ``rate_limit.learn_from_headers`` on,
one with it off. Everything but the API is the provider's own code, in-process: the real
``RateLimitedSyncHook`` over HTTP, ``SyncRun`` (retries honouring ``Retry-After``, short waits slept
through), ``SourceGuard`` on an ``InMemoryStateStore``, the real clock. Each loop runs one sync after
another (``default_handler``: every page of the source), a new guard per sync as in Airflow, so what
was learned reaches the next sync only through the stored state.

429s are counted by the API (its request log), items by the syncs. The time is scaled down (seconds
instead of minutes) so the whole comparison takes about a minute; rates are given per minute.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from airflow_sync_provider.config import BackoffConfig, RateLimitConfig, SyncConfig
from airflow_sync_provider.exceptions import SyncAbort, SyncWaitRequired
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.run.handlers import SyncContext, default_handler
from airflow_sync_provider.run.sync_run import SyncRun
from airflow_sync_provider.state.store import InMemoryStateStore
from bench.measure import quiet_logger, rounded, sync_default_at

SIDES = {"learning_on": True, "learning_off": False}
_QUIET = quiet_logger("bench.learned_quota")


@dataclass(frozen=True)
class LearnedQuotaParams:
    seconds: float = 60.0
    config_limit: int = 100
    api_limit: int = 10
    window_s: float = 6.0
    page_size: int = 10
    family: str = "ietf"


def config_for(source: str, params: LearnedQuotaParams, *, learn: bool) -> SyncConfig:
    """Config limit above the API's; waits up to a window are slept through (no deferral in-process)."""
    window = timedelta(seconds=params.window_s)
    return SyncConfig(
        source=source,
        endpoint=f"/{source}?limit={params.page_size}",
        rate_limit=RateLimitConfig(max_requests=params.config_limit, window=window, learn_from_headers=learn),
        backoff=BackoffConfig(initial_delay=timedelta(milliseconds=100), max_delay=timedelta(seconds=1)),
        max_retries=5,
        max_wait=2 * window,
        defer_after=2 * window,
        timeout=timedelta(seconds=5),
    )


@dataclass
class Side:
    """One source's loop of syncs and what it achieved."""

    config: SyncConfig
    seconds: float
    items: int = 0
    syncs: int = 0
    failed_syncs: int = 0
    elapsed: float = 0.0
    """Seconds the loop ran: the last sync started before ``seconds`` and may end after it."""

    def loop(self) -> None:
        hook = RateLimitedSyncHook(conn_id="sync_default", store=InMemoryStateStore())
        started = time.monotonic()
        deadline = started + self.seconds
        while time.monotonic() < deadline:
            success, items = one_sync(hook, self.config)
            self.items += items
            self.syncs += 1
            self.failed_syncs += 0 if success else 1
        self.elapsed = time.monotonic() - started


def one_sync(hook: RateLimitedSyncHook, config: SyncConfig) -> tuple[bool, int]:
    """One sync of every page with a new guard, as an Airflow run makes it: whether it ended well, and
    the items of its finished pages (of a failed sync too)."""
    guard = hook.open_guard(config, log=_QUIET)
    run = SyncRun(config, hook, guard, log=_QUIET)
    ctx = SyncContext(run, {})
    success = True
    try:
        default_handler(ctx)
    except (SyncAbort, SyncWaitRequired):
        success = False
    finally:
        ctx.close()
    guard.finish({"source": config.source, "success": success})
    return success, run.checkpoint.items


def run(quick: bool = False, params: LearnedQuotaParams | None = None) -> dict[str, Any]:
    from airflow_sync_provider.demo.server import DemoServer

    params = params or LearnedQuotaParams(seconds=18.0 if quick else 60.0)
    logging.getLogger("airflow_sync_provider.demo.server").setLevel(logging.CRITICAL)
    out: dict[str, Any] = {"params": asdict(params)}
    with DemoServer(port=0) as demo, sync_default_at(demo.url):
        sides = {}
        for name, learn in SIDES.items():
            source = f"quota_{name}"
            demo.set_quota(source, params.api_limit, params.window_s, params.family)
            sides[name] = (source, Side(config_for(source, params, learn=learn), params.seconds))
        threads = [
            threading.Thread(target=side.loop, name=f"bench-{name}") for name, (_, side) in sides.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for name, (source, side) in sides.items():
            statuses = [entry["status"] for entry in demo.requests(source)]
            out[name] = summarize(statuses, side)
    out["api_steady_items_per_min"] = rounded(params.api_limit * params.page_size * 60 / params.window_s, 1)
    return out


def summarize(statuses: list[int | None], side: Side) -> dict[str, Any]:
    """Per-minute rates of one side from the API's status codes and the syncs' item count."""
    too_many = statuses.count(429)
    per_minute = 60.0 / side.elapsed if side.elapsed > 0 else 0.0
    return {
        "seconds": rounded(side.elapsed, 1),
        "requests": len(statuses),
        "api_429s": too_many,
        "api_429s_per_min": rounded(too_many * per_minute, 1),
        "items": side.items,
        "items_per_min": rounded(side.items * per_minute, 1),
        "syncs": side.syncs,
        "failed_syncs": side.failed_syncs,
    }
