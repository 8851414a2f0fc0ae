"""Connection -> session, against the demo API: base URL, auth, headers, and no leaked credentials."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest

from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.hooks.sync import CrossHostRedirect
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.state.store import InMemoryStateStore
from tests.hook import (
    SHORT_TIMEOUT,
    FakeClock,
    Sleeps,
    closed_port,
    connect,
    fast_config,
    make_hook,
    sync_once,
)

PASSWORD = "pw-PLANTED-7f3a9c"
API_KEY = "key-PLANTED-51e0b2"


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer() as srv:
        yield srv


@pytest.fixture
def demo(server: DemoServer) -> Iterator[DemoServer]:
    server.clear_faults()
    server.clear_requests()
    yield server
    server.clear_faults()


def test_hook_reads_no_connection_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SYNC_DEFAULT", raising=False)
    hook = make_hook(FakeClock())
    assert hook.conn_id == "sync_default"
    assert hook._session is None


def test_base_url_from_host_and_port(demo: DemoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, demo.url)
    hook = make_hook(FakeClock())
    assert hook.url_for("/sponsored") == f"{demo.url}/sponsored"
    assert hook.url_for("sponsored") == f"{demo.url}/sponsored"
    assert hook.url_for(f"{demo.url}/sponsored?cursor=5") == f"{demo.url}/sponsored?cursor=5"
    with pytest.raises(CrossHostRedirect, match="another host"):
        hook.url_for("http://127.0.0.2:9/sponsored")
    with pytest.raises(CrossHostRedirect):
        hook.url_for(f"https://127.0.0.1:{demo.port}/sponsored")  # another scheme is another origin

    outcome = sync_once(hook, fast_config(), clock=FakeClock(), sleep=Sleeps(FakeClock()))
    assert outcome.error is None
    assert outcome.result.items_processed == 12
    assert [r["path"] for r in demo.requests()] == ["/sponsored"]


def test_basic_auth_arrives_at_the_server(demo: DemoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, demo.url, login="syncer", password=PASSWORD)
    clock = FakeClock()
    outcome = sync_once(make_hook(clock), fast_config(), clock=clock, sleep=Sleeps(clock))
    assert outcome.error is None
    (request,) = demo.requests()
    expected = "Basic " + base64.b64encode(f"syncer:{PASSWORD}".encode()).decode()
    assert request["headers"]["Authorization"] == expected


def test_api_key_header_sends_the_password_in_that_header_and_no_basic_auth(
    demo: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, demo.url, login="syncer", password=API_KEY, extra={"api_key_header": "X-Api-Key"})
    clock = FakeClock()
    outcome = sync_once(make_hook(clock), fast_config(), clock=clock, sleep=Sleeps(clock))
    assert outcome.error is None
    (request,) = demo.requests()
    assert request["headers"]["X-Api-Key"] == API_KEY
    assert request["authorization"] is False
    names = {n.lower() for n in request["header_names"]}
    assert "api_key_header" not in names and "authorization" not in names


def test_extra_fields_are_sent_as_headers(demo: DemoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, demo.url, extra={"X-Client": "sync-tests", "Accept-Language": "de"})
    clock = FakeClock()
    outcome = sync_once(make_hook(clock), fast_config(), clock=clock, sleep=Sleeps(clock))
    assert outcome.error is None
    (request,) = demo.requests()
    assert request["headers"]["X-Client"] == "sync-tests"
    assert request["headers"]["Accept-Language"] == "de"
    assert request["authorization"] is False


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ({"mode": "error"}, SyncErrorKind.HTTP_ERROR),
        ({"mode": "rate_limit", "retry_after": "600"}, SyncErrorKind.RATE_LIMITED),
        ({"mode": "malformed"}, SyncErrorKind.INVALID_RESPONSE),
        ({"mode": "wrong_shape"}, SyncErrorKind.INVALID_RESPONSE),
        ({"mode": "not_found"}, SyncErrorKind.HTTP_ERROR),
        ({"mode": "redirect", "location": "http://127.0.0.2:9/x"}, SyncErrorKind.INVALID_RESPONSE),
        ({"mode": "reset"}, SyncErrorKind.CONNECTION_ERROR),
        ({"mode": "slow", "delay": 1.0}, SyncErrorKind.TIMEOUT),
        (None, SyncErrorKind.CONNECTION_ERROR),  # connection refused
    ],
    ids=["500", "429", "non-json", "wrong-shape", "404", "redirect", "reset", "timeout", "refused"],
)
@pytest.mark.parametrize("auth", ["basic", "api_key_header"])
def test_credentials_never_leak_into_messages_results_state_or_logs(
    demo: DemoServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    fault: dict[str, object] | None,
    kind: SyncErrorKind,
    auth: str,
) -> None:
    url = demo.url if fault is not None else f"http://127.0.0.1:{closed_port()}"
    secret = PASSWORD if auth == "basic" else API_KEY
    extra = {"api_key_header": "X-Api-Key"} if auth == "api_key_header" else {}
    connect(monkeypatch, url, login="syncer", password=secret, extra=extra)
    if fault is not None:
        demo.set_fault(source="sponsored", **fault)  # type: ignore[arg-type]
    clock, store = FakeClock(), InMemoryStateStore()
    messages: list[str] = []
    hook = make_hook(clock, store)
    original_send = hook.send

    def send_and_keep_message(*args: object, **kwargs: object) -> object:
        attempt = original_send(*args, **kwargs)  # type: ignore[arg-type]
        messages.append(attempt.message)
        return attempt

    monkeypatch.setattr(hook, "send", send_and_keep_message)
    with caplog.at_level(logging.DEBUG):
        timeout = SHORT_TIMEOUT if fault and fault["mode"] == "slow" else timedelta(seconds=10)
        config = fast_config(max_retries=1, timeout=timeout)
        outcome = sync_once(hook, config, clock=clock, sleep=Sleeps(clock))

    assert outcome.error is not None and outcome.error.kind == kind
    if fault is not None:
        assert demo.requests("sponsored"), "the request must have reached the server"
    assert messages, "at least one attempt was made"
    logs = caplog.text + capsys.readouterr().out  # the operator's task logger writes to stdout here
    assert "GET /sponsored" in logs and "(attempt 1)" in logs, "the run's log lines were captured"
    texts = [
        *messages,
        str(outcome.error),
        repr(outcome.error),
        json.dumps(outcome.result.to_dict()),
        *store.raw.values(),
        logs,
        json.dumps(hook.get_circuit_breaker_state("sponsored")),
    ]
    encoded = base64.b64encode(f"syncer:{secret}".encode()).decode()
    leaked = [text for text in texts if secret in text or encoded in text]
    assert leaked == []
