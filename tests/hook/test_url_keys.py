"""Keys inside URLs (issue 10, item 11): sent to the API, stored and logged as ``***``.

``redact_url`` is the one function every message naming a URL goes through (the hook's outcomes,
the per-attempt log line, the pagination-loop message): query values are masked except pagination
positions (``page``, ``limit``, ... and the source's ``cursor_param``); path segments equal to a
secret the provider knows (the connection's password or key extras) are masked too. The
``api_key_param`` extra sends the password as a query parameter.

Issue 17: a known secret is masked wherever it appears in a URL, not only as a whole path segment or
value (item 15); a deferred sync's checkpoint (trigger kwargs and event, which Airflow stores in plain
JSON) keeps page URLs and cursors with the key replaced by a marker, and the resumed sync puts the
connection's key back before requesting the next page (item 14).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.config.load import IncrementalConfig
from airflow_sync_provider.exceptions import SyncWaitRequired
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.operators.sync import RateLimitedSyncOperator
from airflow_sync_provider.redact import conceal, redact_url, reveal, scrub
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.run.sync_run import Checkpoint
from airflow_sync_provider.state.store import InMemoryStateStore
from airflow_sync_provider.triggers.wait import SyncWaitTrigger
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


ODD_KEY = "PLANTED+k/ey 7f"
"""A key that percent-encoding changes (``+``, ``/``, space)."""


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"http://api/v1/items/{KEY}.json", "/v1/items/***.json"),
        (f"http://api/v1/items;api_key={KEY}", "/v1/items;api_key=***"),
        (f"http://api/v1/items;api_key={KEY}/2?page=2", "/v1/items;api_key=***/2?page=2"),
        (f"/items?cursor=c2-{KEY}-x&limit=5", "/items?cursor=c2-***-x&limit=5"),
        (f"/items?page=2{KEY}", "/items?page=2***"),
        (f"/v1/{quote(ODD_KEY, safe='')}.json", "/v1/***.json"),
        (
            "/v1/" + quote(ODD_KEY, safe="").replace("%2B", "%2b").replace("%2F", "%2f") + ".json",
            "/v1/***.json",
        ),
        ("/items?cursor=" + quote(f"c2-{ODD_KEY}", safe=""), "/items?cursor=c2-***"),
        (
            "/items?cursor=c2-" + ODD_KEY.replace(" ", "+").replace("+k", "%2Bk").replace("/", "%2F"),
            "/items?cursor=c2-***",
        ),
        (f"http://[::1/v1/{KEY}.json?api_key={KEY}", "/v1/***.json?***"),  # unparseable
    ],
)
def test_redact_url_masks_a_known_secret_wherever_it_appears(url: str, expected: str) -> None:
    """Issue 17, item 15: inside a segment, after ``;``, inside a kept cursor, percent-encoded."""
    assert redact_url(url, keep=("cursor",), secrets=(KEY, ODD_KEY)) == expected


@pytest.mark.parametrize(
    "text",
    [
        f"http://api/items?page=2&api_key={KEY}&token={ODD_KEY}",
        f"/v1/{quote(ODD_KEY, safe='')}/{quote(ODD_KEY, safe='').replace('%2F', '%2f')}?c={KEY}{KEY}",
        f"cursor-{KEY[:-1]}",  # not the key: unchanged
        "***password***",  # a marker's name that is no secret: unchanged
    ],
)
def test_conceal_hides_each_secret_and_reveal_puts_back_exactly_what_was_there(text: str) -> None:
    secrets = {"password": KEY, "extra.token": ODD_KEY, "extra.short": "abc", "extra.word": "word"}
    hidden = conceal(text, secrets)
    assert [s for s in (KEY, ODD_KEY, quote(ODD_KEY, safe="")) if s in hidden] == []
    assert reveal(hidden, secrets) == text
    # a rotated key: the marker takes the connection's current value
    rotated = reveal(conceal(f"/items?api_key={KEY}", secrets), {**secrets, "password": "NEW-KEY-1"})
    assert rotated == "/items?api_key=NEW-KEY-1"


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


@pytest.mark.parametrize(
    ("endpoint", "first", "failed_request"),
    [
        (
            "/sponsored",
            Reply.page([{"id": 1}], Link=f'</sponsored/{KEY}.json?page=2>; rel="next"'),
            "GET /sponsored/***.json?page=2 -> 500",
        ),
        ("/sponsored", Reply.page([{"id": 1}], f"c2-{KEY}"), "GET /sponsored?cursor=c2-*** -> 500"),
        (f"/sponsored;api_key={KEY}", Reply(status=500), "GET /sponsored;api_key=*** -> 500"),
    ],
    ids=["segment part", "cursor part", "path parameter"],
)
def test_a_key_inside_a_url_segment_or_cursor_is_masked_in_the_error(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    endpoint: str,
    first: Reply,
    failed_request: str,
) -> None:
    """Issue 17, item 15, against a real server: the key inside a segment, a cursor, a ``;`` parameter."""
    out, log, store = sync(monkeypatch, [first, Reply(status=500)], max_retries=0, endpoint=endpoint)
    sent = {
        "GET /sponsored/***.json?page=2 -> 500": f"/sponsored/{KEY}.json?page=2&api_key={KEY}",
        "GET /sponsored?cursor=c2-*** -> 500": f"/sponsored?cursor=c2-{KEY}&api_key={KEY}",
        "GET /sponsored;api_key=*** -> 500": f"/sponsored;api_key={KEY}?api_key={KEY}",
    }
    assert log[-1]["path"] == sent[failed_request]  # the API got the URL as it gave it
    assert out.error is not None and failed_request in str(out.error), str(out.error)
    places = [str(out.error), json.dumps(out.xcom), *store.raw.values(), capsys.readouterr().out]
    assert [p for p in places if KEY in p] == []


def test_a_cursor_holding_the_key_is_masked_in_the_pagination_loop_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, log, store = sync(monkeypatch, [Reply.page([{"id": 1}], f"c-{KEY}")])
    assert len(log) == 2 and out.error is not None
    assert str(out.error) == "pagination loop: next page 'c-***' was already read"
    assert [v for v in store.raw.values() if KEY in v] == []


def captured_triggers(monkeypatch: pytest.MonkeyPatch) -> list[SyncWaitTrigger]:
    """Each trigger the operator defers with, as handed to Airflow."""
    triggers: list[SyncWaitTrigger] = []
    defer = RateLimitedSyncOperator.defer

    def recording(self: RateLimitedSyncOperator, *, trigger: SyncWaitTrigger, **kwargs: Any) -> None:
        triggers.append(trigger)
        defer(self, trigger=trigger, **kwargs)

    monkeypatch.setattr(RateLimitedSyncOperator, "defer", recording)
    return triggers


NEXT_PAGES = {
    "query link": ({"Link": f'</sponsored?page=2&api_key={KEY}>; rel="next"'}, None),
    "path link": ({"Link": f'</sponsored/{KEY}/2>; rel="next"'}, None),
    "cursor": ({}, f"c2-{KEY}"),
}


@pytest.mark.parametrize("next_page", NEXT_PAGES)
def test_a_deferral_keeps_no_key_and_the_resume_requests_the_next_page_with_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, next_page: str
) -> None:
    """Issue 17, item 14: the trigger (kwargs and the event it fires) carries the next page's URL with
    the key replaced by a marker; the resumed sync sends the connection's key, once, as the API gave it."""
    headers, cursor = NEXT_PAGES[next_page]
    replies = [
        Reply.page([{"id": 1}], cursor, **headers),
        Reply(status=429, headers={"Retry-After": "30"}),
        Reply.page([{"id": 2}]),
    ]
    triggers = captured_triggers(monkeypatch)
    clock, store = FakeClock(), InMemoryStateStore()
    config = fast_config(defer_after=timedelta(seconds=5))
    with caplog.at_level(logging.DEBUG), ScriptedServer(replies) as api:
        connect(monkeypatch, api.url, password=KEY, extra={"api_key_param": "api_key"})
        hook = make_hook(clock, store)
        with pytest.raises(SyncWaitRequired):
            sync_once(hook, config, clock=clock, sleep=Sleeps(clock), checkpoint=Checkpoint(clock()))
        (trigger,) = triggers
        stored = json.dumps(trigger.serialize())
        assert KEY not in stored and "***password***" in stored  # the next page is there, its key is not
        # the triggerer fires {"status": "resume", "checkpoint": <the kwargs' checkpoint>}: Airflow keeps
        # it in task_instance.next_kwargs; it goes through JSON like every checkpoint
        resumed = Checkpoint.from_dict(json.loads(stored)[1]["checkpoint"])
        clock.advance(30)
        out = sync_once(make_hook(clock, store), config, clock=clock, sleep=Sleeps(clock), checkpoint=resumed)
        paths = [r["path"] for r in api.log]
    assert out.error is None and out.result.items_processed == 2
    second = {
        "query link": f"/sponsored?page=2&api_key={KEY}",
        "path link": f"/sponsored/{KEY}/2?api_key={KEY}",
        "cursor": f"/sponsored?cursor=c2-{KEY}&api_key={KEY}",
    }[next_page]
    assert paths == [f"/sponsored?api_key={KEY}", second, second]
    places = {
        "trigger": stored,
        "state": json.dumps(store.raw),
        "log": "\n".join(r.getMessage() for r in caplog.records),
        "xcom": json.dumps(out.xcom),
    }
    assert [where for where, text in places.items() if KEY in text] == []
