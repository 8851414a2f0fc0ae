"""The demo API's own quota per source: a moving window it enforces and reports in headers.

Switched on per source through ``/_admin/quotas`` (or ``DemoServer.set_quota``), e.g.
``{"source": "airdrops", "limit": 10, "window": 60, "family": "x-ratelimit"}``. Families:

- ``ietf``: ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset`` (seconds), ``RateLimit-Policy``;
- ``ietf-structured``: ``RateLimit: "default";r=..;t=..`` and ``RateLimit-Policy: "default";q=..;w=..``;
- ``x-ratelimit``: ``X-RateLimit-Limit``, ``-Remaining``, ``-Reset`` (Unix time, as GitHub sends it);
- ``none``: the quota is enforced but never announced (only 429 + ``Retry-After`` tell).

A request over the quota gets ``429`` with ``Retry-After`` and is not served.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_sync_provider.demo.catalog import is_source_name
from airflow_sync_provider.demo.faults import FaultError, integer_field, number_field

FAMILIES = ("ietf", "ietf-structured", "x-ratelimit", "none")


@dataclass
class SourceQuota:
    limit: int
    window: float
    family: str
    arrivals: deque[float] = field(default_factory=deque)
    rejected: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"limit": self.limit, "window": self.window, "family": self.family, "rejected": self.rejected}


def parse_quota(spec: Mapping[str, Any]) -> tuple[str, SourceQuota]:
    """(source, quota) from an admin request body; ``FaultError`` names the bad field."""
    source = spec.get("source")
    if not isinstance(source, str) or not is_source_name(source):
        raise FaultError("source", source, "must match [a-z][a-z0-9_]{0,62}")
    limit = integer_field("limit", spec.get("limit"), 1, 100_000)
    window = number_field("window", spec.get("window", 60), 0, 86400, low_open=True)
    family = spec.get("family", "ietf")
    if family not in FAMILIES:
        raise FaultError("family", family, f"must be one of {', '.join(FAMILIES)}")
    return source, SourceQuota(limit, window, family)


class QuotaRegistry:
    """Per-source quotas; thread-safe. ``clock`` is wall time (the headers carry Unix times)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._quotas: dict[str, SourceQuota] = {}

    def set(self, source: str, quota: SourceQuota) -> None:
        with self._lock:
            self._quotas[source] = quota

    def clear(self, source: str | None = None) -> int:
        with self._lock:
            if source is None:
                cleared = len(self._quotas)
                self._quotas.clear()
                return cleared
            return 1 if self._quotas.pop(source, None) is not None else 0

    def active(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {source: q.to_dict() for source, q in sorted(self._quotas.items())}

    def admit(self, source: str) -> tuple[bool, dict[str, str]]:
        """Count one request of ``source``: (served?, headers to send). No quota: (True, {})."""
        with self._lock:
            quota = self._quotas.get(source)
            if quota is None:
                return True, {}
            now = self._clock()
            while quota.arrivals and quota.arrivals[0] <= now - quota.window:
                quota.arrivals.popleft()
            allowed = len(quota.arrivals) < quota.limit
            if allowed:
                quota.arrivals.append(now)
            else:
                quota.rejected += 1
            remaining = quota.limit - len(quota.arrivals)
            reset_in = quota.arrivals[0] + quota.window - now if quota.arrivals else 0.0
            headers = _headers(quota, remaining, max(reset_in, 0.0), now)
            if not allowed:
                headers["Retry-After"] = str(max(1, math.ceil(reset_in)))
            return allowed, headers


def _headers(quota: SourceQuota, remaining: int, reset_in: float, now: float) -> dict[str, str]:
    reset = max(1, math.ceil(reset_in)) if remaining == 0 else math.ceil(reset_in)
    window = f"{quota.window:g}"
    if quota.family == "ietf":
        return {
            "RateLimit-Limit": str(quota.limit),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(reset),
            "RateLimit-Policy": f"{quota.limit};w={window}",
        }
    if quota.family == "ietf-structured":
        return {
            "RateLimit": f'"default";r={remaining};t={reset}',
            "RateLimit-Policy": f'"default";q={quota.limit};w={window}',
        }
    if quota.family == "x-ratelimit":
        return {
            "X-RateLimit-Limit": str(quota.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(math.ceil(now + reset_in)),
        }
    return {}
