"""Fault injection on the wire: an answer written as a fault's plan says (``faults.effect``): after a
delay, cut mid-body with a TCP reset, or trickled in chunks. A server that stops abandons it."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler

from airflow_sync_provider.demo.faults import Effect


class Aborted(Exception):
    """The response was abandoned on purpose (server stopping, or a ``reset`` fault)."""


class PlannedAnswers(BaseHTTPRequestHandler):
    """JSON answers with their headers, and the planned ways of delivering them badly."""

    def _head(self, status: int, length: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if status not in (204, 304):
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()

    def _delay(self, plan: Effect, stopping: threading.Event) -> None:
        if plan.delay and stopping.wait(plan.delay):
            raise Aborted

    def _write_planned(
        self, plan: Effect, body: bytes, headers: dict[str, str], stopping: threading.Event
    ) -> None:
        self._head(plan.status, len(body), headers)
        if plan.reset:
            self.wfile.write(body[: max(1, len(body) // 2)])
            stopping.wait(0.05)  # let the client read the headers first
            self._reset_connection()
        step = plan.chunk_size or len(body) or 1
        for offset in range(0, len(body), step):
            if offset and stopping.wait(plan.chunk_delay):
                raise Aborted
            self.wfile.write(body[offset : offset + step])

    def _reset_connection(self) -> None:
        """Close the socket with SO_LINGER 0 so the peer gets a TCP RST mid-body."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            os.close(self.connection.detach())
        raise Aborted
