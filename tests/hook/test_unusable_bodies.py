"""Unusable 2xx bodies (issue 10, item 7) are breaker failures, as a 5xx is, unless the config says not.

A maintenance page served with 200, a body over ``max_response_bytes`` or the wrong shape used to
count as a success: it closed a half-open breaker and reset the failure count. Now each is a failure
(``invalid_response_is_failure: true``, the default) or neutral (``false``); never retried either way.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_sync_provider.policy.breaker import BreakerSnapshot, BreakerState
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState
from tests.hook import (
    T0,
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

HTML = Reply(body=b"<html><body><h1>Down for maintenance</h1></body></html>")
WRONG_SHAPE = Reply(body=b'{"data": {"rows": []}}')
TOO_LARGE = Reply(body=b'{"items": [' + b" " * (2 * 1024 * 1024) + b"]}")
BODIES = {"maintenance-html": HTML, "wrong-shape": WRONG_SHAPE, "too-large": TOO_LARGE}
HALF_OPEN_DUE = BreakerSnapshot(BreakerState.OPEN, failure_count=5, opened_at=T0 - 301)
THREE_FAILURES = BreakerSnapshot(BreakerState.CLOSED, failure_count=3, last_failure_at=T0 - 60)


def sync(monkeypatch: pytest.MonkeyPatch, reply: Reply, breaker: BreakerSnapshot, **config: Any) -> Any:
    clock, store = FakeClock(), InMemoryStateStore()
    store.save(SourceState("sponsored", breaker=breaker))
    with ScriptedServer([reply]) as api:
        connect(monkeypatch, api.url)
        cfg = fast_config(max_response_bytes=1024 * 1024, **config)
        out = sync_once(make_hook(clock, store), cfg, clock=clock, sleep=Sleeps(clock))
        received = len(api.log)
    return out, stored(store, "sponsored").breaker, received


@pytest.mark.parametrize("body", BODIES, ids=list(BODIES))
def test_an_unusable_body_on_a_half_open_probe_reopens_the_breaker(
    monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    out, breaker, received = sync(monkeypatch, BODIES[body], HALF_OPEN_DUE)
    assert out.error is not None and out.error.kind == SyncErrorKind.INVALID_RESPONSE
    assert received == 1 and out.result.retry_count == 0  # never retried
    assert breaker.state is BreakerState.OPEN  # before: the probe "succeeded" and closed it
    assert [(t.source_state, t.target_state) for t in out.guard.transitions] == [
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.OPEN),
    ]


@pytest.mark.parametrize("body", BODIES, ids=list(BODIES))
def test_an_unusable_body_counts_a_failure_instead_of_resetting_the_count(
    monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    out, breaker, _ = sync(monkeypatch, BODIES[body], THREE_FAILURES)
    assert out.error is not None and out.error.kind == SyncErrorKind.INVALID_RESPONSE
    assert (breaker.state, breaker.failure_count) == (BreakerState.CLOSED, 4)  # before: reset to 0
    assert breaker.last_error is not None and "GET /sponsored" in breaker.last_error


@pytest.mark.parametrize("body", BODIES, ids=list(BODIES))
def test_invalid_response_is_failure_false_makes_them_neutral(
    monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    out, breaker, _ = sync(monkeypatch, BODIES[body], HALF_OPEN_DUE, invalid_response_is_failure=False)
    assert out.error is not None and out.error.kind == SyncErrorKind.INVALID_RESPONSE
    # neither closed by a "success" nor reopened: the probe is handed back for the next sync
    assert (breaker.state, breaker.probes_in_flight, breaker.failure_count) == (BreakerState.HALF_OPEN, 0, 5)
    _, closed_count, _ = sync(monkeypatch, BODIES[body], THREE_FAILURES, invalid_response_is_failure=False)
    assert closed_count.failure_count == 3
