"""Advertised windows at the API (issue 19 item 2): an API stating its day quota only in the
``X-RateLimit-*`` family (``X-RateLimit-Limit-Day``, Kong's form) is obeyed as a learned window by a
sync whose own config allows far more: the request past the day's quota is never sent.

A scripted loopback server, the real hook and ``SyncRun``, a fake clock (no sleeps).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_sync_provider.config import RateLimitConfig
from airflow_sync_provider.exceptions import SyncAbort
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.run.handlers import SyncContext, default_handler
from airflow_sync_provider.run.sync_run import SyncRun
from airflow_sync_provider.state.store import InMemoryStateStore
from tests.hook import LOG, FakeClock, Reply, ScriptedServer, Sleeps, connect, fast_config, make_hook, stored

DAY_QUOTA = 3


def pages(**headers: str) -> list[Reply]:
    """``DAY_QUOTA`` pages, each with ``headers``, then the 429 an API answers past its day quota."""
    served = [Reply.page([i], str(i + 1), **headers) for i in range(DAY_QUOTA)]
    return [*served, Reply(429, b"{}", {"Retry-After": "86400"})]


def sync(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, *, learn: bool
) -> tuple[InMemoryStateStore, SyncAbort]:
    """One sync of a config allowing 100 per minute; it ends refused (by us or by the API)."""
    connect(monkeypatch, server.url)
    clock, store = FakeClock(), InMemoryStateStore()
    limit = RateLimitConfig(max_requests=100, window=timedelta(minutes=1), learn_from_headers=learn)
    config = fast_config(endpoint="/items", max_retries=0, rate_limit=limit)
    hook = make_hook(clock, store)
    guard = hook.open_guard(config, log=LOG)
    run = SyncRun(config, hook, guard, clock=clock, sleep=Sleeps(clock), log=LOG)
    with pytest.raises(SyncAbort) as refused:
        default_handler(SyncContext(run, {}))
    guard.flush()
    return store, refused.value


@pytest.mark.parametrize(
    "said",
    [
        {"X_RateLimit_Limit_Day": str(DAY_QUOTA), "X_RateLimit_Remaining_Day": "1"},  # Kong's form
        {"X_RateLimit_Limit": f"100, {DAY_QUOTA};window=86400"},  # the draft's list form
        {"RateLimit_Policy": f"100;w=60, {DAY_QUOTA};w=86400"},
    ],
    ids=["x-ratelimit-limit-day", "x-ratelimit-limit-list", "ratelimit-policy"],
)
def test_a_day_quota_the_api_states_is_never_exceeded(
    monkeypatch: pytest.MonkeyPatch, said: dict[str, str]
) -> None:
    with ScriptedServer(pages(**said)) as server:
        store, refused = sync(server, monkeypatch, learn=True)
    assert len(server.log) == DAY_QUOTA  # the 429 behind the quota was never asked for
    assert refused.kind is SyncErrorKind.RATE_LIMIT_EXCEEDED
    assert "3 requests per 86400s, advertised by the API" in str(refused)
    (learned,) = stored(store, "sponsored").learned_windows
    assert learned[:2] == (86400.0, DAY_QUOTA)


def test_without_learning_the_request_past_the_quota_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    with ScriptedServer(pages(X_RateLimit_Limit_Day=str(DAY_QUOTA))) as server:
        store, refused = sync(server, monkeypatch, learn=False)
    assert len(server.log) == DAY_QUOTA + 1 and "429 Too Many Requests" in str(refused)
    assert stored(store, "sponsored").learned_windows == ()
