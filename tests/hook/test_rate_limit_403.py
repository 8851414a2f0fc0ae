"""A 403 that says "rate limited" (GitHub's primary and secondary limits) waits and retries as a 429 does.

GitHub's documented answers (REST API, "Rate limits for the REST API" and "Troubleshooting"): past the
primary limit a 403 (or 429) with ``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset`` in UTC epoch
seconds (wait until then); past a secondary limit a 403 (or 429) whose ``retry-after`` names the
seconds to wait. A 403 without either (a token without the scope) is not retried.
"""

from __future__ import annotations

import pytest

from airflow_sync_provider.config import RateLimitConfig
from airflow_sync_provider.policy.breaker import BreakerSnapshot, BreakerState
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState
from tests.hook import (
    FakeClock,
    Reply,
    ScriptedServer,
    Sleeps,
    connect,
    fast_config,
    make_hook,
    stored,
    sync_once,
)

PRIMARY_BODY = (
    b'{"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com"}'
)
SECONDARY_BODY = b'{"message": "You have exceeded a secondary rate limit. Please wait a few minutes."}'
PLAIN_BODY = b'{"message": "Resource not accessible by personal access token"}'


def _run(monkeypatch: pytest.MonkeyPatch, replies: list[Reply], **config: object) -> tuple:
    clock = FakeClock()
    store = InMemoryStateStore()
    store.save(SourceState("sponsored", breaker=BreakerSnapshot(failure_count=4)))  # one from opening
    sleeps = Sleeps(clock)
    with ScriptedServer(replies) as server:
        connect(monkeypatch, server.url)
        out = sync_once(make_hook(clock, store), fast_config(**config), clock=clock, sleep=sleeps)
    return out, server.log, sleeps, stored(store, "sponsored").breaker


def test_primary_limit_403_waits_for_the_reset_then_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    reset = FakeClock()() + 40
    refused = Reply(
        status=403,
        body=PRIMARY_BODY,
        headers={
            "x-ratelimit-limit": "60",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(int(reset)),
        },
    )
    out, log, sleeps, breaker = _run(monkeypatch, [refused, Reply.page([1, 2])])
    assert out.error is None, out.result.error_message
    assert out.result.items_processed == 2 and len(log) == 2
    assert sum(sleeps) == pytest.approx(40.0)  # the learned reset, not the 1 s backoff
    assert (breaker.state, breaker.failure_count) == (BreakerState.CLOSED, 0)


def test_secondary_limit_403_honours_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = Reply(status=403, body=SECONDARY_BODY, headers={"retry-after": "30"})
    out, log, sleeps, _ = _run(monkeypatch, [refused, Reply.page([1])])
    assert out.error is None, out.result.error_message
    assert len(log) == 2 and sleeps == [30.0]


def test_rate_limit_403s_that_outlast_the_retries_end_rate_limited_without_a_breaker_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refused = Reply(status=403, body=SECONDARY_BODY, headers={"retry-after": "2"})
    out, log, sleeps, breaker = _run(monkeypatch, [refused], max_retries=2)
    assert out.error is not None and out.error.kind == SyncErrorKind.RATE_LIMITED
    assert len(log) == 3 and sleeps == [2.0, 2.0] and out.task_state == "failed"
    assert (breaker.state, breaker.failure_count) == (BreakerState.CLOSED, 4)


def test_a_plain_403_is_an_http_error_and_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = Reply(status=403, body=PLAIN_BODY, headers={"x-ratelimit-remaining": "4999"})
    out, log, sleeps, breaker = _run(monkeypatch, [plain, Reply.page([1])])
    assert out.error is not None and out.error.kind == SyncErrorKind.HTTP_ERROR
    assert "-> 403" in str(out.error)
    assert len(log) == 1 and sleeps == []
    assert (breaker.state, breaker.failure_count) == (BreakerState.CLOSED, 4)


def test_a_403_with_the_configured_remaining_header_at_zero_is_rate_limited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reset = FakeClock()() + 25
    refused = Reply(status=403, headers={"x-app-left": "0", "x-app-reset": str(int(reset))})
    limit = RateLimitConfig(remaining_header="X-App-Left", reset_header="x-app-reset", reset_is="epoch")
    out, log, sleeps, _ = _run(monkeypatch, [refused, Reply.page([1])], rate_limit=limit)
    assert out.error is None, out.result.error_message
    assert len(log) == 2 and sum(sleeps) == pytest.approx(25.0)
