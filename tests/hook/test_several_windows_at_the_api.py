"""Several windows at the API (issue 19 item 1): a local server enforcing 3 per 0.5 s and 5 per 2 s
answers no 429 to a sync configured with the same two windows (the list form of ``rate_limit``).

Real clock and real sleeps (about 2.5 s): the point is the timing on the wire.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.run.handlers import SyncContext, default_handler
from airflow_sync_provider.run.sync_run import SyncRun
from airflow_sync_provider.state.store import InMemoryStateStore
from tests.hook import LOG, connect, fast_config

WINDOWS = ((3, 0.5), (5, 2.0))
PAGES = 7


class TwoWindowApi:
    """Answers 429 when any window already holds its limit of answered requests."""

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
                    ok = [t for t, status in api.arrivals if status == 200]
                    full = any(sum(1 for t in ok if t > now - w) >= n for n, w in WINDOWS)
                    status = 429 if full else 200
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

    def __enter__(self) -> TwoWindowApi:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[TwoWindowApi]:
    with TwoWindowApi() as server:
        connect(monkeypatch, server.url)
        yield server


def test_both_windows_are_obeyed_with_no_429(api: TwoWindowApi) -> None:
    windows = [{"max_requests": n, "window": f"{int(w * 1000)}ms"} for n, w in WINDOWS]
    parsed = SyncConfig.from_dict({"source": "sponsored", "rate_limit": windows}).rate_limit
    config = fast_config(endpoint="/items", max_retries=0, rate_limit=parsed)
    hook = RateLimitedSyncHook(conn_id="sync_default", store=InMemoryStateStore(), clock=time.time)
    guard = hook.open_guard(config, log=LOG)
    run = SyncRun(config, hook, guard, clock=time.time, sleep=time.sleep, log=LOG)
    items = default_handler(SyncContext(run, {}))
    guard.finish({"items": items})

    statuses = [status for _, status in api.arrivals]
    assert statuses == [200] * PAGES and items == PAGES
    arrivals = [t for t, _ in api.arrivals]
    assert arrivals[5] - arrivals[0] >= 2.0  # the 6th request waited for the 2 s window
