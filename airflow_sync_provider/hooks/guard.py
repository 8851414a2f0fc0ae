"""One sync's hold on a source's shared state: breaker permission, window slots, recorded outcomes.

The state is read once when the guard is made and written only when a change must survive a
crash: a window slot taken, a failure counted, a breaker transition, the final result.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.hooks.outcome import Attempt, BreakerEffect
from airflow_sync_provider.policy import breaker, rate_limit
from airflow_sync_provider.policy.breaker import BreakerSettings, BreakerState, Transition
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.state import SourceState, StateStore, variable_key

SKEW_TOLERANCE = 1.0
"""Stored times up to this many seconds ahead of the clock are ordinary skew between workers."""


def breaker_settings(config: SyncConfig) -> BreakerSettings:
    cb = config.circuit_breaker
    return BreakerSettings(
        failure_threshold=cb.failure_threshold,
        reset_timeout=cb.reset_timeout / timedelta(seconds=1),
        half_open_max_attempts=cb.half_open_max_attempts,
        reset_multiplier=cb.reset_multiplier,
        max_reset_timeout=cb.reset_timeout_cap / timedelta(seconds=1),
    )


def clamp_future_times(state: SourceState, now: float, warn: Callable[[str], None]) -> SourceState:
    """Stored times in the future (clock skew, hand-edited state) are clamped to ``now``, with a warning.

    Without this an ``opened_at`` a year ahead keeps the breaker open for a year, and a half-open
    breaker whose probes never came back (``probes_in_flight`` stuck, no ``half_open_since``) never
    lets a probe through again. The clamped state is written by the sync's next save.
    """
    b = state.breaker
    fixes: list[str] = []
    changes: dict[str, Any] = {}
    for name in ("opened_at", "half_open_since", "last_failure_at"):
        value = getattr(b, name)
        if value is not None and value > now:
            changes[name] = now
            if value > now + SKEW_TOLERANCE:
                fixes.append(f"breaker.{name} {value - now:.0f}s in the future")
    if b.state is BreakerState.HALF_OPEN and b.half_open_since is None:
        changes["half_open_since"] = now
        fixes.append("breaker.half_open_since missing for a half-open breaker")
    ahead = [t for t in state.window if t > now]
    window = tuple(min(t, now) for t in state.window) if ahead else state.window
    if ahead and max(ahead) > now + SKEW_TOLERANCE:
        fixes.append(f"{len(ahead)} window entries up to {max(ahead) - now:.0f}s in the future")
    updated_at = state.updated_at
    if updated_at is not None and updated_at > now:
        updated_at = now
    if not changes and window == state.window and updated_at == state.updated_at:
        return state
    if fixes:
        warn(f"{variable_key(state.source)}: {'; '.join(fixes)}; set to now")
    breaker_now = dataclasses.replace(b, **changes) if changes else b
    return state.replace(breaker=breaker_now, window=window, updated_at=updated_at)


@dataclass(frozen=True)
class Admission:
    """May the next request be sent? When not: why (``kind``) and how long until it may (``wait``)."""

    allowed: bool
    kind: SyncErrorKind | None = None
    wait: float = 0.0
    message: str = ""


class SourceGuard:
    """Breaker and sliding window of one source for the duration of one sync."""

    def __init__(
        self,
        config: SyncConfig,
        store: StateStore,
        *,
        clock: Callable[[], float],
        log: logging.Logger | Any,
        on_transition: Callable[[Transition, SourceState], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.log = log
        self.on_transition = on_transition
        self.settings = breaker_settings(config)
        self.window_seconds = config.rate_limit.window / timedelta(seconds=1)
        self.state: SourceState = clamp_future_times(
            store.load(config.source, on_warning=log.warning), clock(), log.warning
        )
        self.transitions: list[Transition] = []
        self.requests_sent = 0
        self._saved = self.state

    def admit(self) -> Admission:
        """Breaker permission, then a window slot; persists the slot before the request is sent."""
        now = self.clock()
        admission, permit, decision = self._decide(now)
        self._note(permit.transition, permit.snapshot)
        if decision is None:  # the breaker refused: nothing else changes
            return admission
        if not admission.allowed:  # the window refused: a half-open probe taken above goes back
            snapshot = breaker.record_neutral(permit.snapshot)
            self.state = self.state.replace(breaker=snapshot, window=decision.timestamps)
            return admission
        self.state = self.state.replace(breaker=permit.snapshot, window=decision.timestamps)
        self._save(now)
        self.requests_sent += 1
        return admission

    def peek(self) -> Admission:
        """What ``admit`` would answer now, without taking a slot or writing anything (dry runs)."""
        return self._decide(self.clock())[0]

    def _decide(self, now: float) -> tuple[Admission, breaker.Permit, rate_limit.WindowDecision | None]:
        """The answer to "may I send now?" and the policy decisions behind it (nothing applied)."""
        permit = breaker.before_request(self.state.breaker, self.settings, now)
        snapshot = permit.snapshot
        if not permit.allowed:
            wait = max((permit.retry_at or now) - now, 0.0)
            message = (
                f"circuit breaker is {snapshot.state.value} ({snapshot.failure_count} failures, last "
                f"error: {snapshot.last_error}); next probe in {wait:.0f}s"
            )
            return Admission(False, SyncErrorKind.CIRCUIT_BREAKER_OPEN, wait, message), permit, None
        limit = self.config.rate_limit
        decision = rate_limit.acquire(
            self.state.window, now, max_requests=limit.max_requests, window=self.window_seconds
        )
        if not decision.granted:
            message = (
                f"rate limit window full ({limit.max_requests} requests per "
                f"{self.window_seconds:.0f}s); next slot in {decision.wait:.1f}s"
            )
            return (
                Admission(False, SyncErrorKind.RATE_LIMIT_EXCEEDED, decision.wait, message),
                permit,
                decision,
            )
        message = f"breaker {snapshot.state.value}, window has room"
        return Admission(True, message=message), permit, decision

    def record(self, attempt: Attempt) -> None:
        """Apply an attempt's breaker effect; persist when the count or the state changed."""
        now = self.clock()
        before = self.state.breaker
        if attempt.effect is BreakerEffect.SUCCESS:
            after, moved = breaker.record_success(before, now)
        elif attempt.effect is BreakerEffect.FAILURE:
            after, moved = breaker.record_failure(before, self.settings, now, attempt.message[:300])
        else:
            after, moved = breaker.record_neutral(before), None
        if after == before:
            return
        self.state = self.state.replace(breaker=after)
        self._note(moved, after)
        # A reset success count in a closed breaker can wait for the final write; the rest cannot.
        if moved is not None or attempt.effect is BreakerEffect.FAILURE:
            self._save(now)

    def finish(self, result: dict[str, Any]) -> None:
        """Store the sync's result with the state (the one write every sync ends with)."""
        self.state = self.state.replace(last_result=result)
        self._save(self.clock())

    @property
    def breaker_open(self) -> bool:
        return self.state.breaker.state is BreakerState.OPEN

    def window_usage(self) -> float:
        limit = self.config.rate_limit
        return rate_limit.usage(
            self.state.window, self.clock(), max_requests=limit.max_requests, window=self.window_seconds
        )

    def _note(self, moved: Transition | None, snapshot: breaker.BreakerSnapshot) -> None:
        if moved is None:
            return
        self.transitions.append(moved)
        self.state = self.state.replace(breaker=snapshot)
        self.log.warning(
            "Circuit breaker of %s: %s -> %s (%s)",
            self.config.source,
            moved.source_state.value,
            moved.target_state.value,
            moved.reason,
        )
        if self.on_transition is not None:
            self.on_transition(moved, self.state)

    def flush(self) -> None:
        """Persist changes not yet written (before a deferral)."""
        if self.state != self._saved:
            self._save(self.clock())

    def _save(self, now: float) -> None:
        self.state = self.state.replace(updated_at=now)
        self.store.save(self.state)
        self._saved = self.state
