"""A source's effective limit under ``rate_limit.adaptive`` (issue 19, item 4): the guard's seam.

With ``rate_limit.adaptive: true`` a refusal (429, or a 403 already classified ``RATE_LIMITED``)
that carries no usable quota signal lowers the source's *effective limit* (``policy.adaptive``,
CUBIC via ``adaptive_config.algorithm_for``); successes raise it again, never above
``max_requests``, never below ``min_requests``. A usable signal is what ``policy.quota`` learns and
the guard already obeys: a reset (``Retry-After``, ``RateLimit``/``X-RateLimit-Reset``) or a limit;
a refusal that carries one is left to that, not counted twice.

The effective limit lives in the source's shared state (``SourceState.adaptive``, merged with foreign
writes by ``policy.adaptive.merge``), so every worker and DAG of the source obeys it from its next
admission. Admission uses it for the first window (``rate_limit.max_requests`` per ``window``); the
further windows keep their configured limits. A source without ``adaptive`` is untouched: its
limit is the configured one and its state never gets the key.

Visible as ``effective 42/60`` (``note``, ``describe``), the gauge ``sync.rate_limit.effective_limit``
(sent at a guard's first admission and at every change) and one warning per decrease.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.config import adaptive as adaptive_config
from airflow_sync_provider.observability import metrics
from airflow_sync_provider.policy import adaptive
from airflow_sync_provider.policy.quota import Quota
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.state.store import SourceState

if TYPE_CHECKING:  # the guard above passes them in; imports point downwards only
    from airflow_sync_provider.hooks.outcome import Attempt

DIGITS = 3
"""Stored floats are rounded to milliseconds (and thousandths of a request): the state stays small."""


def usable_signal(quota: Quota | None, *, learning: bool) -> bool:
    """Whether a refusal told the guard how long to wait or how many go (``learning``: the config
    reads quota headers): a reset or a limit. ``remaining 0`` alone says neither."""
    return learning and quota is not None and (quota.reset_at is not None or quota.limit is not None)


def _restored(algorithm: adaptive.Adaptive, raw: Any, now: float) -> adaptive.State:
    """The stored state as the algorithm reads it; a decrease stamped in the future (skew, an edit)
    counts as now, so it can neither freeze the limit nor block the next decrease."""
    state = algorithm.restore(raw, now)
    at = state.get("decreased_at")
    return {**state, "decreased_at": now} if at is not None and at > now else state


def effective_limit(state: SourceState, config: SyncConfig, now: float) -> int:
    """The first window's limit admission obeys: the configured ``max_requests``, or, when adaptive,
    the effective limit stored in ``state`` (between ``min_requests`` and ``max_requests``)."""
    limit = config.rate_limit
    if not limit.adaptive:
        return limit.max_requests
    algorithm = adaptive_config.algorithm_for(limit)
    return algorithm.limit(_restored(algorithm, state.adaptive, now), now)


def describe(state: SourceState, config: SyncConfig, now: float) -> dict[str, Any]:
    """``{"effective_limit": 42, "configured_limit": 60}`` for an adaptive source; ``{}`` otherwise."""
    if not config.rate_limit.adaptive:
        return {}
    return {
        "effective_limit": effective_limit(state, config, now),
        "configured_limit": config.rate_limit.max_requests,
    }


def text(described: dict[str, Any]) -> str:
    """``effective 42/60`` from ``describe``'s fields (empty for a source that is not adaptive)."""
    if described.get("effective_limit") is None:
        return ""
    return f"effective {described['effective_limit']}/{described['configured_limit']}"


def _compact(state: adaptive.State) -> dict[str, Any]:
    return {k: round(v, DIGITS) if isinstance(v, float) else v for k, v in state.items()}


class AdaptiveLimit:
    """One guard's use of the effective limit: what admission obeys and what each answer changes."""

    def __init__(self, config: SyncConfig, *, log: logging.Logger | Any) -> None:
        self.config = config
        self.log = log
        self.algorithm = (
            adaptive_config.algorithm_for(config.rate_limit) if config.rate_limit.adaptive else None
        )
        # the request in flight: (admitted at, requests in the window before it)
        self._sent: tuple[float, int] | None = None
        self._emitted: int | None = None

    def limit(self, state: SourceState, now: float) -> int:
        """The first window's limit now (the configured one when not adaptive)."""
        return effective_limit(state, self.config, now)

    def note(self, state: SourceState, now: float) -> str:
        """`` | effective 42/60`` for the attempt line (empty when not adaptive)."""
        said = text(describe(state, self.config, now))
        return f" | {said}" if said else ""

    def sent(self, state: SourceState, now: float, in_window: int) -> None:
        """A request was admitted at ``now`` with ``in_window`` requests already in the window."""
        if self.algorithm is None:
            return
        self._sent = (now, in_window)
        self._emit(self.limit(state, now))

    def is_refusal(self, attempt: Attempt) -> bool:
        """Whether ``attempt`` lowers the effective limit: a rate-limit refusal without a usable
        quota signal, for an adaptive source with a request in flight."""
        learning = self.config.rate_limit.learn_from_headers
        return (
            self.algorithm is not None
            and self._sent is not None
            and attempt.kind is SyncErrorKind.RATE_LIMITED
            and not usable_signal(attempt.quota, learning=learning)
        )

    def after(self, state: SourceState, attempt: Attempt, now: float) -> tuple[SourceState, bool]:
        """``state`` with the answer to the request in flight applied, and whether it was lowered (the
        guard then saves at once, so every worker obeys the lower limit from its next admission)."""
        if self.algorithm is None or self._sent is None:
            return state, False
        refused = self.is_refusal(attempt)
        (sent_at, in_window), self._sent = self._sent, None
        algorithm = self.algorithm
        current = _restored(algorithm, state.adaptive, now)
        if refused:
            changed = algorithm.on_refused(current, now, sent_at=sent_at, in_window=in_window)
        elif attempt.ok:
            changed = algorithm.on_success(current, now, in_window=in_window)
        else:
            return state, False
        if changed == current:
            return state, False
        before, after = algorithm.limit(current, now), algorithm.limit(changed, now)
        stored = None if changed == algorithm.start(now) else _compact(changed)
        self._emit(after)
        lowered = refused and after < before  # growth capped by what is in use is no news
        if lowered:
            self.log.warning(
                "rate_limit of %s lowered: effective %d -> %d of %d after a %s without a quota signal",
                self.config.source,
                before,
                after,
                self.config.rate_limit.max_requests,
                attempt.status or "rate-limit refusal",
            )
        return state.replace(adaptive=stored), lowered

    def _emit(self, value: int) -> None:
        if value != self._emitted:
            self._emitted = value
            metrics.emit_effective_limit(self.config.source, value)
