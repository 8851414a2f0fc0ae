"""Several windows: a per-second and a per-day window obeyed together, and the state they leave.

A local API enforces two moving windows per source (every request it answered 200 in the last
second, and in the last day, counts; past either limit it answers 429 with ``Retry-After`` and
serves nothing) and announces neither. Two sources sync side by side, in one run, for ``seconds``
each: ``ours`` configured with both windows (``rate_limit: [{5, 1s}, {day_limit, 1d}]``), and
``second_only`` with the per-second window alone (the config before issue 19). Everything but the
API is the provider's own code, in-process: the real ``RateLimitedSyncHook`` over HTTP, ``SyncRun``,
``SourceGuard`` on an ``InMemoryStateStore``, the real clock; a new guard per sync, as in Airflow. The
day limit is reached within the run, so both windows bind; a sync refused for a day ends and the
next one starts (they send nothing until the day window frees).

- ``api_429s``: 429s the API answered to ``ours`` (goal 0);
- ``state_bytes``: the stored Variable's size at a day window of 250,000 (the bucketed form): the
  state ``ours`` left, its day window filled as 24 hourly syncs (the default schedule) over the last
  day would have filled it, written by one more sync through the real guard (goal < 8,192).
  ``state_bytes_by_syncs_per_day`` gives it for more frequent schedules: each sync's guard keeps its
  own share of the window (``policy.shares``), so the size grows with the syncs in a day.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from airflow_sync_provider.config import BackoffConfig, SyncConfig
from airflow_sync_provider.hooks.guard import SourceGuard, hold_seconds
from airflow_sync_provider.hooks.outcome import Attempt, BreakerEffect
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.policy import shares as sh
from airflow_sync_provider.policy.log import Log
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState, variable_key
from bench.learned_quota import one_sync
from bench.measure import max_in_any_window, quiet_logger, sync_default_at

DAY = 86400.0
SIDES = ("ours", "second_only")
SCHEDULES = (24, 96, 288)
"""Syncs a day the state size is measured at: hourly (the default schedule), every 15 and 5 minutes."""
FULL_DAY = 250_000
"""The day window ``state_bytes`` is measured at (HubSpot's daily quota)."""
_QUIET = quiet_logger("bench.windows")


@dataclass(frozen=True)
class WindowsParams:
    seconds: float = 40.0
    per_second: int = 5
    day_limit: int = 120
    pages: int = 10
    """Pages per sync (one request each)."""


def config_for(source: str, params: WindowsParams, *, day: int | None) -> SyncConfig:
    """Both windows (``day``) or the per-second one alone; short waits are slept through."""
    windows: list[dict[str, Any]] = [{"max_requests": params.per_second, "window": "1s"}]
    if day is not None:
        windows.append({"max_requests": day, "window": "1d"})
    return SyncConfig.from_dict(
        {"source": source, "endpoint": f"/{source}", "rate_limit": windows, "max_retries": 3}
    ).replace(
        backoff=BackoffConfig(initial_delay=timedelta(milliseconds=100), max_delay=timedelta(seconds=1)),
        max_wait=timedelta(seconds=5),
        defer_after=timedelta(seconds=5),
        timeout=timedelta(seconds=5),
    )


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client dropping its keep-alive connection at the end of a sync: not a measurement


class TwoWindowApi:
    """Per source (the path), 429 when the last second or the last day already holds its limit of
    answered requests; every arrival is logged with its status."""

    def __init__(self, params: WindowsParams) -> None:
        self.arrivals: dict[str, list[tuple[float, int]]] = {}
        self.lock = threading.Lock()
        api, limits = self, ((params.per_second, 1.0), (params.day_limit, DAY))

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                now = time.time()
                with api.lock:
                    log = api.arrivals.setdefault(url.path.strip("/"), [])
                    ok = [t for t, status in log if status == 200]
                    full = any(sum(1 for t in ok if t > now - w) >= n for n, w in limits)
                    status = 429 if full else 200
                    log.append((now, status))
                page = int(parse_qs(url.query).get("cursor", ["0"])[0])
                more = str(page + 1) if page + 1 < params.pages else None
                body = json.dumps({"items": [page], "next_cursor": more} if status == 200 else {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(body)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> TwoWindowApi:
        threading.Thread(target=self.httpd.serve_forever, name="bench-windows-api", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Side:
    config: SyncConfig
    seconds: float
    store: InMemoryStateStore
    items: int = 0
    syncs: int = 0
    refused_syncs: int = 0

    def loop(self) -> None:
        hook = RateLimitedSyncHook(conn_id="sync_default", store=self.store)
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            success, items = one_sync(hook, self.config)
            self.items += items
            self.syncs += 1
            if not success:
                self.refused_syncs += 1
                time.sleep(0.5)  # the next scheduled run


def summarize(arrivals: list[tuple[float, int]], side: Side) -> dict[str, Any]:
    served = [t for t, status in arrivals if status == 200]
    return {
        "requests": len(arrivals),
        "api_429s": sum(1 for _, status in arrivals if status == 429),
        "served": len(served),
        "most_served_in_any_second": max_in_any_window([round(t * 1000) for t in served], 1000),
        "items": side.items,
        "syncs": side.syncs,
        "refused_syncs": side.refused_syncs,
    }


def state_bytes_at_a_full_day(
    state: SourceState, params: WindowsParams, count: int = FULL_DAY, syncs: int = 24
) -> int:
    """The stored size of ``state`` at a day window of ``count``: ``syncs`` evenly spread syncs' shares
    over the last day hold ``count - 1`` requests, and one more sync writes through the real guard."""
    config = config_for(state.source, params, day=count)
    hold = hold_seconds(config) - config.rate_limit.window.total_seconds() + DAY
    now = time.time()
    per_sync, every = (count - 1) // syncs, DAY / syncs
    shares = []
    for k in range(syncs):
        start = now - DAY + k * every + 60.0
        n = per_sync + (count - 1 - syncs * per_sync if k == syncs - 1 else 0)
        times = Log(tuple(start + i * (every - 120.0) / n for i in range(n)))
        shares.append(sh.Share(f"{k:08x}", 2 * n, times))
    fitted = sh.fit(sh.of(shares), now, max_requests=count, window=hold)
    store = InMemoryStateStore()
    store.save(state.replace(extra_windows=((DAY, fitted),), updated_at=now - 60, writer="last"))
    guard = SourceGuard(config, store, clock=time.time, log=_QUIET, writer="bench/next")
    assert guard.admit().allowed, "the seeded day window must leave room for one more request"
    guard.record(Attempt(None, False, BreakerEffect.SUCCESS, "ok", 200))
    guard.finish({"source": state.source, "success": True, "items_processed": 1})
    seeded = SourceState.from_json(store.raw[variable_key(state.source)], state.source)
    assert sh.total(seeded.extra(DAY)).in_window(time.time(), hold) == count
    return len(store.raw[variable_key(state.source)].encode())


def run(quick: bool = False, params: WindowsParams | None = None) -> dict[str, Any]:
    params = params or (WindowsParams(seconds=20.0, day_limit=60) if quick else WindowsParams())
    sides = {
        name: Side(
            config_for(f"windows_{name}", params, day=params.day_limit if name == "ours" else None),
            params.seconds,
            InMemoryStateStore(),
        )
        for name in SIDES
    }
    with TwoWindowApi(params) as api, sync_default_at(api.url):
        threads = [threading.Thread(target=side.loop, name=f"bench-windows-{n}") for n, side in sides.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        counted = {
            name: summarize(api.arrivals.get(f"windows_{name}", []), side) for name, side in sides.items()
        }
    ours = counted["ours"]
    final = sides["ours"].store.load("windows_ours")
    return {
        "params": asdict(params),
        "day_and_second": {
            "api_429s": ours["api_429s"],
            "state_bytes": state_bytes_at_a_full_day(final, params, syncs=SCHEDULES[0]),
            "state_bytes_day_limit": FULL_DAY,
            "state_bytes_by_syncs_per_day": {
                str(n): state_bytes_at_a_full_day(final, params, syncs=n) for n in SCHEDULES
            },
            "state_bytes_after_run": len(final.to_json().encode()),
            **{k: v for k, v in ours.items() if k != "api_429s"},
            "baseline_second_only": counted["second_only"],
        },
    }
