"""OAuth2 client credentials (RFC 6749 section 4.4): the token request and a token cache in memory.

The token is asked for with ``grant_type=client_credentials`` (and ``scope``), the client id and
secret as HTTP basic auth (section 2.3.1, ``client_secret_basic``) or, for a token endpoint that wants
them there, as ``client_id`` and ``client_secret`` in the form body (``client_secret_post``).
``SyncRun`` sends that request through the source's guard like any other (window slot, breaker,
retries); this module only says what to send and keeps the answer. The token lives in this process's
memory only (``TOKENS``), until ``REFRESH_MARGIN`` before its ``expires_in`` (a token without one is
kept until the API answers 401): it is never written to a Variable, XCom, checkpoint or log, so a
task in another process fetches its own.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CLIENT_AUTH = ("client_secret_basic", "client_secret_post")
"""How the client id and secret reach the token endpoint (the names of OpenID Connect's
``token_endpoint_auth_method``): HTTP basic auth (the default) or the form body."""
REFRESH_MARGIN = 60.0
"""Seconds before expiry at which a cached token is no longer used (at most a tenth of its life)."""


@dataclass(frozen=True)
class ClientCredentials:
    """Where and as whom to ask for a token; ``secret`` never shows in a repr."""

    token_url: str
    client_id: str
    secret: str = field(repr=False)
    scopes: tuple[str, ...] = ()
    client_auth: str = CLIENT_AUTH[0]

    @property
    def form(self) -> dict[str, str]:
        """The token request's form body (with the client id and secret for ``client_secret_post``)."""
        form = {"grant_type": "client_credentials"}
        if self.scopes:
            form["scope"] = " ".join(self.scopes)
        if self.client_auth == "client_secret_post":
            form |= {"client_id": self.client_id, "client_secret": self.secret}
        return form

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        """The token request's HTTP basic auth (``None`` when the form body carries the secret)."""
        return (self.client_id, self.secret) if self.client_auth == "client_secret_basic" else None

    @property
    def key(self) -> tuple[str, str, tuple[str, ...]]:
        return (self.token_url, self.client_id, self.scopes)


def token_problem(body: Any) -> str | None:
    """Why a token response's body cannot be used (``None`` when it can); never quotes the body."""
    if not isinstance(body, Mapping):
        return f"token response is not a JSON object ({type(body).__name__})"
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        return f"token response has no access_token (keys: {sorted(body)[:8]})"
    kind = body.get("token_type", "bearer")
    if not isinstance(kind, str) or kind.lower() != "bearer":
        return f"token response has token_type {kind!r}; only bearer tokens are supported"
    expires = body.get("expires_in")
    if expires is not None and (
        isinstance(expires, bool) or not isinstance(expires, int | float) or expires <= 0
    ):
        return f"token response has expires_in {expires!r}; expected a positive number of seconds"
    return None


class TokenCache:
    """Tokens by ``ClientCredentials.key``, each with the time it stops being used."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, tuple[str, ...]], tuple[str, float | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, tuple[str, ...]], now: float) -> str | None:
        with self._lock:
            entry = self._tokens.get(key)
        if entry is None or (entry[1] is not None and now >= entry[1]):
            return None
        return entry[0]

    def put(self, key: tuple[str, str, tuple[str, ...]], body: Mapping[str, Any], now: float) -> str:
        """Keep the token of a usable response (``token_problem`` is ``None``); return it."""
        token = str(body["access_token"])
        expires_in = body.get("expires_in")
        until = None
        if expires_in is not None:
            life = float(expires_in)
            until = now + life - min(REFRESH_MARGIN, life / 10)
        with self._lock:
            self._tokens[key] = (token, until)
        return token

    def forget(self, key: tuple[str, str, tuple[str, ...]]) -> None:
        with self._lock:
            self._tokens.pop(key, None)


TOKENS = TokenCache()
"""This process's tokens."""
