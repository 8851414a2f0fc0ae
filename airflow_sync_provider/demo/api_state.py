"""What the demo API holds while it runs: its faults, quotas, request log and changed items.

``DemoServer`` is this state served over HTTP; the request handler (``routes``) reads and changes it
through the same methods tests call.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from airflow_sync_provider.demo.catalog import is_source_name, now_ts
from airflow_sync_provider.demo.faults import FaultError, FaultRegistry, parse_fault
from airflow_sync_provider.demo.quota import QuotaRegistry, parse_quota
from airflow_sync_provider.demo.request_log import RequestLog


class DemoAPIState:
    """The fault switch, the quotas, the request log and the changed items of one demo API."""

    def __init__(self) -> None:
        self.fault_registry = FaultRegistry()
        self.quota_registry = QuotaRegistry(time.time)
        self.request_log = RequestLog()
        self.stopping = threading.Event()
        """Set while the server stops: delayed and trickled responses are abandoned."""
        self._changes: dict[str, dict[int, str]] = {}

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
        self.fault_registry.set(fault)
        return fault.to_dict()

    def clear_faults(self, source: str | None = None) -> int:
        """Clear all faults, or only ``source``'s own fault; return how many were removed."""
        if source is not None and not is_source_name(source):
            raise FaultError("source", source, "must match [a-z][a-z0-9_]{0,62}")
        return self.fault_registry.clear(source)

    def faults(self) -> list[dict[str, Any]]:
        return self.fault_registry.active()

    def set_quota(self, source: str, limit: int, window: float = 60, family: str = "ietf") -> None:
        """Enforce and announce a quota of ``limit`` requests per ``window`` seconds for ``source``."""
        name, quota = parse_quota({"source": source, "limit": limit, "window": window, "family": family})
        self.quota_registry.set(name, quota)

    def clear_quotas(self, source: str | None = None) -> int:
        return self.quota_registry.clear(source)

    def quotas(self) -> dict[str, dict[str, Any]]:
        return self.quota_registry.active()

    def requests(self, source: str | None = None) -> list[dict[str, Any]]:
        """Copies of the logged data requests (in arrival order), optionally for one source only."""
        return self.request_log.entries(source)

    def clear_requests(self) -> int:
        return self.request_log.clear()

    def touch(self, source: str, indices: list[int], when: str | None = None) -> str:
        """Mark items of ``source`` (0-based indices) changed: their ``updated_at`` becomes ``when`` (now)."""
        stamp = when or now_ts()
        self._changes.setdefault(source, {}).update(dict.fromkeys(indices, stamp))
        return stamp

    def changes(self, source: str) -> dict[int, str]:
        return dict(self._changes.get(source, {}))

    def max_concurrency(self, source: str) -> int:
        """The peak number of simultaneously in-flight requests seen for ``source``."""
        return self.request_log.peaks().get(source, 0)
