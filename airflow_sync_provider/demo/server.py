"""Demo HTTP API on loopback: paginated sources, a runtime fault switch and a request log for tests.

``DemoServer`` runs it in a daemon thread; ``python -m airflow_sync_provider.demo serve`` in the foreground.
Endpoints: ``GET /<source>``, ``GET /offset/<source>`` and ``GET /after/<source>`` (``styles``),
``GET /healthz``, ``/_admin/faults`` and ``/_admin/requests``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from airflow_sync_provider.demo import styles
from airflow_sync_provider.demo.catalog import PageError, is_source_name, now_ts, render_page
from airflow_sync_provider.demo.faults import Fault, FaultError, FaultRegistry, effect, parse_fault
from airflow_sync_provider.demo.quota import QuotaRegistry, parse_quota

log = logging.getLogger(__name__)

_MAX_BODY = 64 * 1024
_SAFE_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d+)?|\[[0-9A-Fa-f:.]+\](:\d+)?")
_ADMIN_METHODS = {
    "/_admin/faults": "GET, POST, DELETE",
    "/_admin/quotas": "GET, POST, DELETE",
    "/_admin/requests": "GET, DELETE",
}


class RequestLog:
    """Data requests seen by the server, plus in-flight and peak concurrency per source."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._in_flight: dict[str, int] = {}
        self._peak: dict[str, int] = {}

    def begin(self, source: str | None, method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "source": source,
            "method": method,
            "path": path,
            "status": None,
            "fault": None,
            "aborted": False,
            "start": time.monotonic(),
            "end": None,
            "authorization": any(name.lower() == "authorization" for name in headers),
            "header_names": list(headers),
            "headers": headers,
        }
        with self._lock:
            self._entries.append(entry)
            if source is not None:
                now = self._in_flight[source] = self._in_flight.get(source, 0) + 1
                self._peak[source] = max(self._peak.get(source, 0), now)
        return entry

    def end(self, entry: dict[str, Any], status: int | None, fault: Fault | None, *, aborted: bool) -> None:
        with self._lock:
            entry.update(status=status, fault=fault and fault.mode, aborted=aborted, end=time.monotonic())
            if entry["source"] is not None:
                self._in_flight[entry["source"]] -= 1

    def entries(self, source: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(e) for e in self._entries if source is None or e["source"] == source]

    def peaks(self) -> dict[str, int]:
        with self._lock:
            return dict(self._peak)

    def clear(self) -> int:
        with self._lock:
            cleared = len(self._entries)
            self._entries.clear()
            self._peak.clear()
            return cleared


