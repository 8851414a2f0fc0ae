"""Demo HTTP API on loopback: paginated sources, a runtime fault switch and a request log for tests.

``DemoServer`` runs it in a daemon thread; ``python -m airflow_sync_provider.demo serve`` in the foreground.
Endpoints: ``GET /<source>``, ``GET /offset/<source>`` and ``GET /after/<source>`` (``styles``),
``GET /healthz``, ``/_admin/faults``, ``/_admin/quotas`` and ``/_admin/requests``.

The server's parts: ``api_state`` (faults, quotas, request log), ``routes`` (what each path
answers), ``delivery`` (faults on the wire), ``http_server`` (threads, connections), ``request_log``.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Self

from airflow_sync_provider.demo.api_state import DemoAPIState
from airflow_sync_provider.demo.http_server import DemoHTTPServer
from airflow_sync_provider.demo.routes import DemoHandler


class DemoServer(DemoAPIState):
    """The demo API on ``host:port`` (port 0 picks a free one), served from a daemon thread; faults,
    quotas and the request log are set and read with the methods of ``DemoAPIState``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__()
        self.host = host
        self._requested_port = port
        self._httpd: DemoHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

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
        self.stopping.clear()
        httpd = DemoHTTPServer((self.host, self._requested_port), self, DemoHandler)
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
        self.stopping.set()
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
