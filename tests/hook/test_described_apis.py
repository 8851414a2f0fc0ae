"""Sources described in config only (paginator, data_selector, method/json, auth) against local
emulations of Stripe, Zendesk, Notion, Jira and an OAuth2 client-credentials API (``tests.apis``).

Each sync runs through the real operator; a 429 with ``Retry-After: 30`` in the middle of the
pagination defers it (``defer_after`` 5 s), the checkpoint goes through JSON as the trigger carries it,
and the resumed sync must send exactly the request that was throttled: same offset, page number,
cursor or JSON body, never page 1 again. Items are checked one by one against the API's collection.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.exceptions import SyncWaitRequired
from airflow_sync_provider.hooks.oauth2 import TOKENS
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.run.handlers import SyncContext
from airflow_sync_provider.run.sync_run import Checkpoint
from airflow_sync_provider.state.store import InMemoryStateStore
from tests.apis import (
    Answer,
    EmulatedApi,
    Jira,
    Notion,
    OAuthReports,
    Seen,
    Stripe,
    Zendesk,
    error_answer,
)
from tests.apis.github import GitHub
from tests.hook import FakeClock, Sleeps, SyncOutcome, connect, fast_config, make_hook, sync_once

SECOND = timedelta(seconds=1)


@dataclass
class Collector:
    """A handler reading ``ctx.pages()`` as the default handler does; keeps each finished page's items
    once (a page redelivered after a resume replaces its first delivery)."""

    pages: dict[int, list[Any]] = field(default_factory=dict)
    deliveries: list[tuple[int, bool]] = field(default_factory=list)

    def __call__(self, ctx: SyncContext) -> int:
        for page in ctx.pages():
            self.deliveries.append((page.number, page.redelivered))
            self.pages[page.number] = page.items
        return ctx.checkpoint.items

    @property
    def items(self) -> list[Any]:
        return [item for number in sorted(self.pages) for item in self.pages[number]]


@dataclass
class Run:
    outcome: SyncOutcome
    deferrals: list[float]
    collector: Collector


def sync_to_end(api: EmulatedApi, config: SyncConfig, clock: FakeClock | None = None) -> Run:
    """Sync until done, resuming after each deferral from the JSON round-tripped checkpoint."""
    clock = clock or FakeClock()
    hook, sleeps, collector = make_hook(clock, InMemoryStateStore()), Sleeps(clock), Collector()
    checkpoint, deferrals = Checkpoint(started_at=clock()), []
    while len(deferrals) < 10:
        try:
            out = sync_once(hook, config, clock=clock, sleep=sleeps, handler=collector, checkpoint=checkpoint)
            return Run(out, deferrals, collector)
        except SyncWaitRequired as waited:
            deferrals.append(waited.seconds)
            text = json.dumps(checkpoint.to_dict())
            checkpoint = Checkpoint.from_dict(json.loads(text))
            clock.advance(waited.seconds)
    raise AssertionError("did not finish within 10 deferrals")


def config(source: str, endpoint: str, **changes: Any) -> SyncConfig:
    return fast_config(source, endpoint=endpoint, defer_after=5 * SECOND, **changes)


@pytest.fixture(autouse=True)
def _no_tokens_between_tests() -> Iterator[None]:
    TOKENS._tokens.clear()
    yield
    TOKENS._tokens.clear()


# -- Stripe: last_item_cursor -------------------------------------------------------------------------


def stripe_config(**changes: Any) -> SyncConfig:
    return SyncConfig.from_dict(
        {
            "source": "stripe_customers",
            "endpoint": "/v1/customers",
            "params": {"limit": 3},
            "paginator": {"type": "last_item_cursor"},
            "data_selector": "data",
            "defer_after": "5s",
            "timeout": "10s",
            **changes,
        }
    )


def test_stripe_pages_by_the_last_items_id_and_resumes_at_the_throttled_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Stripe(8) as api:
        connect(monkeypatch, api.url, password=api.key, extra={"auth_type": "bearer"})
        api.throttle_at(2)  # page 2 (starting_after=cus_0006) is answered 429
        run = sync_to_end(api, stripe_config())

    assert run.outcome.error is None and run.deferrals == [30.0]
    assert run.collector.items == api.customers  # every customer once, newest first
    queries = [s.query for s in api.requests("/v1/customers")]
    assert queries == [
        {"limit": "3"},
        {"limit": "3", "starting_after": "cus_0006"},  # 429
        {"limit": "3", "starting_after": "cus_0006"},  # the resume: the same page, not page 1
        {"limit": "3", "starting_after": "cus_0003"},
    ]
    assert {s.headers["Authorization"] for s in api.log} == {f"Bearer {api.key}"}
    assert run.outcome.result.items_processed == 8


def test_templated_params_send_the_run_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """``{data_interval_start_unix}`` is the run's interval start as an integer."""
    with Stripe(5) as api:
        connect(monkeypatch, api.url, password=api.key, extra={"auth_type": "bearer"})
        cfg = stripe_config(params={"limit": 10, "created[gte]": "{data_interval_start_unix}"})
        clock, collector = FakeClock(), Collector()
        start = datetime.fromtimestamp(1_700_000_003, tz=UTC)
        hook = make_hook(clock)
        sleeps = Sleeps(clock)
        context_values = {"data_interval_start": start}
        original = SyncContext.__init__

        def with_interval(self: SyncContext, run: Any, context: Any, **kwargs: Any) -> None:
            original(self, run, {**context, **context_values}, **kwargs)

        monkeypatch.setattr(SyncContext, "__init__", with_interval)
        out = sync_once(hook, cfg, clock=clock, sleep=sleeps, handler=collector)

    assert out.error is None
    assert api.log[0].query == {"limit": "10", "created[gte]": "1700000003"}
    assert [c["id"] for c in collector.items] == ["cus_0005", "cus_0004", "cus_0003"]


