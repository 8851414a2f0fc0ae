"""Keys inside URLs (issue 10, item 11): sent to the API, stored and logged as ``***``.

``redact_url`` is the one function every message naming a URL goes through (the hook's outcomes,
the per-attempt log line, the pagination-loop message): query values are masked except pagination
positions (``page``, ``limit``, ... and the source's ``cursor_param``); path segments equal to a
secret the provider knows (the connection's password or key extras) are masked too. The
``api_key_param`` extra sends the password as a query parameter.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.load_config import IncrementalConfig
from airflow_sync_provider.redact import redact_url, scrub
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.state import InMemoryStateStore
from tests.hook import (
    FakeClock,
    Reply,
    ScriptedServer,
    Sleeps,
    SyncOutcome,
    connect,
    fast_config,
    make_hook,
    sync_once,
)

KEY = "PLANTED-url-key-7f3a9c"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://api/items?page=2&api_key=" + KEY, "/items?page=2&api_key=***"),
        ("/items?cursor=abc&limit=50&token=" + KEY, "/items?cursor=abc&limit=50&token=***"),
        ("/items?" + KEY, "/items?***"),
        ("/items?api_key=", "/items?api_key="),
        ("http://api/v1/" + KEY + "/items?page=1", "/v1/***/items?page=1"),
        ("/items?page=" + KEY, "/items?page=***"),  # a kept name never shows a known secret
        ("http://[::1/items?api_key=" + KEY, "/items?***"),  # unparseable: no host, no query
        ("http://api/items#frag", "/items"),
    ],
)
def test_redact_url_masks_query_values_and_known_secrets(url: str, expected: str) -> None:
    assert redact_url(url, keep=("cursor",), secrets=(KEY, "ab")) == expected


def test_scrub_masks_a_url_quoted_inside_an_exception_message() -> None:
    url = f"http://127.0.0.1:9/items?page=2&api_key={KEY}"
    text = f"Max retries exceeded with url: /items?page=2&api_key={KEY} (Caused by ...)"
    assert scrub(text, url) == "Max retries exceeded with url: /items?page=2&api_key=*** (Caused by ...)"


def sync(
    monkeypatch: pytest.MonkeyPatch, replies: list[Reply], **changes: Any
) -> tuple[SyncOutcome, Any, Any]:
    clock, store = FakeClock(), InMemoryStateStore()
    with ScriptedServer(replies) as api:
        connect(monkeypatch, api.url, password=KEY, extra={"api_key_param": "api_key"})
        out = sync_once(make_hook(clock, store), fast_config(**changes), clock=clock, sleep=Sleeps(clock))
    return out, api.log, store


def test_api_key_param_sends_the_password_as_a_query_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    out, log, _ = sync(monkeypatch, [Reply.page([{"id": 1}])])
    assert out.error is None
    (request,) = log
    assert request["path"] == f"/sponsored?api_key={KEY}"
    assert "Authorization" not in request["headers"]  # not basic auth as well
    assert not any(name.lower().startswith("api_key") for name in request["headers"])  # not a header


def test_a_key_in_the_next_link_is_used_not_repeated_and_never_stored(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    link = f'</sponsored?page=2&api_key={KEY}>; rel="next"'
    out, log, store = sync(
        monkeypatch, [Reply.page([{"id": 1}], Link=link), Reply(status=500)], max_retries=0
    )
    assert [r["path"] for r in log] == [f"/sponsored?api_key={KEY}", f"/sponsored?page=2&api_key={KEY}"]
    assert out.error is not None and out.error.kind == SyncErrorKind.HTTP_ERROR
    assert "GET /sponsored?page=2&api_key=*** -> 500" in str(out.error)
    places = [str(out.error), json.dumps(out.xcom), *store.raw.values(), capsys.readouterr().out]
    assert [p for p in places if KEY in p] == []
    assert "api_key=***" in store.raw["sync_state_sponsored"]  # last_error and last_result, redacted


def test_a_key_in_the_path_equal_to_the_connection_key_is_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out, log, store = sync(monkeypatch, [Reply(status=404)], endpoint=f"/v1/{KEY}/sponsored")
    assert log[0]["path"] == f"/v1/{KEY}/sponsored?api_key={KEY}"
    assert "GET /v1/***/sponsored -> 404" in str(out.error)
    places = [str(out.error), json.dumps(out.xcom), *store.raw.values(), capsys.readouterr().out]
    assert [p for p in places if KEY in p] == []


@pytest.mark.parametrize(
    ("extra", "password", "message"),
    [
        (
            {"api_key_param": "api_key"},
            None,
            "extra api_key_param is 'api_key' but the password (the key) is empty",
        ),
        ({"api_key_param": "api_key=x"}, KEY, "extra api_key_param must be a plain name, got 'api_key=x'"),
    ],
)
def test_an_unusable_api_key_param_is_named(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, str], password: str | None, message: str
) -> None:
    clock = FakeClock()
    with ScriptedServer([Reply.page([])]) as api:
        connect(monkeypatch, api.url, password=password, extra=extra)
        out = sync_once(make_hook(clock), fast_config(), clock=clock, sleep=Sleeps(clock))
        assert api.log == []
    assert out.error is not None and out.error.kind == SyncErrorKind.CONNECTION_ERROR
    assert str(out.error) == f"connection 'sync_default': {message}"


def test_urllib3_debug_request_lines_show_no_key(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    link = f'</sponsored/{KEY}/2?page=2&token=server-{KEY}>; rel="next"'
    with caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"):
        out, log, _ = sync(monkeypatch, [Reply.page([{"id": 1}], Link=link), Reply.page([])])
    assert out.error is None and len(log) == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "urllib3.connectionpool"]
    assert '"GET /sponsored?api_key=*** HTTP/1.1" 200' in "\n".join(lines)
    assert '"GET /sponsored/***/2?page=2&token=***&api_key=*** HTTP/1.1" 200' in "\n".join(lines)
    assert [line for line in lines if KEY in line] == []


def test_the_pagination_loop_message_shows_the_link_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    link = f'</sponsored?page=2&api_key={KEY}>; rel="next"'
    out, log, store = sync(monkeypatch, [Reply.page([{"id": 1}], Link=link)])
    assert len(log) == 2 and out.error is not None
    assert str(out.error) == "pagination loop: next page '/sponsored?page=2&api_key=***' was already read"
    assert [v for v in store.raw.values() if KEY in v] == []


def test_the_incremental_bookmark_param_is_shown_like_the_cursor() -> None:
    """Where a sync stands is no secret: the bookmark param stays readable, other values are masked."""
    config = SyncConfig(
        source="airdrops", incremental=IncrementalConfig(cursor_field="updated_at", param="updated_since")
    )
    hook = RateLimitedSyncHook(conn_id="sync_default")
    url = "http://api.test/airdrops?updated_since=2026-01-01T00%3A00%3A00Z&token=abc&cursor=7"
    assert hook.redact(url, config) == "/airdrops?updated_since=2026-01-01T00%3A00%3A00Z&token=***&cursor=7"
