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
- ``sync_once``: one sync through the real ``RateLimitedSyncOperator`` (``execute`` with a minimal
  context), the task state read from what it returned or raised.
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
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, TaskDeferred

from airflow_sync_provider.config import BackoffConfig, SyncConfig
from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.exceptions import SyncAbort, SyncWaitRequired
from airflow_sync_provider.hooks.guard import SourceGuard
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.operators.sync import RateLimitedSyncOperator
from airflow_sync_provider.results import SyncResult
from airflow_sync_provider.run.handlers import Handler
from airflow_sync_provider.run.sync_run import Checkpoint
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState, variable_key
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
    """What one sync through the real operator gave: the result, the task state, the guard it used.

    ``error`` is rebuilt from the result (kind, message, whether anything was sent).
    """

    result: SyncResult
    error: SyncAbort | None
    guard: SourceGuard
    task_state: str
    """``success``, ``skipped`` or ``failed``, from what ``execute`` returned or raised."""
    xcom: dict[str, Any] | None


class _TaskInstance:
    """The one ``ti`` method the operator calls outside a real task: ``xcom_push``."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def sync_once(
    hook: RateLimitedSyncHook,
    config: SyncConfig,
    *,
    clock: FakeClock,
    sleep: Callable[[float], None],
    rng: random.Random | None = None,
    handler: Handler | None = None,
    checkpoint: Checkpoint | None = None,
    resource: str | None = None,
) -> SyncOutcome:
    """One sync through the real ``RateLimitedSyncOperator`` with ``hook`` (its store and clock).

    ``execute`` runs the sync (``_sync`` with ``checkpoint`` to resume from one, as ``execute_complete``
    does, updating it in place). A deferral comes back as ``SyncWaitRequired`` (the trigger's wait and
    reason), as the request layer raised it; the task state is read from what ``execute`` raised.
    """
    results: list[SyncResult] = []
    operator = RateLimitedSyncOperator(
        task_id=f"sync_{config.source}",
        source=config.source,
        config=config,
        handler=handler,
        on_result=results.append,
        resource=resource,
    )
    operator._clock, operator._sleep, operator._rng = clock, sleep, rng or random.Random(7)
    operator.__dict__["hook"] = hook  # the operator's cached hook: this one, with its store and clock
    guards: list[SourceGuard] = []
    sent = [checkpoint.requests_sent if checkpoint is not None else 0]
    open_guard, send = hook.open_guard, hook.send

    def opening(*args: Any, **kwargs: Any) -> SourceGuard:
        guards.append(open_guard(*args, **kwargs))
        return guards[-1]

    def sending(*args: Any, **kwargs: Any) -> Any:
        sent[0] += 1
        return send(*args, **kwargs)

    ti = _TaskInstance()
    context: dict[str, Any] = {"ti": ti, "params": {}}
    hook.open_guard, hook.send = opening, sending  # type: ignore[method-assign]
    try:
        if checkpoint is None:
            operator.execute(context)
        else:
            operator._sync(context, checkpoint=checkpoint)
        state = "success"
    except AirflowSkipException:
        state = "skipped"
    except AirflowFailException:
        state = "failed"
    except TaskDeferred as deferred:
        trigger = deferred.trigger
        raise SyncWaitRequired(trigger.resume_at - clock(), trigger.reason) from None
    finally:
        hook.open_guard, hook.send = open_guard, send  # type: ignore[method-assign]
    (result,) = results
    error = None
    if result.error is not None:
        error = SyncAbort(result.error, result.error_message or "", sent_requests=sent[0] > 0)
    return SyncOutcome(result, error, guards[-1], state, ti.xcom.get("return_value"))


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
        self.port = self._httpd.server_port
        self.url = f"http://127.0.0.1:{self.port}"
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

        do_POST = do_PUT = do_DELETE = do_GET

    return Handler