# -- Zendesk: json_link with a has_more flag ----------------------------------------------------------


def test_zendesk_follows_links_next_until_meta_has_more_is_false(monkeypatch: pytest.MonkeyPatch) -> None:
    with Zendesk(7) as api:
        user, token = api.credentials
        connect(monkeypatch, api.url, login=user, password=token)
        api.throttle_at(3)
        cfg = config(
            "zendesk_tickets",
            "/api/v2/tickets.json",
            params={"page[size]": 3},
            paginator={"type": "json_link", "next_url_path": "links.next", "has_more_path": "meta.has_more"},
            data_selector="tickets",
        )
        run = sync_to_end(api, cfg)

    assert run.outcome.error is None and run.deferrals == [30.0]
    assert run.collector.items == api.tickets
    afters = [s.query.get("page[after]") for s in api.log]
    assert afters[2] == afters[3] is not None  # the throttled page is the one read after the resume
    assert len(api.log) == 4  # 3 pages + the 429; the last page's next link is not followed


# -- Notion: cursor in the JSON body of a POST ---------------------------------------------------------


def test_notion_posts_the_cursor_in_the_body_and_resumes_with_the_same_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Notion(5) as api:
        connect(
            monkeypatch,
            api.url,
            password=api.token,
            extra={"auth_type": "bearer", "Notion-Version": "2022-06-28"},
        )
        api.throttle_at(2)
        cfg = config(
            "notion_pages",
            f"/v1/databases/{api.database}/query",
            method="POST",
            json={"page_size": 2, "filter": {"property": "Done", "checkbox": {"equals": True}}},
            paginator={
                "type": "cursor",
                "cursor_path": "next_cursor",
                "cursor_body_path": "start_cursor",
                "has_more_path": "has_more",
            },
            data_selector="results",
        )
        run = sync_to_end(api, cfg)

    assert run.outcome.error is None and run.deferrals == [30.0]
    assert run.collector.items == api.pages
    bodies = [s.body for s in api.log]
    assert all(s.method == "POST" and s.query == {} for s in api.log)
    assert bodies[0] == {"page_size": 2, "filter": {"property": "Done", "checkbox": {"equals": True}}}
    assert bodies[1] == bodies[2] == {**bodies[0], "start_cursor": "page-002"}  # 429, then the resume
    assert bodies[3] == {**bodies[0], "start_cursor": "page-004"}


# -- Jira: offset with total --------------------------------------------------------------------------