class _Aborted(Exception):
    """The response was abandoned on purpose (server stopping, or a ``reset`` fault)."""


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "SyncDemo/1.0"
    timeout = 60  # idle keep-alive connections are dropped after this many seconds
    # Headers and body are separate writes: with Nagle on, a keep-alive client's delayed ACK stalls
    # every response after the first by ~40 ms. socketserver sets TCP_NODELAY when this is true.
    disable_nagle_algorithm = True
    _status: int | None = None
    _query: dict[str, list[str]]

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib's per-request stderr lines; ``_dispatch`` logs through ``logging``."""

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

    # -- plumbing --------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        started, self._status, fault = time.monotonic(), None, None
        split = urlsplit(self.path)
        path, self._query = split.path, parse_qs(split.query, keep_blank_values=True)
        try:
            body = self._read_body()
            if path == "/healthz":
                self._json(200, {"status": "ok"})
            elif path == "/_admin" or path.startswith("/_admin/"):
                self._admin(path, body)
            else:
                fault = self._data(path)
        except (_Aborted, OSError):
            self.close_connection = True
        finally:
            ms = (time.monotonic() - started) * 1000
            suffix = f" fault={fault.mode}" if fault else ""
            client, status = self.client_address[0], self._status or "-"
            log.info('%s "%s %s" %s %.1fms%s', client, self.command, self.path, status, ms, suffix)

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length", "0")
        if "Transfer-Encoding" in self.headers or not length.isdigit() or int(length) > _MAX_BODY:
            self.close_connection = True
            self._json(413, {"error": f"send a Content-Length of at most {_MAX_BODY} bytes"})
            raise _Aborted
        return self.rfile.read(int(length)) if int(length) else b""

    def _head(self, status: int, length: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if status not in (204, 304):
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self._head(status, len(body), headers)
        self.wfile.write(body)

    def _param(self, name: str) -> str | None:
        values = self._query.get(name)
        return values[-1] if values else None

    def _base_url(self) -> str:
        host = self.headers.get("Host", "")
        if not _SAFE_HOST.fullmatch(host):
            name, port = self.server.server_name, self.server.server_port
            host = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
        return f"http://{host}"

    # -- admin -----------------------------------------------------------------------------------------

    def _admin(self, path: str, body: bytes) -> None:
        demo, method = self.server.demo, self.command
        if path not in _ADMIN_METHODS:
            self._json(404, {"error": "unknown admin path", "path": path})
        elif method not in _ADMIN_METHODS[path]:
            self._json(405, {"error": f"{method} not allowed"}, {"Allow": _ADMIN_METHODS[path]})
        elif path == "/_admin/requests":
            if method == "DELETE":
                self._json(200, {"cleared": demo.clear_requests()})
            else:
                entries = demo.requests(self._param("source"))
                self._json(200, {"requests": entries, "max_concurrency": demo._log.peaks()})
        elif path == "/_admin/quotas":
            self._admin_quotas(method, body)
        elif method == "GET":
            self._json(200, {"faults": demo.faults()})
        else:
            try:
                if method == "DELETE":
                    cleared = demo.clear_faults(self._param("source"))
                    self._json(200, {"cleared": cleared, "faults": demo.faults()})
                    return
                fault = parse_fault(_json_object(body))
                cleared = demo._faults.set(fault)
                result: dict[str, Any] = {"cleared": cleared} if fault.mode == "none" else {}
                self._json(200, {"fault": fault.to_dict(), **result, "faults": demo.faults()})
            except FaultError as exc:
                self._json(400, exc.to_dict())

    def _admin_quotas(self, method: str, body: bytes) -> None:
        quotas = self.server.demo._quotas
        try:
            if method == "POST":
                source, quota = parse_quota(_json_object(body))
                quotas.set(source, quota)
            elif method == "DELETE":
                quotas.clear(self._param("source"))
            self._json(200, {"quotas": quotas.active()})
        except FaultError as exc:
            self._json(400, exc.to_dict())

    # -- data ------------------------------------------------------------------------------------------

    def _data(self, path: str) -> Fault | None:
        style, source = styles.route(path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        entry = self.server.demo._log.begin(source, self.command, self.path, headers)
        fault: Fault | None = None
        aborted = True
        try:
            if self.command != "GET":
                self._json(405, {"error": f"{self.command} not allowed"}, {"Allow": "GET"})
            elif source is None:
                self._json(404, {"error": "unknown source", "path": path})
            else:
                served, quota_headers = self.server.demo._quotas.admit(source)
                if not served:
                    self._json(429, {"error": "quota exceeded", "source": source}, quota_headers)
                else:
                    fault = self.server.demo._faults.take(source)
                    self._serve(source, fault, quota_headers, style)
            aborted = False
        finally:
            self.server.demo._log.end(entry, self._status, fault, aborted=aborted)
        return fault

    def _serve(
        self, source: str, fault: Fault | None, extra_headers: dict[str, str], style: str | None = None
    ) -> None:
        stopping = self.server.demo._stopping
        plan = effect(fault, source)
        if plan.delay and stopping.wait(plan.delay):
            raise _Aborted
        body, headers = plan.body, plan.headers
        if body is None:
            try:
                cursor, limit = self._param("cursor"), self._param("limit")
                since, changes = self._param("updated_since"), self.server.demo.changes(source)
                if style is not None:
                    query = {name: self._param(name) for name in self._query}
                    body, headers = styles.render(style, source, query, changes), {}
                else:
                    body, headers = render_page(
                        source,
                        cursor,
                        limit,
                        self._base_url(),
                        plan.loop_cursor,
                        since,
                        changes,
                        self._param("total"),
                    )
            except PageError as exc:
                self._json(400, {"error": str(exc), "field": exc.field, "value": exc.value})
                return
        self._head(plan.status, len(body), {**extra_headers, **(headers or {})})
        if plan.reset:
            self.wfile.write(body[: max(1, len(body) // 2)])
            stopping.wait(0.05)  # let the client read the headers first
            self._reset_connection()
        step = plan.chunk_size or len(body) or 1
        for offset in range(0, len(body), step):
            if offset and stopping.wait(plan.chunk_delay):
                raise _Aborted
            self.wfile.write(body[offset : offset + step])

    def _reset_connection(self) -> None:
        """Close the socket with SO_LINGER 0 so the peer gets a TCP RST mid-body."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            os.close(self.connection.detach())
        raise _Aborted


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        spec = json.loads(body or b"{}")
    except ValueError:
        spec = None
    if not isinstance(spec, dict):
        raise FaultError("body", body.decode("utf-8", "replace"), "must be a JSON object")
    return spec


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], demo: DemoServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.demo = demo
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the FQDN (a DNS lookup); loopback needs none.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def close_connections(self) -> None:
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):  # the client hung up or went quiet: expected
            log.info("demo API: %s hung up (%s)", client_address[0], type(exc).__name__)
            return
        log.exception("demo API: error while handling a request from %s", client_address)


class DemoServer:
    """The demo API on ``host:port`` (port 0 picks a free one), served from a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self._faults = FaultRegistry()
        self._quotas = QuotaRegistry(time.time)
        self._log = RequestLog()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._changes: dict[str, dict[int, str]] = {}

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("DemoServer is not started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        if self._httpd is not None:
            raise RuntimeError("DemoServer is already running")
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self._requested_port), self)
        self._httpd, self._port = httpd, httpd.server_port
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"demo-api:{self._port}"
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; in-flight ``slow``/``trickle`` responses are abandoned. Idempotent."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        self._stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def set_fault(
        self, mode: str, source: str | None = None, count: int | None = None, **options: Any
    ) -> dict[str, Any]:
        """Install a fault (raises FaultError on bad input, like the admin API's 400); return it."""
        spec: dict[str, Any] = {"mode": mode, **options}
        if source is not None:
            spec["source"] = source
        if count is not None:
            spec["count"] = count
        fault = parse_fault(spec)
        self._faults.set(fault)
        return fault.to_dict()

    def clear_faults(self, source: str | None = None) -> int:
        """Clear all faults, or only ``source``'s own fault; return how many were removed."""
        if source is not None and not is_source_name(source):
            raise FaultError("source", source, "must match [a-z][a-z0-9_]{0,62}")
        return self._faults.clear(source)

    def faults(self) -> list[dict[str, Any]]:
        return self._faults.active()

    def set_quota(self, source: str, limit: int, window: float = 60, family: str = "ietf") -> None:
        """Enforce and announce a quota of ``limit`` requests per ``window`` seconds for ``source``."""
        name, quota = parse_quota({"source": source, "limit": limit, "window": window, "family": family})
        self._quotas.set(name, quota)

    def clear_quotas(self, source: str | None = None) -> int:
        return self._quotas.clear(source)

    def quotas(self) -> dict[str, dict[str, Any]]:
        return self._quotas.active()

    def requests(self, source: str | None = None) -> list[dict[str, Any]]:
        """Copies of the logged data requests (in arrival order), optionally for one source only."""
        return self._log.entries(source)

    def clear_requests(self) -> int:
        return self._log.clear()

    def touch(self, source: str, indices: list[int], when: str | None = None) -> str:
        """Mark items of ``source`` (0-based indices) changed: their ``updated_at`` becomes ``when`` (now)."""
        stamp = when or now_ts()
        self._changes.setdefault(source, {}).update(dict.fromkeys(indices, stamp))
        return stamp

    def changes(self, source: str) -> dict[int, str]:
        return dict(self._changes.get(source, {}))

    def max_concurrency(self, source: str) -> int:
        """The peak number of simultaneously in-flight requests seen for ``source``."""
        return self._log.peaks().get(source, 0)
