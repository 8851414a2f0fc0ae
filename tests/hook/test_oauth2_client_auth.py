"""OAuth2 ``client_secret_post`` (issue 18, item 5): the client id and secret in the token request's form
body instead of basic auth, for token endpoints that accept only that, against the OAuth2 emulation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.hooks.oauth2 import TOKENS
from airflow_sync_provider.results import SyncErrorKind
from tests.apis import OAuthReports
from tests.hook import FakeClock, Sleeps, SyncOutcome, connect, make_hook, sync_once

REPORTS = SyncConfig.from_dict(
    {
        "source": "reports",
        "endpoint": "/v1/reports",
        "params": {"per_page": 4},
        "paginator": {"type": "page_number", "base_page": 1, "total_path": "total_pages"},
        "data_selector": "reports",
    }
)


@pytest.fixture(autouse=True)
def _no_cached_tokens() -> Any:
    TOKENS._tokens.clear()
    yield
    TOKENS._tokens.clear()


def sync(monkeypatch: pytest.MonkeyPatch, api: OAuthReports, **extra: Any) -> SyncOutcome:
    client_id, secret = api.client
    extra = {"auth_type": "oauth2_client_credentials", "token_url": f"{api.url}/oauth/token", **extra}
    connect(monkeypatch, api.url, login=client_id, password=secret, extra=extra)
    clock = FakeClock()
    return sync_once(make_hook(clock), REPORTS, clock=clock, sleep=Sleeps(clock))


def test_client_secret_post_sends_the_client_in_the_form_body_not_as_basic_auth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with OAuthReports(10, client_auth=("client_secret_post",)) as api:
        out = sync(monkeypatch, api, client_auth="client_secret_post", scopes="reports:read")

    assert out.error is None and out.result.items_processed == 10
    (token_call,) = api.token_calls()
    client_id, secret = api.client
    assert token_call.body == {
        "grant_type": "client_credentials",
        "scope": "reports:read",
        "client_id": client_id,
        "client_secret": secret,
    }
    assert "Authorization" not in token_call.headers
    assert not any(
        "client_auth" in {h.lower() for h in s.headers} for s in api.log
    )  # a setting, not a header
    assert secret not in json.dumps(out.result.to_dict())


def test_a_post_only_token_endpoint_refuses_the_default_basic_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: without the option the same endpoint answers 401 ``invalid_client``."""
    with OAuthReports(10, client_auth=("client_secret_post",)) as api:
        out = sync(monkeypatch, api)

    assert out.error is not None and "401" in str(out.error)
    (token_call,) = api.token_calls()
    assert token_call.headers["Authorization"].startswith("Basic ")
    assert "client_secret" not in token_call.body


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"client_auth": "client_secret_jwt"},
            "extra client_auth must be one of client_secret_basic, client_secret_post, "
            "got 'client_secret_jwt'",
        ),
        (
            {"auth_type": "bearer", "client_auth": "client_secret_post"},
            "extra client_auth needs auth_type oauth2_client_credentials, got 'bearer'",
        ),
    ],
)
def test_a_bad_client_auth_ends_the_sync_before_any_request_naming_it(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], message: str
) -> None:
    with OAuthReports(1) as api:
        out = sync(monkeypatch, api, **extra)

    assert out.error is not None and out.error.kind == SyncErrorKind.CONNECTION_ERROR
    assert message in str(out.error)
    assert api.log == []
