"""Classify one HTTP attempt: what it means for the result, for retries, and for the breaker."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from airflow_sync_provider.results import SyncErrorKind


class BreakerEffect(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"


@dataclass(frozen=True)
class Attempt:
    """One request's outcome. ``kind`` is ``None`` on success."""

    kind: SyncErrorKind | None
    retryable: bool
    effect: BreakerEffect
    message: str
    status: int | None = None
    retry_after: float | None = None
    body: Any = None
    headers: dict[str, str] | None = None
    url: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind is None


RETRY_AFTER_STATUSES = frozenset({429, 503})


def from_status(status: int, reason: str) -> tuple[SyncErrorKind | None, bool, BreakerEffect]:
    """(kind, retryable, breaker effect) of an HTTP status, per ARCHITECTURE.md section 3."""
    if 200 <= status < 300:
        return None, False, BreakerEffect.SUCCESS
    if status == 429:
        return SyncErrorKind.RATE_LIMITED, True, BreakerEffect.NEUTRAL
    if status == 408 or status >= 500:
        return SyncErrorKind.HTTP_ERROR, True, BreakerEffect.FAILURE
    return SyncErrorKind.HTTP_ERROR, False, BreakerEffect.NEUTRAL


def timeout(message: str) -> Attempt:
    return Attempt(SyncErrorKind.TIMEOUT, True, BreakerEffect.FAILURE, message)


def connection_error(message: str) -> Attempt:
    return Attempt(SyncErrorKind.CONNECTION_ERROR, True, BreakerEffect.FAILURE, message)


def invalid(message: str, status: int | None, effect: BreakerEffect = BreakerEffect.SUCCESS) -> Attempt:
    """The server answered but the answer is unusable: never retried, never a breaker failure."""
    return Attempt(SyncErrorKind.INVALID_RESPONSE, False, effect, message, status=status)
