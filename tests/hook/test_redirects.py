"""Redirects (issue 10, items 2 and 6): every hop is a request of its own, and every outcome is recorded.

``SyncRun.request`` follows same-origin redirects itself: each hop passes the breaker and takes its
own window slot, so the window counts what reaches the wire. A loop or more than ``max_redirects``
hops ends the sync as ``INVALID_RESPONSE`` (not retried, no breaker failure); a malformed
``Location`` is recorded like any other outcome, so a half-open probe is never left in flight.
Real loopback servers (``ScriptedServer``, the demo API), an in-memory store and a fake clock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests

from airflow_sync_provider.config import CircuitBreakerConfig, SyncConfig
from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.hooks.outcome import BreakerEffect
from airflow_sync_provider.policy.breaker import BreakerSnapshot, BreakerState
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.run.handlers import SyncContext
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState
from tests.hook import (
    T0,
    FakeClock,
    Reply,
    ScriptedServer,
    Sleeps,
    SyncOutcome,
    connect,
    fast_config,
    make_hook,
    settled_requests,
    stored,
    sync_once,
)

PAGE = Reply.page([{"id": 1}, {"id": 2}])


def run(
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    config: SyncConfig,
    store: InMemoryStateStore | None = None,
    clock: FakeClock | None = None,
    **kwargs: Any,
) -> tuple[SyncOutcome, InMemoryStateStore]:
    clock = clock or FakeClock()
    store = store or InMemoryStateStore()
    connect(monkeypatch, url)
    return sync_once(make_hook(clock, store), config, clock=clock, sleep=Sleeps(clock), **kwargs), store


def slots(store: InMemoryStateStore, source: str = "sponsored") -> int:
    return len(stored(store, source).window)


def test_a_trailing_slash_301_takes_two_requests_and_two_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    with ScriptedServer([Reply(status=301, headers={"Location": "/sponsored/"}), PAGE]) as api:
        out, store = run(monkeypatch, api.url, fast_config())
    assert out.error is None and out.result.items_processed == 2
    assert [r["path"] for r in api.log] == ["/sponsored", "/sponsored/"]
    assert slots(store) == 2  # before: one slot for both requests


def test_a_redirect_loop_sends_at_most_max_redirects_plus_one_each_in_its_own_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hops = [Reply(status=302, headers={"Location": f"/sponsored?hop={n}"}) for n in range(1, 40)]
    with ScriptedServer(hops) as api:
        out, store = run(monkeypatch, api.url, fast_config(max_redirects=3))
    assert out.error is not None and out.error.kind == SyncErrorKind.INVALID_RESPONSE
    assert "more than max_redirects=3 redirects" in str(out.error)
    assert len(api.log) == 4  # the request and 3 hops; before: ~124 (30 hops x 4 attempts)
    assert slots(store) == len(api.log)
    assert out.result.retry_count == 0 and out.task_state == "failed"
    assert stored(store, "sponsored").breaker.failure_count == 0  # not a breaker failure


def test_a_loop_back_to_a_visited_url_stops_at_the_repeat(monkeypatch: pytest.MonkeyPatch) -> None:
    script = [
        Reply(status=302, headers={"Location": "/elsewhere"}),
        Reply(status=302, headers={"Location": "/sponsored"}),
    ]
    with ScriptedServer(script) as api:
        out, store = run(monkeypatch, api.url, fast_config())
    assert out.error is not None and out.error.kind == SyncErrorKind.INVALID_RESPONSE
    assert "redirect loop (/sponsored again)" in str(out.error)
    assert [r["path"] for r in api.log] == ["/sponsored", "/elsewhere"]
    assert slots(store) == 2


def test_the_demo_redirect_loop_is_one_request(monkeypatch: pytest.MonkeyPatch) -> None:
    with DemoServer() as demo:
        demo.set_fault("redirect", source="sponsored", location=f"{demo.url}/sponsored")
        out, store = run(monkeypatch, demo.url, fast_config())
        received = settled_requests(demo, "sponsored")
    assert out.error is not None and out.error.kind == SyncErrorKind.INVALID_RESPONSE
    assert len(received) == 1 == slots(store)


def test_max_redirects_zero_follows_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    with ScriptedServer([Reply(status=301, headers={"Location": "/sponsored/"}), PAGE]) as api:
        out, _ = run(monkeypatch, api.url, fast_config(max_redirects=0))
    assert out.error is not None and "more than max_redirects=0" in str(out.error)
    assert len(api.log) == 1


@pytest.mark.parametrize(
    ("status", "method", "followed_with"),
    [
        (301, "POST", "GET"),
        (302, "POST", "GET"),
        (303, "POST", "GET"),
        (307, "POST", "POST"),
        (308, "PUT", "PUT"),
    ],
)
def test_301_302_303_follow_with_get_307_308_keep_the_method(
    monkeypatch: pytest.MonkeyPatch, status: int, method: str, followed_with: str
) -> None:
    def handler(ctx: SyncContext) -> int:
        return len(ctx.request(method, "/sponsored", mark="1").body["items"])

    with ScriptedServer([Reply(status=status, headers={"Location": "/moved?to=here"}), PAGE]) as api:
        out, store = run(monkeypatch, api.url, fast_config(), handler=handler)
    assert out.error is None and out.result.items_processed == 2
    assert [(r["method"], r["path"]) for r in api.log] == [
        (method, "/sponsored?mark=1"),
        (followed_with, "/moved?to=here"),  # the Location is complete: params are not added again
    ]
    assert slots(store) == 2


def test_a_redirect_to_another_host_is_refused_and_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        ScriptedServer([PAGE]) as other,
        ScriptedServer([Reply(status=302, headers={"Location": f"{other.url}/sponsored"})]) as api,
    ):
        out, store = run(monkeypatch, api.url, fast_config())
        assert other.log == []
    assert out.error is not None and out.error.kind == SyncErrorKind.INVALID_RESPONSE
    assert "refused redirect to another host" in str(out.error)
    assert len(api.log) == 1 == slots(store)


HALF_OPEN_DUE = BreakerSnapshot(BreakerState.OPEN, failure_count=5, opened_at=T0 - 301)
"""Open for longer than the default reset_timeout (5 min): the next request is the half-open probe."""


@pytest.mark.parametrize(
    "location", ["http://127.0.0.1:99999/sponsored", "http://[::1/sponsored", "http://127.0.0.1:port/x"]
)
def test_a_malformed_location_on_a_half_open_probe_is_recorded_not_left_in_flight(
    monkeypatch: pytest.MonkeyPatch, location: str
) -> None:
    store = InMemoryStateStore()
    store.save(SourceState("sponsored", breaker=HALF_OPEN_DUE))
    clock = FakeClock()
    config = fast_config(circuit_breaker=CircuitBreakerConfig(reset_timeout=timedelta(minutes=5)))
    with ScriptedServer([Reply(status=302, headers={"Location": location}), PAGE]) as api:
        out, _ = run(monkeypatch, api.url, config, store=store, clock=clock)
        assert out.error is not None and out.error.kind == SyncErrorKind.INVALID_RESPONSE
        assert "malformed Location" in str(out.error)
        after = stored(store, "sponsored").breaker
        # before: ValueError out of send(), the probe stayed in flight until reset_timeout
        assert (after.state, after.probes_in_flight) == (BreakerState.HALF_OPEN, 0)
        again, _ = run(monkeypatch, api.url, config, store=store, clock=clock)  # the next sync may probe
    assert again.error is None
    assert stored(store, "sponsored").breaker.state is BreakerState.CLOSED
    assert len(api.log) == 2


def test_too_many_redirects_from_requests_is_not_a_retryable_connection_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``requests`` no longer follows redirects; if it ever raised ``TooManyRedirects`` it is final."""
    with ScriptedServer([PAGE]) as api:
        connect(monkeypatch, api.url)
        hook = make_hook(FakeClock())

        def loop(*args: Any, **kwargs: Any) -> Any:
            raise requests.TooManyRedirects("Exceeded 30 redirects.")

        monkeypatch.setattr(hook.session, "request", loop)
        attempt = hook.send(fast_config(), "GET", f"{api.url}/sponsored")
    assert (attempt.kind, attempt.retryable, attempt.effect) == (
        SyncErrorKind.INVALID_RESPONSE,
        False,
        BreakerEffect.NEUTRAL,
    )


def test_a_send_that_raises_still_hands_the_half_open_probe_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a send ends with is recorded: here an unexpected exception (a bug) on the probe."""
    store, clock = InMemoryStateStore(), FakeClock()
    store.save(SourceState("sponsored", breaker=HALF_OPEN_DUE))
    with ScriptedServer([PAGE]) as api:
        connect(monkeypatch, api.url)
        hook = make_hook(clock, store)

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("a bug in send")

        monkeypatch.setattr(hook, "send", broken)
        out = sync_once(hook, fast_config(), clock=clock, sleep=Sleeps(clock))
    assert out.error is not None and out.error.kind == SyncErrorKind.HANDLER_ERROR
    after = stored(store, "sponsored").breaker
    assert (after.state, after.probes_in_flight) == (BreakerState.HALF_OPEN, 0)
