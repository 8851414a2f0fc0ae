"""What one HTTP attempt means: a 403 carrying rate-limit signals is a rate limit (issue 19, item 3)."""

from __future__ import annotations

import pytest

from airflow_sync_provider.hooks import outcome
from airflow_sync_provider.hooks.outcome import BreakerEffect
from airflow_sync_provider.results import SyncErrorKind

RATE_LIMITED = (SyncErrorKind.RATE_LIMITED, True, BreakerEffect.NEUTRAL)
PLAIN_403 = (SyncErrorKind.HTTP_ERROR, False, BreakerEffect.NEUTRAL)


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1800000600"}, None),  # GitHub primary
        ({"X-RateLimit-Remaining": "0"}, None),
        ({"RateLimit-Remaining": "0", "RateLimit-Reset": "30"}, None),
        ({"RateLimit": '"default";r=0;t=30'}, None),
        ({"Retry-After": "60"}, 60.0),  # GitHub secondary: a wait, the primary quota untouched
        ({"Retry-After": "0", "x-ratelimit-remaining": "4999"}, 0.0),
    ],
    ids=["x-primary", "x-mixed-case", "ietf", "ietf-structured", "retry-after", "retry-after-zero"],
)
def test_a_403_with_a_rate_limit_signal_is_rate_limited(
    headers: dict[str, str], retry_after: float | None
) -> None:
    assert outcome.says_rate_limited(headers, retry_after)
    assert outcome.from_status(403, "Forbidden", rate_limit_signal=True) == RATE_LIMITED


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-ratelimit-remaining": "4999", "x-ratelimit-reset": "1800000600"},
        {"RateLimit": '"default";r=12;t=30'},
        {"x-ratelimit-remaining": "garbage"},
        {"x-ratelimit-limit": "0"},
    ],
    ids=["no-headers", "quota-left", "structured-left", "garbage", "limit-only"],
)
def test_a_plain_403_stays_an_http_error(headers: dict[str, str]) -> None:
    assert not outcome.says_rate_limited(headers, None)
    assert outcome.from_status(403, "Forbidden") == PLAIN_403


def test_the_configured_remaining_header_is_a_signal_too() -> None:
    headers = {"X-App-Left": "0"}
    assert not outcome.says_rate_limited(headers, None)
    assert outcome.says_rate_limited(headers, None, remaining_header="x-app-left")


def test_the_signal_changes_nothing_for_other_statuses() -> None:
    assert outcome.from_status(404, "Not Found", rate_limit_signal=True) == PLAIN_403
    assert outcome.from_status(401, "Unauthorized", rate_limit_signal=True) == PLAIN_403
    assert outcome.from_status(429, "Too Many Requests") == RATE_LIMITED
