"""Alerts on breaker transitions and rate-limited syncs: Airflow notifiers or plain callables.

``RateLimitedSyncOperator(on_breaker_open=..., on_breaker_close=..., on_rate_limited=...)`` (and the
same arguments of ``build_sync_dags``) each take one target or a list of them:

- an Airflow notifier (``airflow.sdk.bases.notifier.BaseNotifier``: ``SlackNotifier``,
  ``SmtpNotifier``, ...) is called the way Airflow calls notifier callbacks, ``notifier(context)``,
  with the task's context plus ``sync_alert`` (``BreakerAlert.to_dict()``), so its templated fields
  can say ``{{ sync_alert.message }}``. Rendering a notifier changes it for good, so every alert
  renders a fresh copy;
- any other callable gets the ``BreakerAlert`` itself: ``callback(alert)``.

When they fire:

- ``on_breaker_open``: the breaker went closed -> open. Once per outage: a failed half-open probe
  (half-open -> open) is logged and counted in the metrics but does not alert again, and a sync that
  finds the breaker open makes no transition, so fast-failed runs never alert.
- ``on_breaker_close``: a half-open probe succeeded (half-open -> closed). A manual reset (admin DAG,
  CLI, dashboard) is a person's act and does not alert.
- ``on_rate_limited``: the sync ended ``RATE_LIMITED`` (the API's 429s outlasted the retries) or
  ``RATE_LIMIT_EXCEEDED`` (our own window stayed full beyond ``max_wait``): once per such sync. A
  sync that learned from the API a spent quota whose reset is beyond ``max_wait`` alerts once
  (``learned_quota_alert``), whatever its outcome; the later syncs that quota refuses do not alert
  again (each gets a run note instead), until a request after the cap learns it anew.

An alert target that raises is logged; it never changes the sync's outcome.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from airflow_sync_provider.policy.breaker import BreakerSettings, BreakerSnapshot, BreakerState
from airflow_sync_provider.policy.quota import Quota
from airflow_sync_provider.results import SyncErrorKind, SyncResult

__all__ = [
    "RATE_LIMIT_KINDS",
    "AlertEvent",
    "AlertSpec",
    "AlertTarget",
    "BreakerAlert",
    "breaker_close_alert",
    "breaker_open_alert",
    "is_notifier",
    "learned_quota_alert",
    "normalize_targets",
    "rate_limited_alert",
    "send_alert",
]

AlertEvent = Literal["breaker_open", "breaker_close", "rate_limited"]
AlertTarget = Callable[..., Any]
"""A ``BaseNotifier`` (called with the context) or a callable (called with the ``BreakerAlert``)."""
AlertSpec = AlertTarget | Iterable[AlertTarget] | None
RATE_LIMIT_KINDS = frozenset({SyncErrorKind.RATE_LIMITED, SyncErrorKind.RATE_LIMIT_EXCEEDED})

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BreakerAlert:
    """What an alert says. Times are ISO-8601 UTC strings; ``message`` is the ready-made text."""

    event: AlertEvent
    source: str
    state: str
    """The breaker's state after the event: ``closed``, ``open`` or ``half-open``."""
    failure_count: int
    """Consecutive failures: that opened the breaker (open), that it recovered from (close)."""
    failure_threshold: int
    last_error: str | None
    next_probe_at: str | None
    """When an open breaker lets the next probe through; ``None`` when it is not open."""
    opened_at: str | None
    at: str
    """When the event happened."""
    reason: str
    message: str
    error: str | None = None
    """The sync's ``SyncErrorKind`` (``rate_limited`` alerts)."""
    retry_at: str | None = None
    """``rate_limited``: when the source's window frees its next slot, when known."""
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def iso(ts: float | None) -> str | None:
    """Epoch seconds -> ISO-8601 UTC (seconds precision)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def _where(context: Mapping[str, Any] | None) -> dict[str, str | None]:
    ti = (context or {}).get("ti")
    return {name: getattr(ti, name, None) for name in ("dag_id", "run_id", "task_id")}


def breaker_open_alert(
    source: str,
    snapshot: BreakerSnapshot,
    settings: BreakerSettings,
    *,
    at: float,
    reason: str,
    context: Mapping[str, Any] | None = None,
) -> BreakerAlert:
    """The alert for a breaker that just opened (``snapshot`` is the state after the transition)."""
    next_probe = iso(snapshot.next_probe_at(settings))
    message = (
        f"Circuit breaker of {source} OPENED after {snapshot.failure_count} consecutive failures "
        f"(threshold {settings.failure_threshold}). Last error: {snapshot.last_error or 'unknown'}. "
        f"Next probe due at {next_probe}; until then syncs of {source} send nothing and are skipped."
    )
    return BreakerAlert(
        event="breaker_open",
        source=source,
        state=snapshot.state.value,
        failure_count=snapshot.failure_count,
        failure_threshold=settings.failure_threshold,
        last_error=snapshot.last_error,
        next_probe_at=next_probe,
        opened_at=iso(snapshot.opened_at),
        at=iso(at) or "",
        reason=reason,
        message=message,
        **_where(context),
    )


def breaker_close_alert(
    source: str,
    snapshot: BreakerSnapshot,
    previous: BreakerSnapshot,
    settings: BreakerSettings,
    *,
    at: float,
    reason: str,
    context: Mapping[str, Any] | None = None,
) -> BreakerAlert:
    """The alert for a breaker that just closed; ``previous`` is its last open/half-open snapshot."""
    opened = iso(previous.opened_at)
    message = (
        f"Circuit breaker of {source} CLOSED: {reason} after {previous.failure_count} consecutive "
        f"failures (open since {opened or 'unknown'}). Last error was: "
        f"{snapshot.last_error or previous.last_error or 'unknown'}. No probe pending; syncs run normally."
    )
    return BreakerAlert(
        event="breaker_close",
        source=source,
        state=snapshot.state.value,
        failure_count=previous.failure_count,
        failure_threshold=settings.failure_threshold,
        last_error=snapshot.last_error or previous.last_error,
        next_probe_at=None,
        opened_at=opened,
        at=iso(at) or "",
        reason=reason,
        message=message,
        **_where(context),
    )


def rate_limited_alert(
    result: SyncResult,
    snapshot: BreakerSnapshot,
    settings: BreakerSettings,
    *,
    at: float,
    retry_at: float | None = None,
    context: Mapping[str, Any] | None = None,
) -> BreakerAlert:
    """The alert for a sync that ended ``RATE_LIMITED`` or ``RATE_LIMIT_EXCEEDED``."""
    kind = result.error.value if result.error else "UNKNOWN"
    next_probe = iso(snapshot.next_probe_at(settings))
    slot = iso(retry_at)
    message = (
        f"Sync of {result.source} ended {kind} after {result.retry_count} retries: "
        f"{result.error_message or 'no detail'}. Breaker {snapshot.state.value} with "
        f"{snapshot.failure_count} consecutive failures; "
        + (f"next probe due at {next_probe}." if next_probe else "no probe pending.")
        + (f" Next window slot frees at {slot}." if slot else "")
    )
    return _rate_limited(result, snapshot, settings, at, kind, message, kind, slot, context)


def learned_quota_alert(
    result: SyncResult,
    learned: Quota,
    snapshot: BreakerSnapshot,
    settings: BreakerSettings,
    *,
    at: float,
    max_wait: float,
    cap: float,
    context: Mapping[str, Any] | None = None,
) -> BreakerAlert:
    """The alert for a sync that learned ``remaining 0`` with a reset beyond ``max_wait`` (``learned``)."""
    reset_at = learned.reset_at if learned.reset_at is not None else at
    learned_at = learned.observed_at if learned.observed_at is not None else at
    until = min(reset_at, learned_at + cap)
    message = (
        f"The API told a sync of {result.source} that its quota is spent until {iso(reset_at)} "
        f"({reset_at - learned_at:.0f}s, longer than max_wait={max_wait:g}s). Syncs of {result.source} "
        f"send nothing until {iso(until)} (a learned reset is trusted at most "
        f"rate_limit.max_learned_wait={cap:g}s); then one request finds out. The sync ended "
        + (result.error.value if result.error else "successfully")
        + "; the sync_admin reset clears the learned quota."
    )
    error = result.error.value if result.error else None
    return _rate_limited(result, snapshot, settings, at, "LEARNED_QUOTA", message, error, iso(until), context)


def _rate_limited(
    result: SyncResult,
    snapshot: BreakerSnapshot,
    settings: BreakerSettings,
    at: float,
    reason: str,
    message: str,
    error: str | None,
    retry_at: str | None,
    context: Mapping[str, Any] | None,
) -> BreakerAlert:
    """A ``rate_limited`` alert: the breaker's fields as they stand, the result's error and source."""
    return BreakerAlert(
        event="rate_limited",
        source=result.source,
        state=snapshot.state.value,
        failure_count=snapshot.failure_count,
        failure_threshold=settings.failure_threshold,
        last_error=result.error_message,
        next_probe_at=iso(snapshot.next_probe_at(settings)),
        opened_at=iso(snapshot.opened_at) if snapshot.state is not BreakerState.CLOSED else None,
        at=iso(at) or "",
        reason=reason,
        message=message,
        error=error,
        retry_at=retry_at,
        **_where(context),
    )


def _notifier_class() -> type | None:
    try:
        from airflow.sdk.bases.notifier import BaseNotifier
    except ImportError:  # pragma: no cover - depends on the installed Airflow
        return None
    return BaseNotifier


def is_notifier(target: object) -> bool:
    """An Airflow notifier (``BaseNotifier`` or anything shaped like one), as opposed to a callable."""
    base = _notifier_class()
    if base is not None and isinstance(target, base):
        return True
    return callable(getattr(target, "notify", None)) and hasattr(target, "render_template_fields")


def normalize_targets(spec: AlertSpec, name: str) -> list[AlertTarget]:
    """``None``, one target, or an iterable of targets -> a list; anything not callable is a ``TypeError``."""
    if spec is None:
        return []
    if isinstance(spec, Mapping):
        raise TypeError(f"{name}: a per-source mapping is for build_sync_dags; an operator takes targets")
    targets = [spec] if callable(spec) else list(spec)  # type: ignore[arg-type]
    for target in targets:
        if not callable(target):
            raise TypeError(f"{name} takes notifiers or callables, got {target!r}")
    return targets


def _fresh(notifier: Any) -> Any:
    """Rendering a notifier's templates is irreversible: render a copy, keep the original pristine."""
    try:
        return copy.deepcopy(notifier)
    except Exception:
        try:
            return copy.copy(notifier)
        except Exception:
            return notifier


def send_alert(
    targets: Iterable[AlertTarget],
    alert: BreakerAlert,
    context: Mapping[str, Any] | None,
    *,
    name: str,
    logger: Any = None,
) -> int:
    """Call every target with ``alert``; returns how many succeeded. Never raises."""
    logger = logger or log
    sent = 0
    for target in targets:
        try:
            if is_notifier(target):
                notifier_context = {**dict(context or {}), "sync_alert": alert.to_dict()}
                _fresh(target)(notifier_context)
            else:
                target(alert)
            sent += 1
        except Exception:
            logger.exception("%s alert target %r raised; the sync is not affected", name, target)
    return sent