def test_jira_pages_by_start_at_until_total(monkeypatch: pytest.MonkeyPatch) -> None:
    with Jira(12) as api:
        user, token = api.credentials
        connect(monkeypatch, api.url, login=user, password=token)
        api.throttle_at(3)
        cfg = config(
            "jira_issues",
            "/rest/api/3/search",
            params={"jql": "project = PROJ ORDER BY id"},
            paginator={"type": "offset", "limit": 5, "offset_param": "startAt", "limit_param": "maxResults"},
            data_selector="issues",
        )
        run = sync_to_end(api, cfg)

    assert run.outcome.error is None and run.deferrals == [30.0]
    assert run.collector.items == api.issues
    assert [s.query["startAt"] for s in api.log] == ["0", "5", "10", "10"]
    assert run.collector.deliveries == [(1, False), (2, False), (3, False)]  # nothing redelivered


def test_a_selector_that_misses_a_page_with_items_fails_on_the_first_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Jira(120) as api:
        user, token = api.credentials
        connect(monkeypatch, api.url, login=user, password=token)
        cfg = config(
            "jira_issues",
            "/rest/api/3/search",
            paginator={"type": "offset", "limit": 50, "offset_param": "startAt", "limit_param": "maxResults"},
            data_selector="values",
        )
        run = sync_to_end(api, cfg)

    assert run.outcome.error is not None and run.outcome.error.kind == SyncErrorKind.INVALID_RESPONSE
    assert "data_selector 'values' is not in the first page, which has items at 'issues'" in str(
        run.outcome.error
    )
    assert len(api.log) == 1


def test_a_selector_missing_from_an_empty_first_page_is_a_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with Stripe(0) as api:
        connect(monkeypatch, api.url, password=api.key, extra={"auth_type": "bearer"})
        run = sync_to_end(api, stripe_config(data_selector="items"))

    assert run.outcome.error is None and run.collector.items == []
    assert "data_selector 'items' is not in the first page (keys: ['data'" in capsys.readouterr().out


# -- OAuth2 client credentials + page_number ----------------------------------------------------------


def oauth_connect(monkeypatch: pytest.MonkeyPatch, api: OAuthReports) -> None:
    client_id, secret = api.client
    extra = {
        "auth_type": "oauth2_client_credentials",
        "token_url": f"{api.url}/oauth/token",
        "scopes": ["reports:read"],
    }
    connect(monkeypatch, api.url, login=client_id, password=secret, extra=extra)


def oauth_config() -> SyncConfig:
    return config(
        "reports",
        "/v1/reports",
        params={"per_page": 4},
        paginator={"type": "page_number", "base_page": 1, "total_path": "total_pages"},
        data_selector="reports",
    )


def test_oauth2_fetches_one_token_through_the_window_and_reuses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with OAuthReports(10) as api:
        oauth_connect(monkeypatch, api)
        api.throttle_at(3)  # page 2
        run = sync_to_end(api, oauth_config())

    assert run.outcome.error is None and run.deferrals == [30.0]
    assert run.collector.items == api.reports
    assert [s.path for s in api.log] == ["/oauth/token"] + ["/v1/reports"] * 4
    token_call = api.token_calls()[0]
    assert token_call.body == {"grant_type": "client_credentials", "scope": "reports:read"}
    assert [s.query["page"] for s in api.requests("/v1/reports")] == ["1", "2", "2", "3"]
    # the token call took its own window slot: 5 requests on the wire, 5 counted
    assert run.outcome.guard.state.breaker.failure_count == 0
    assert len(run.outcome.guard.state.window) == 5


def test_oauth2_fetches_a_new_token_once_on_a_401(monkeypatch: pytest.MonkeyPatch) -> None:
    with OAuthReports(10) as api:
        oauth_connect(monkeypatch, api)
        clock = FakeClock()
        first = sync_to_end(api, oauth_config(), clock)
        api.revoke_tokens()  # the cached token is refused from now on
        second = sync_to_end(api, oauth_config(), clock)

    assert first.outcome.error is None and second.outcome.error is None
    assert second.collector.items == api.reports
    paths = [s.path for s in api.log[4:]]
    assert paths == ["/v1/reports", "/oauth/token", "/v1/reports", "/v1/reports", "/v1/reports"]
    assert len(api.issued) == 2


