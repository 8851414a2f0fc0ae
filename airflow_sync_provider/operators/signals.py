"""What a sync tells the outside world besides its result: the ``sync.*`` metrics after every sync,
the breaker gauges on every transition, and the alerts (breaker opened or closed, rate limited)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.hooks.guard import SourceGuard, breaker_settings
from airflow_sync_provider.observability import alerts, metrics
from airflow_sync_provider.policy import quota, rate_limit
from airflow_sync_provider.policy.breaker import BreakerSnapshot, BreakerState, Transition
from airflow_sync_provider.results import SyncErrorKind, SyncResult
from airflow_sync_provider.state.store import SourceState


@dataclass
class SyncSignals:
    """The metrics and alerts of one sync of ``config.source`` (one per run: it remembers the breaker
    as the run last saw it, for the close alert)."""

    config: SyncConfig
    on_breaker_open: list[Any]
    on_breaker_close: list[Any]
    on_rate_limited: list[Any]
    context: Mapping[str, Any]
    clock: Callable[[], float]
    log: Any
    breaker_seen: BreakerSnapshot | None = None

    @property
    def source(self) -> str:
        return self.config.source

    def after_sync(self, result: SyncResult, guard: SourceGuard) -> None:
        """The six sync metrics, then a rate-limit alert if there is one to send."""
        self._emit_metrics(result, guard)
        if self.on_rate_limited:
            self._alert_rate_limited(result, guard)

    def on_transition(self, moved: Transition, state: SourceState) -> None:
        """Called by the guard once per breaker transition (after its log line): gauges and alerts."""
        previous = self.breaker_seen or state.breaker
        self.breaker_seen = state.breaker
        try:
            metrics.emit_breaker(self.source, state.breaker)
        except Exception:
            self.log.warning("Could not send the breaker metrics of %s", self.source, exc_info=True)
        try:
            self._alert_transition(moved, state, previous)
        except Exception:
            self.log.exception("Alerting the breaker transition of %s failed; the sync goes on", self.source)

    def _emit_metrics(self, result: SyncResult, guard: SourceGuard) -> None:
        try:
            learned = guard.learned_quota(self.clock())
            remaining = learned.remaining if learned is not None else None
            metrics.emit_sync(result, guard.state.breaker, guard.window_usage(), api_remaining=remaining)
        except Exception:  # emit_sync already swallows backend errors; this is belt and braces
            self.log.warning("Could not send the metrics of %s", self.source, exc_info=True)

    def _alert_rate_limited(self, result: SyncResult, guard: SourceGuard) -> None:
        """One alert for a learned spent quota beyond ``max_wait`` (by the sync that learned it, not by
        every run it refuses); else one for a sync that ended rate-limited."""
        if guard.learned_long_wait is not None:
            learned = alerts.learned_quota_alert(
                result,
                guard.learned_long_wait,
                guard.state.breaker,
                guard.settings,
                at=self.clock(),
                max_wait=self.config.max_wait / timedelta(seconds=1),
                cap=guard.learned_cap,
                context=self.context,
            )
            self._send("on_rate_limited", self.on_rate_limited, learned)
            return
        if result.error not in alerts.RATE_LIMIT_KINDS:
            return
        if result.error is SyncErrorKind.RATE_LIMIT_EXCEEDED and (result.error_message or "").startswith(
            quota.SPENT
        ):
            self.log.info(
                "%s: refused by a quota learned earlier; alerted when it was learned, not again", self.source
            )
            return
        retry_at = None
        oldest = rate_limit.oldest(guard.state.window)
        if result.error is SyncErrorKind.RATE_LIMIT_EXCEEDED and oldest is not None:
            retry_at = oldest + guard.hold_seconds
        alert = alerts.rate_limited_alert(
            result,
            guard.state.breaker,
            guard.settings,
            at=self.clock(),
            retry_at=retry_at,
            context=self.context,
        )
        self._send("on_rate_limited", self.on_rate_limited, alert)

    def _alert_transition(self, moved: Transition, state: SourceState, previous: BreakerSnapshot) -> None:
        opened = moved.target_state is BreakerState.OPEN and moved.source_state is BreakerState.CLOSED
        closed = moved.target_state is BreakerState.CLOSED
        if opened and self.on_breaker_open:
            alert = alerts.breaker_open_alert(
                self.source,
                state.breaker,
                breaker_settings(self.config),
                at=moved.at,
                reason=moved.reason,
                context=self.context,
            )
            self._send("on_breaker_open", self.on_breaker_open, alert)
        elif moved.target_state is BreakerState.OPEN and self.on_breaker_open:
            self.log.info("%s: probe failed, breaker open again; no new on_breaker_open alert", self.source)
        elif closed and self.on_breaker_close:
            alert = alerts.breaker_close_alert(
                self.source,
                state.breaker,
                previous,
                breaker_settings(self.config),
                at=moved.at,
                reason=moved.reason,
                context=self.context,
            )
            self._send("on_breaker_close", self.on_breaker_close, alert)

    def _send(self, name: str, targets: list[Any], alert: alerts.BreakerAlert) -> None:
        sent = alerts.send_alert(targets, alert, self.context, name=name, logger=self.log)
        (self.log.info if sent == len(targets) else self.log.warning)(
            "%s alert for %s sent to %d of %d target(s): %s",
            name,
            self.source,
            sent,
            len(targets),
            alert.message,
        )
