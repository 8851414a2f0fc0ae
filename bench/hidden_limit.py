"""A local API that hides its limit: a moving window over accepted requests, 429 without any header.

``GET /<tenant>?cursor=N`` answers a page of ``page_size`` items with ``next_cursor`` N+1 (up to
``pages`` pages, then none) while fewer than ``limit_at(now)`` requests of that tenant were accepted
in the last ``window`` seconds; past that, a bare 429 (no ``Retry-After``, no ``RateLimit``/
``X-RateLimit`` headers: nothing a client can learn the limit from). Each tenant (the path's first
segment) has its own hidden window, so variants of a benchmark can run side by side on one server.
Only accepted requests count, as most APIs count them. ``clock`` is the API's own time: the real
clock in the benchmark, the tests' fake clock in ``tests/hook/test_adaptive_at_the_api.py`` (so
nothing sleeps there). Every answer is logged (time, status, tenant) for the measures.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that drops its keep-alive connection is not news."""


class HiddenLimitApi:
    """The server; use as a context manager (``url`` while it runs)."""

    def __init__(
        self,
        limit_at: Callable[[float], int],
        *,
        window: float,
        clock: Callable[[], float] = time.time,
        page_size: int = 10,
        pages: int | None = None,
    ) -> None:
        self.limit_at, self.window, self.clock = limit_at, window, clock
        self.page_size, self.pages = page_size, pages
        self.accepted: dict[str, deque[float]] = {}
        self.log: list[tuple[float, int, str]] = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body in two writes: no 40 ms delayed-ACK stall

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                status = api.answer(url.path.strip("/").split("/")[0])
                page = int(parse_qs(url.query).get("cursor", ["0"])[0])
                last = api.pages is not None and page + 1 >= api.pages
                items = [page * api.page_size + i for i in range(api.page_size)]
                data = {"items": items, "next_cursor": None if last else str(page + 1)}
                body = json.dumps(data if status == 200 else {"error": "too many requests"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def answer(self, tenant: str) -> int:
        """200 while the tenant's hidden window has room (the request then counts), else 429; logged."""
        with self.lock:
            now = self.clock()
            accepted = self.accepted.setdefault(tenant, deque())
            while accepted and accepted[0] <= now - self.window:
                accepted.popleft()
            status = 200 if len(accepted) < self.limit_at(now) else 429
            if status == 200:
                accepted.append(now)
            self.log.append((now, status, tenant))
            return status

    def answers(self, tenant: str) -> list[tuple[float, int]]:
        """(time, status) of every answer to ``tenant`` so far (the API's clock)."""
        with self.lock:
            return [(t, status) for t, status, who in self.log if who == tenant]

    def __enter__(self) -> HiddenLimitApi:
        threading.Thread(target=self.httpd.serve_forever, name="hidden-limit-api", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
