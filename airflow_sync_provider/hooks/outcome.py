"""Classify one HTTP attempt: what it means for the result, for retries, and for the breaker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from airflow_sync_provider.policy import quota
from airflow_sync_provider.policy.quota import Quota
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
    redirect_to: str | None = None
    """A same-origin redirect's absolute target (``SyncRun`` follows it through its own slot)."""
    quota: Quota | None = None
    """What the response's headers said about the API's own quota (``policy.quota``)."""

    @property
    def ok(self) -> bool:
        return self.kind is None and self.redirect_to is None


RETRY_AFTER_STATUSES = frozenset({403, 429, 503})
"""Statuses whose ``Retry-After`` is read (on a 403 it is also what makes it a rate limit)."""
FORBIDDEN = 403
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
METHOD_KEEPING_REDIRECTS = frozenset({307, 308})
"""301/302/303 are followed with GET (HEAD stays HEAD); 307/308 keep the method."""


def says_rate_limited(
    headers: Mapping[str, str], retry_after: float | None, *, remaining_header: str | None = None
) -> bool:
    """Whether a refusal's headers say "rate limited" (what turns a 403 into one, as GitHub sends it).

    A usable ``Retry-After`` (``retry_after``, already parsed), or a remaining count of 0 in any family
    ``policy.quota`` reads: ``RateLimit-Remaining``, ``X-RateLimit-Remaining``, the structured
    ``RateLimit: ...;r=0``, or the source's configured ``remaining_header``.
    """
    if retry_after is not None:
        return True
    said = quota.parse_headers(headers, 0.0, remaining_header=remaining_header)
    return said.remaining == 0


def from_status(
    status: int, reason: str, *, rate_limit_signal: bool = False
) -> tuple[SyncErrorKind | None, bool, BreakerEffect]:
    """(kind, retryable, breaker effect) of an HTTP status, per ARCHITECTURE.md section 3.

    ``rate_limit_signal`` (``says_rate_limited``) makes a 403 a rate limit, like a 429: retried after
    the wait it names, neutral for the breaker. A plain 403 stays a non-retryable ``HTTP_ERROR``.
    """
    if 200 <= status < 300:
        return None, False, BreakerEffect.SUCCESS
    if status == 429 or (status == FORBIDDEN and rate_limit_signal):
        return SyncErrorKind.RATE_LIMITED, True, BreakerEffect.NEUTRAL
    if status == 408 or status >= 500:
        return SyncErrorKind.HTTP_ERROR, True, BreakerEffect.FAILURE
    return SyncErrorKind.HTTP_ERROR, False, BreakerEffect.NEUTRAL


def timeout(message: str) -> Attempt:
    return Attempt(SyncErrorKind.TIMEOUT, True, BreakerEffect.FAILURE, message)


def connection_error(message: str) -> Attempt:
    return Attempt(SyncErrorKind.CONNECTION_ERROR, True, BreakerEffect.FAILURE, message)


def invalid(message: str, status: int | None, effect: BreakerEffect = BreakerEffect.NEUTRAL) -> Attempt:
    """The answer cannot be used: never retried; ``effect`` says what it means for the breaker."""
    return Attempt(SyncErrorKind.INVALID_RESPONSE, False, effect, message, status=status)


def unusable_body(message: str, status: int | None, *, is_failure: bool) -> Attempt:
    """A 2xx whose body cannot be used (too large, not JSON, wrong shape, an HTML maintenance page).

    A breaker failure, as a 5xx is (the server is not serving what it should), unless the source's
    ``invalid_response_is_failure`` is false: then neutral (like a 4xx, it neither proves the server
    healthy nor counts against it).
    """
    return invalid(message, status, BreakerEffect.FAILURE if is_failure else BreakerEffect.NEUTRAL)


def redirect_problem(message: str, status: int | None) -> Attempt:
    """A redirect that is not followed (another host, a malformed ``Location``, a loop, too many hops).

    Neutral for the breaker: the server answers as it is set up to (like a 4xx); the endpoint or the
    server's configuration needs fixing, which neither retries nor an open breaker would do.
    """
    return invalid(message, status, BreakerEffect.NEUTRAL)
