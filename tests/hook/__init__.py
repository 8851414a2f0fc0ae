"""Hook and sync-run tests against real local HTTP servers, and the shared helpers they use.

No Airflow DB and no ``airflow dags test`` here: the hook reads its connection from
``AIRFLOW_CONN_SYNC_DEFAULT`` (``HttpHook.get_connection`` resolves env connections outside a task in
Airflow 3.3), keeps its state in an ``InMemoryStateStore``, and runs on a ``FakeClock``. Waits go to a
``Sleeps`` recorder, so every wait is asserted exactly and nothing sleeps.

Helpers:

- ``FakeClock``: a callable clock (epoch seconds) that moves only when told to.
- ``Sleeps``: ``sleep=`` replacement; records each wait and advances the clock by it (a window wait
  must see time pass, or it would wait forever).
- ``ScriptedServer``: a tiny loopback server answering with an exact list of ``Reply`` objects, for
  sequences the demo API's fault switch cannot express (chunked bodies without a length, cursor loops,
  links to other hosts). It logs every request.
- ``sync_once``: what ``RateLimitedSyncOperator._sync`` does, minus Airflow: open the guard, run the
  handler through ``SyncRun``/``SyncContext``, build the result, ``guard.finish``.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_sync_provider.config import BackoffConfig, SyncConfig
from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.exceptions import SyncAbort, SyncWaitRequired
from airflow_sync_provider.handlers import Handler, SyncContext, default_handler, items_from_handler_return
from airflow_sync_provider.hooks.guard import SourceGuard
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.operators.sync import BLOCKED_KINDS
from airflow_sync_provider.results import SyncResult
from airflow_sync_provider.state import InMemoryStateStore, SourceState, variable_key
from airflow_sync_provider.sync_run import Checkpoint, SyncRun
from tests.harness.fixtures import connection_env

T0 = 1_800_000_000.0
"""The fake clock's start (2027-01-15T08:00:00Z): a whole second, so HTTP-dates round-trip exactly."""
LOG = logging.getLogger("tests.hook")


class FakeClock:
    """Epoch seconds that move only through ``advance`` (or a ``Sleeps`` recorder)."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sleeps(list[float]):
    """A ``sleep`` that records the wait and advances the fake clock by it; never really sleeps."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.clock.advance(seconds)


def no_jitter(**changes: Any) -> BackoffConfig:
    """Backoff 1 s, 2 s, 4 s ... exactly (jitter 0), with ``changes`` applied."""
    return BackoffConfig(**{"jitter_factor": 0.0, **changes})


SHORT_TIMEOUT = timedelta(seconds=0.3)
"""For timeout faults only: a busy machine can take longer than this to answer a healthy request."""


def fast_config(source: str = "sponsored", **changes: Any) -> SyncConfig:
    """A config for loopback tests: exact backoff, every wait slept (none deferred), 10 s timeout."""
    base: dict[str, Any] = {
        "source": source,
        "timeout": timedelta(seconds=10),
        "backoff": no_jitter(),
        "defer_after": timedelta(minutes=5),
    }
    return SyncConfig(**{**base, **changes})


def connect(monkeypatch: pytest.MonkeyPatch, url: str, **fields: Any) -> None:
    """Point the ``sync_default`` connection at ``url`` (http://host:port) through the environment."""
    for name, value in connection_env(url, **fields).items():
        monkeypatch.setenv(name, value)


def make_hook(clock: FakeClock, store: InMemoryStateStore | None = None) -> RateLimitedSyncHook:
    return RateLimitedSyncHook(conn_id="sync_default", store=store or InMemoryStateStore(), clock=clock)


def stored(store: InMemoryStateStore, source: str) -> SourceState:
    """The state as persisted (not as any guard holds it)."""
    return SourceState.from_json(store.raw.get(variable_key(source)), source)


def settled_requests(demo: DemoServer, source: str | None = None) -> list[dict[str, Any]]:
    """The demo's request log once every logged request has finished.

    The server logs a response's status after writing it, so a fast client can return first; this
    waits (at most 5 s, polling) for those last log updates instead of racing them.
    """
    deadline = time.monotonic() + 5
    while True:
        entries = demo.requests(source)
        if all(e["end"] is not None for e in entries) or time.monotonic() > deadline:
            return entries
        time.sleep(0.005)


def http_date(epoch: float) -> str:
    """An RFC 9110 HTTP-date (``Retry-After``) for ``epoch``."""
    return format_datetime(datetime.fromtimestamp(epoch, tz=UTC), usegmt=True)


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SyncOutcome:
    result: SyncResult
    error: SyncAbort | None
    run: SyncRun
    guard: SourceGuard

    @property
    def task_state(self) -> str:
        """The task state ``RateLimitedSyncOperator._report`` gives this outcome (when_blocked=skipped)."""
        if self.error is None:
            return "success"
        if self.error.kind in BLOCKED_KINDS and not self.error.sent_requests:
            return "skipped"
        return "failed"


def sync_once(
    hook: RateLimitedSyncHook,
    config: SyncConfig,
    *,
    clock: FakeClock,
    sleep: Callable[[float], None],
    rng: random.Random | None = None,
    handler: Handler = default_handler,
    checkpoint: Checkpoint | None = None,
) -> SyncOutcome:
    """One operator-equivalent sync. ``SyncWaitRequired`` propagates after the guard is flushed, as
    the operator does before deferring; ``checkpoint`` is updated in place, so pass one to resume from it.
    """
    guard = hook.open_guard(config, log=LOG)
    run = SyncRun(
        config,
        hook,
        guard,
        checkpoint=checkpoint,
        clock=clock,
        sleep=sleep,
        rng=rng or random.Random(7),
        log=LOG,
    )
    error: SyncAbort | None = None
    try:
        items = items_from_handler_return(handler(SyncContext(run, {})))
    except SyncWaitRequired:
        run.checkpoint.deferrals += 1
        guard.flush()
        raise
    except SyncAbort as abort:
        error = abort
        items = run.checkpoint.items
    result = run.result(items=items, error=error)
    guard.finish(result.to_dict())
    return SyncOutcome(result, error, run, guard)


# -- a scripted server --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``chunked`` sends ``Transfer-Encoding: chunked`` and no Content-Length."""

    status: int = 200
    body: bytes = b'{"items": [], "next_cursor": null}'
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False

    @classmethod
    def page(cls, items: list[Any], next_cursor: str | None = None, **headers: str) -> Reply:
        body = json.dumps({"items": items, "next_cursor": next_cursor}).encode()
        return cls(body=body, headers={k.replace("_", "-"): v for k, v in headers.items()})


class ScriptedServer:
    """Answers request n with ``replies[n]`` (the last reply repeats); logs method, path and headers."""

    def __init__(self, replies: list[Reply]) -> None:
        if not replies:
            raise ValueError("a ScriptedServer needs at least one reply")
        self.replies = list(replies)
        self.log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def next_reply(self, method: str, path: str, headers: dict[str, str]) -> Reply:
        with self._lock:
            index = len(self.log)
            self.log.append({"method": method, "path": path, "headers": headers})
            return self.replies[min(index, len(self.replies) - 1)]


def _make_handler(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            reply = server.next_reply(self.command, self.path, dict(self.headers.items()))
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            try:
                if reply.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for start in range(0, len(reply.body), 64 * 1024):
                        part = reply.body[start : start + 64 * 1024]
                        self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
            except OSError:  # the client gave up on the body (size bound): expected
                self.close_connection = True

    return Handler
