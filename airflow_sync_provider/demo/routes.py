"""The demo API's routes: ``GET /<source>`` (and the ``styles`` paths), ``/healthz`` and the admin
paths ``/_admin/faults``, ``/_admin/quotas`` and ``/_admin/requests``. Each request is logged in one
line through ``logging``; data requests also go to the request log."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from airflow_sync_provider.demo import styles
from airflow_sync_provider.demo.catalog import PageError, render_page
from airflow_sync_provider.demo.delivery import Aborted, PlannedAnswers
from airflow_sync_provider.demo.faults import Fault, FaultError, effect, parse_fault
from airflow_sync_provider.demo.http_server import DemoHTTPServer, log
from airflow_sync_provider.demo.quota import parse_quota

_MAX_BODY = 64 * 1024
_SAFE_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d+)?|\[[0-9A-Fa-f:.]+\](:\d+)?")
_ADMIN_METHODS = {
    "/_admin/faults": "GET, POST, DELETE",
    "/_admin/quotas": "GET, POST, DELETE",
    "/_admin/requests": "GET, DELETE",
}


class DemoHandler(PlannedAnswers):
    server: DemoHTTPServer
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
        except (Aborted, OSError):
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
            raise Aborted
        return self.rfile.read(int(length)) if int(length) else b""

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
                self._json(200, {"requests": entries, "max_concurrency": demo.request_log.peaks()})
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
                fault = parse_fault(json_object(body))
                cleared = demo.fault_registry.set(fault)
                result: dict[str, Any] = {"cleared": cleared} if fault.mode == "none" else {}
                self._json(200, {"fault": fault.to_dict(), **result, "faults": demo.faults()})
            except FaultError as exc:
                self._json(400, exc.to_dict())

    def _admin_quotas(self, method: str, body: bytes) -> None:
        quotas = self.server.demo.quota_registry
        try:
            if method == "POST":
                source, quota = parse_quota(json_object(body))
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
        entry = self.server.demo.request_log.begin(source, self.command, self.path, headers)
        fault: Fault | None = None
        aborted = True
        try:
            if self.command != "GET":
                self._json(405, {"error": f"{self.command} not allowed"}, {"Allow": "GET"})
            elif source is None:
                self._json(404, {"error": "unknown source", "path": path})
            else:
                served, quota_headers = self.server.demo.quota_registry.admit(source)
                if not served:
                    self._json(429, {"error": "quota exceeded", "source": source}, quota_headers)
                else:
                    fault = self.server.demo.fault_registry.take(source)
                    self._serve(source, fault, quota_headers, style)
            aborted = False
        finally:
            self.server.demo.request_log.end(entry, self._status, fault, aborted=aborted)
        return fault

    def _serve(
        self, source: str, fault: Fault | None, extra_headers: dict[str, str], style: str | None = None
    ) -> None:
        stopping = self.server.demo.stopping
        plan = effect(fault, source)
        self._delay(plan, stopping)
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
        self._write_planned(plan, body, {**extra_headers, **(headers or {})}, stopping)


def json_object(body: bytes) -> dict[str, Any]:
    try:
        spec = json.loads(body or b"{}")
    except ValueError:
        spec = None
    if not isinstance(spec, dict):
        raise FaultError("body", body.decode("utf-8", "replace"), "must be a JSON object")
    return spec
