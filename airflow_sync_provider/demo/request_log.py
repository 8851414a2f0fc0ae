"""The demo API's request log: the data requests it saw, and per source how many were in flight at
once (tests read both through ``DemoServer.requests`` and ``max_concurrency``)."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from airflow_sync_provider.demo.faults import Fault


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
