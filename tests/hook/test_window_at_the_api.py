"""The window as the API sees it: a local server that enforces the same moving window (issue 10 item 10).

A slot used to free exactly ``window`` after it was stamped, before the send; a request that took
longer to reach the API than the one ``max_requests`` later arrived less than ``window`` before it,
and a server enforcing the same quota answered 429. Now each slot is held until its response has
arrived, plus a safety margin, so the spacing at the API is never below the window.

Real clock and real sleeps here (about 3 s): the point is the timing on the wire.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_sync_provider.config import RateLimitConfig
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.run.handlers import SyncContext, default_handler
from airflow_sync_provider.run.sync_run import SyncRun
from airflow_sync_provider.state.store import InMemoryStateStore
from tests.hook import LOG, connect, fast_config

WINDOW, LIMIT, PAGES = 1.0, 3, 9


class MovingWindowApi:
    """Answers 429 when a request arrives with ``LIMIT`` requests already in the last ``WINDOW`` s."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, int]] = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                now = time.time()
                with api.lock:
                    busy = sum(1 for t, status in api.arrivals if status == 200 and t > now - WINDOW)
                    status = 429 if busy >= LIMIT else 200
                    api.arrivals.append((now, status))
                page = int(parse_qs(urlsplit(self.path).query).get("cursor", ["0"])[0])
                nxt = str(page + 1) if page + 1 < PAGES else None
                body = json.dumps({"items": [page], "next_cursor": nxt} if status == 200 else {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> MovingWindowApi:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[MovingWindowApi]:
    with MovingWindowApi() as server:
        connect(monkeypatch, server.url)
        yield server


def max_in_any_window(times: list[float]) -> int:
    times, best, lo = sorted(times), 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - WINDOW:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_a_slow_request_keeps_its_slot_until_its_response(
    api: MovingWindowApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every 4th request spends 150 ms on the way to the API; the API never sees 4 in a second."""
    hook = RateLimitedSyncHook(conn_id="sync_default", store=InMemoryStateStore(), clock=time.time)
    sends = [0]
    real_send = hook.send

    def slow_on_the_way(*args: Any, **kwargs: Any) -> Any:
        if sends[0] % (LIMIT + 1) == 0:
            time.sleep(0.15)  # stamped before this, arriving after it
        sends[0] += 1
        return real_send(*args, **kwargs)

    monkeypatch.setattr(hook, "send", slow_on_the_way)
    config = fast_config(
        endpoint="/items",
        max_retries=0,
        rate_limit=RateLimitConfig(max_requests=LIMIT, window=timedelta(seconds=WINDOW)),
    )
    assert config.rate_limit.margin == timedelta(seconds=0.1)  # the default: 1 s, at most window / 10
    guard = hook.open_guard(config, log=LOG)
    run = SyncRun(config, hook, guard, clock=time.time, sleep=time.sleep, log=LOG)
    items = default_handler(SyncContext(run, {}))
    guard.finish({"items": items})

    statuses = [status for _, status in api.arrivals]
    assert statuses == [200] * PAGES
    arrivals = [t for t, _ in api.arrivals]
    assert max_in_any_window(arrivals) == LIMIT
    spacing = min(b - a for a, b in zip(arrivals, arrivals[LIMIT:], strict=False))
    assert spacing >= WINDOW + 0.1  # held until the response, plus the margin