def test_oauth2_token_expiry_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    with OAuthReports(4, expires_in=600) as api:
        oauth_connect(monkeypatch, api)
        clock = FakeClock()
        sync_to_end(api, oauth_config(), clock)
        clock.advance(530)  # 70 s before expiry: still used
        sync_to_end(api, oauth_config(), clock)
        clock.advance(15)  # 55 s before expiry (margin: 60 s): not used any more
        sync_to_end(api, oauth_config(), clock)

    assert [s.path for s in api.log] == [
        "/oauth/token",
        "/v1/reports",
        "/v1/reports",
        "/oauth/token",
        "/v1/reports",
    ]


def test_a_refused_client_secret_ends_the_sync_without_the_secret_in_the_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with OAuthReports(4) as api:
        extra = {"auth_type": "oauth2_client_credentials", "token_url": f"{api.url}/oauth/token"}
        connect(monkeypatch, api.url, login="reports-client", password="wrong-secret-value", extra=extra)
        run = sync_to_end(api, oauth_config())

    assert run.outcome.error is not None and "401" in str(run.outcome.error)
    assert "wrong-secret-value" not in json.dumps(run.outcome.result.to_dict())
    assert [s.path for s in api.log] == ["/oauth/token"]


def test_no_token_or_secret_reaches_the_checkpoint_or_the_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3's request lines too
    with OAuthReports(10) as api:
        oauth_connect(monkeypatch, api)
        api.throttle_at(3)
        clock = FakeClock()
        hook, sleeps, collector = make_hook(clock), Sleeps(clock), Collector()
        checkpoint = Checkpoint(started_at=clock())
        with pytest.raises(SyncWaitRequired):
            sync_once(
                hook, oauth_config(), clock=clock, sleep=sleeps, handler=collector, checkpoint=checkpoint
            )
        stored = json.dumps(checkpoint.to_dict())

    token, secret = api.issued[0], api.client[1]
    assert checkpoint.loops["/v1/reports#0"].position == {"page": 2}
    logged = caplog.text + capsys.readouterr().out
    assert "/v1/reports" in logged  # the log was captured
    for text in (stored, logged):
        assert token not in text and secret not in text


def test_a_selector_on_a_non_list_is_an_invalid_response_naming_the_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Stripe(3) as api:
        connect(monkeypatch, api.url, password=api.key, extra={"auth_type": "bearer"})
        run = sync_to_end(api, stripe_config(data_selector="url"))

    assert run.outcome.error is not None and run.outcome.error.kind == SyncErrorKind.INVALID_RESPONSE
    assert "data_selector 'url' selects a str, not a list" in str(run.outcome.error)


@pytest.mark.parametrize(
    ("extra", "login", "message"),
    [
        (
            {"auth_type": "digest"},
            "u",
            "extra auth_type must be one of basic, bearer, oauth2_client_credentials",
        ),
        ({"auth_type": "oauth2_client_credentials"}, "u", "extra token_url must be an http(s) URL, got None"),
        (
            {"auth_type": "oauth2_client_credentials", "token_url": "ftp://x/token"},
            "u",
            "extra token_url must be an http(s) URL, got 'ftp://x/token'",
        ),
        (
            {"auth_type": "oauth2_client_credentials", "token_url": "https://x/token"},
            None,
            "auth_type oauth2_client_credentials needs the client id as login",
        ),
        (
            {"auth_type": "oauth2_client_credentials", "token_url": "https://x/t", "scopes": [1]},
            "u",
            "extra scopes must be a string or a list of scope names, got [1]",
        ),
        (
            {"auth_type": "bearer", "api_key_header": "X-Key"},
            None,
            "cannot be combined with an API key field",
        ),
    ],
)
def test_bad_auth_settings_end_the_sync_before_any_request(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], login: str | None, message: str
) -> None:
    with Stripe(1) as api:
        connect(monkeypatch, api.url, login=login, password="pw-1234567", extra=extra)
        run = sync_to_end(api, stripe_config())

    assert run.outcome.error is not None and run.outcome.error.kind == SyncErrorKind.CONNECTION_ERROR
    assert message in str(run.outcome.error)
    assert api.log == []


