"""The quota an API reports, read by the hook from real responses and obeyed by every later sync."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from airflow_sync_provider.config import RateLimitConfig
from airflow_sync_provider.demo.server import DemoServer
from tests.hook import FakeClock, Reply, ScriptedServer, connect, fast_config, make_hook


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch) -> Iterator[DemoServer]:
    with DemoServer() as server:
        connect(monkeypatch, server.url)
        yield server


@pytest.mark.parametrize("family", ["ietf", "ietf-structured", "x-ratelimit"])
def test_each_family_sent_by_the_demo_api_is_read(demo: DemoServer, family: str) -> None:
    demo.set_quota("airdrops", limit=5, window=60, family=family)
    hook = make_hook(FakeClock(time.time()))
    attempt = hook.send(fast_config("airdrops"), "GET", hook.url_for("/airdrops"))
    assert attempt.ok
    assert attempt.quota is not None
    assert (attempt.quota.remaining, attempt.quota.limit) == (4, 5)


def test_a_429_with_retry_after_says_the_quota_is_spent(demo: DemoServer) -> None:
    demo.set_quota("airdrops", limit=1, window=30, family="none")
    clock = FakeClock(time.time())
    hook = make_hook(clock)
    config = fast_config("airdrops")
    assert hook.send(config, "GET", hook.url_for("/airdrops")).quota is None  # "none" announces nothing
    refused = hook.send(config, "GET", hook.url_for("/airdrops"))
    assert refused.status == 429
    assert refused.quota is not None and refused.quota.remaining == 0
    assert refused.quota.reset_at == pytest.approx(clock() + refused.retry_after)


def test_learning_off_reads_nothing(demo: DemoServer) -> None:
    demo.set_quota("airdrops", limit=5, window=60, family="ietf")
    hook = make_hook(FakeClock())
    config = fast_config("airdrops", rate_limit=RateLimitConfig(learn_from_headers=False))
    assert hook.send(config, "GET", hook.url_for("/airdrops")).quota is None


def test_configured_header_names(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    reply = Reply.page([1, 2], **{"x-app-left": "0", "x-app-reset": str(int(clock() + 90))})
    with ScriptedServer([reply]) as server:
        connect(monkeypatch, server.url)
        hook = make_hook(clock)
        limit = RateLimitConfig(remaining_header="X-App-Left", reset_header="x-app-reset", reset_is="epoch")
        attempt = hook.send(fast_config("airdrops", rate_limit=limit), "GET", hook.url_for("/airdrops"))
    assert attempt.quota is not None
    assert (attempt.quota.remaining, attempt.quota.reset_at) == (0, clock() + 90)
