"""The original design's six sync metrics, sent through Airflow's own ``Stats`` channel.

Whatever ``[metrics]`` configures (StatsD, Datadog, OpenTelemetry) receives them; with metrics off
they go nowhere. Every metric is sent twice, the way Airflow sends its own (``dagrun.duration.success``
plus the legacy ``dagrun.duration.success.<dag_id>``): once with the source in the name, because plain
StatsD drops tags, and once under the bare name with ``tags={"source": source}`` for tag-aware backends.

===================================  =======  ============================================================
name (+ ``.<source>`` variant)       type     value
===================================  =======  ============================================================
``sync.success``                     gauge    1 when the sync succeeded, else 0
``sync.duration``                    timer    the sync's duration in milliseconds
``sync.circuit_breaker.state``       gauge    0 closed, 1 half-open, 2 open (``BREAKER_STATE_VALUES``)
``sync.circuit_breaker.failures``    gauge    consecutive counted failures
``sync.retry_count``                 gauge    retries the sync made (all requests)
``sync.rate_limit.usage``            gauge    requests in the window / ``max_requests`` (0.0 - 1.0)
``sync.rate_limit.remaining``        gauge    requests the API itself says are left (only when it says)
``sync.rate_limit.effective_limit``  gauge    the adaptive effective limit (``rate_limit.adaptive`` only)
===================================  =======  ============================================================

The first six (the original design's) are sent at the end of every sync, whatever its outcome (dry
runs send none), ``sync.rate_limit.remaining`` with them while the API's count is known; the two breaker
gauges are sent again at every breaker transition. ``sync.rate_limit.effective_limit`` is sent by an
adaptive source's guard at its first admission and at every change (``adaptive_limit``). Values are
numbers and the only tag is the source name, so no metric can carry a URL, a header or a secret. A
metrics backend that fails is logged and ignored: metrics never fail a sync.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Protocol

from airflow_sync_provider.policy.breaker import BreakerSnapshot, BreakerState
from airflow_sync_provider.results import SyncResult

__all__ = [
    "BREAKER_FAILURES",
    "BREAKER_STATE",
    "BREAKER_STATE_VALUES",
    "DURATION",
    "METRIC_NAMES",
    "RATE_LIMIT_EFFECTIVE",
    "RATE_LIMIT_REMAINING",
    "RATE_LIMIT_USAGE",
    "RETRY_COUNT",
    "SUCCESS",
    "StatsLike",
    "emit_breaker",
    "emit_effective_limit",
    "emit_sync",
    "get_stats",
    "per_source_name",
]

SUCCESS = "sync.success"
DURATION = "sync.duration"
BREAKER_STATE = "sync.circuit_breaker.state"
BREAKER_FAILURES = "sync.circuit_breaker.failures"
RETRY_COUNT = "sync.retry_count"
RATE_LIMIT_USAGE = "sync.rate_limit.usage"
METRIC_NAMES = (SUCCESS, DURATION, BREAKER_STATE, BREAKER_FAILURES, RETRY_COUNT, RATE_LIMIT_USAGE)
RATE_LIMIT_REMAINING = "sync.rate_limit.remaining"
"""Learned from the API's headers (``policy.quota``); not one of the original six."""
RATE_LIMIT_EFFECTIVE = "sync.rate_limit.effective_limit"
"""The effective limit of ``rate_limit.adaptive`` (``adaptive_limit``); not one of the original six."""

BREAKER_STATE_VALUES: dict[BreakerState, int] = {
    BreakerState.CLOSED: 0,
    BreakerState.HALF_OPEN: 1,
    BreakerState.OPEN: 2,
}
"""Numeric value of ``sync.circuit_breaker.state`` per breaker state (gauges carry numbers only)."""

log = logging.getLogger(__name__)
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_.-]")


class StatsLike(Protocol):
    """The part of Airflow's ``Stats`` this module uses (tests pass a recording fake)."""

    def gauge(self, stat: str, value: float, *args: Any, tags: dict[str, Any] | None = None) -> None: ...

    def timing(self, stat: str, dt: Any, *, tags: dict[str, Any] | None = None) -> None: ...


class _NoStats:
    """Stands in when this Airflow has no Task SDK ``Stats``: every call is a no-op."""

    def gauge(self, stat: str, value: float, *args: Any, tags: dict[str, Any] | None = None) -> None:
        return None

    def timing(self, stat: str, dt: Any, *, tags: dict[str, Any] | None = None) -> None:
        return None


def get_stats() -> StatsLike:
    """Airflow's Task SDK ``Stats`` (3.x); a no-op stand-in where it cannot be imported."""
    try:
        from airflow.sdk.observability.stats import Stats
    except ImportError:  # pragma: no cover - depends on the installed Airflow
        log.debug("airflow.sdk.observability.stats is not available; sync metrics are not sent")
        return _NoStats()
    return Stats  # type: ignore[return-value]


def per_source_name(metric: str, source: str) -> str:
    """``sync.success`` + ``airdrops`` -> ``sync.success.airdrops`` (characters StatsD refuses -> ``_``)."""
    return f"{metric}.{_INVALID_NAME_CHARS.sub('_', source)}"


def emit_sync(
    result: SyncResult,
    breaker: BreakerSnapshot,
    rate_limit_usage: float,
    *,
    api_remaining: int | None = None,
    stats: StatsLike | None = None,
) -> None:
    """Send all six metrics for one finished sync (and the API's remaining count when known). Never raises."""
    batch: list[tuple[str, str, float]] = [
        ("gauge", SUCCESS, 1 if result.success else 0),
        ("timing", DURATION, result.duration_ms),
        ("gauge", RETRY_COUNT, result.retry_count),
        ("gauge", RATE_LIMIT_USAGE, round(float(rate_limit_usage), 4)),
        *_breaker_metrics(breaker),
    ]
    if api_remaining is not None:
        batch.append(("gauge", RATE_LIMIT_REMAINING, api_remaining))
    _send_all(stats, result.source, batch)


def emit_breaker(source: str, breaker: BreakerSnapshot, *, stats: StatsLike | None = None) -> None:
    """Send the breaker's state and failure count (at a transition). Never raises."""
    _send_all(stats, source, _breaker_metrics(breaker))


def emit_effective_limit(source: str, limit: int, *, stats: StatsLike | None = None) -> None:
    """Send an adaptive source's effective limit (requests per its first window). Never raises."""
    _send_all(stats, source, [("gauge", RATE_LIMIT_EFFECTIVE, limit)])


def _breaker_metrics(breaker: BreakerSnapshot) -> list[tuple[str, str, float]]:
    return [
        ("gauge", BREAKER_STATE, BREAKER_STATE_VALUES[breaker.state]),
        ("gauge", BREAKER_FAILURES, breaker.failure_count),
    ]


def _send_all(stats: StatsLike | None, source: str, batch: list[tuple[str, str, float]]) -> None:
    """Each metric in both forms; a failing backend is logged once per batch and otherwise ignored."""
    failed: list[str] = []
    error: BaseException | None = None
    for kind, metric, value in batch:
        try:
            backend = stats if stats is not None else get_stats()
            send = getattr(backend, kind)
            send(per_source_name(metric, source), value)
            send(metric, value, tags={"source": source})
        except Exception as exc:
            failed.append(metric)
            error = error or exc
    if failed:
        log.warning(
            "Could not send metrics %s of %s (%s: %s); the sync goes on",
            ", ".join(failed),
            source,
            type(error).__name__,
            error,
        )