def test_a_throttled_token_call_defers_and_the_resume_fetches_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The token call is a request of the source: a 429 to it defers the sync like any other."""
    with OAuthReports(4) as api:
        oauth_connect(monkeypatch, api)
        api.throttle_at(1)
        run = sync_to_end(api, oauth_config())

    assert run.outcome.error is None and run.deferrals == [30.0]
    assert [s.path for s in api.log] == ["/oauth/token", "/oauth/token", "/v1/reports"]
    assert run.collector.items == api.reports


def test_bookmark_run_value_is_the_bookmark_minus_lag() -> None:
    from types import SimpleNamespace

    cfg = SyncConfig.from_dict(
        {
            "source": "x",
            "params": {"since": "{bookmark}"},
            "incremental": {"cursor_field": "updated", "param": "updated_since", "lag": "5m"},
        }
    )
    run = SimpleNamespace(config=cfg, checkpoint=Checkpoint(started_at=0.0))
    ctx = SyncContext(run, {}, bookmark="2027-01-15T08:00:00Z")  # type: ignore[arg-type]
    values = ctx.run_values()
    assert values["bookmark"] == "2027-01-15T07:55:00Z"
    assert values["data_interval_start"] is None  # a run without an interval: params naming it are left out
    start = datetime(2027, 1, 15, 9, tzinfo=UTC)
    ctx = SyncContext(run, {"data_interval_start": start}, bookmark=None)  # type: ignore[arg-type]
    assert ctx.run_values()["data_interval_start"] == "2027-01-15T09:00:00Z"
    assert ctx.run_values()["data_interval_start_unix"] == int(start.timestamp())
    assert ctx.run_values()["bookmark"] is None


def test_github_follows_the_link_header_and_resumes_at_the_throttled_link(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with GitHub({"octo/hello": 7}) as api:
        connect(monkeypatch, api.url, password=api.token, extra={"auth_type": "bearer"})
        api.throttle_at(2)
        cfg = config(
            "github_issues", "/repos/octo/hello/issues", params={"per_page": 3}, paginator="header_link"
        )
        run = sync_to_end(api, cfg)

    assert run.outcome.error is None and run.deferrals == [30.0]
    assert run.collector.items == api.issues["octo/hello"]
    assert [s.query.get("page") for s in api.log] == [None, "2", "2", "3"]


class EchoingKeyApi(EmulatedApi):
    """``GET /items?api_key=K&page=N``: 3 items a page of 8, the next page's full URL (key included, as
    some APIs echo it) at ``paging.next``."""

    key = "key-7f3a9c2e5b1d"

    def answer(self, seen: Seen) -> Answer:
        if seen.query.get("api_key") != self.key:
            return error_answer(401, error="bad key")
        page = int(seen.query.get("page", 1))
        rows = [{"id": i} for i in range((page - 1) * 3, min(page * 3, 8))]
        following = (
            f"{self.url}/items?{urlencode({'api_key': self.key, 'page': page + 1})}" if page * 3 < 8 else None
        )
        return Answer(200, {"rows": rows, "paging": {"next": following}})


def test_a_key_echoed_into_next_links_never_rides_in_the_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    with EchoingKeyApi() as api:
        connect(monkeypatch, api.url, password=api.key, extra={"api_key_param": "api_key"})
        api.throttle_at(2)
        cfg = config(
            "keyed",
            "/items",
            paginator={"type": "json_link", "next_url_path": "paging.next"},
            data_selector="rows",
        )
        clock = FakeClock()
        hook, sleeps, collector = make_hook(clock), Sleeps(clock), Collector()
        checkpoint = Checkpoint(started_at=clock())
        with pytest.raises(SyncWaitRequired):
            sync_once(hook, cfg, clock=clock, sleep=sleeps, handler=collector, checkpoint=checkpoint)
        stored = json.dumps(checkpoint.to_dict())
        assert api.key not in stored and "page=2" in stored
        clock.advance(30)
        out = sync_once(
            hook,
            cfg,
            clock=clock,
            sleep=sleeps,
            handler=collector,
            checkpoint=Checkpoint.from_dict(json.loads(stored)),
        )

    assert out.error is None and [r["id"] for r in collector.items] == list(range(8))
    assert [s.query.get("page") for s in api.log] == [None, "2", "2", "3"]
    assert all(s.query["api_key"] == api.key for s in api.log)  # put back before each request
