"""The auth fields of a sync connection's extra: which exist, and whether they fit together."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from airflow_sync_provider.exceptions import SyncSetupError
from airflow_sync_provider.hooks.oauth2 import CLIENT_AUTH

API_KEY_HEADER_FIELDS = ("api_key_header", "extra__sync_http__api_key_header")
API_KEY_PARAM_FIELDS = ("api_key_param", "extra__sync_http__api_key_param")
AUTH_TYPES = ("basic", "bearer", "oauth2_client_credentials")
AUTH_FIELDS = ("auth_type", "token_url", "scopes", "client_auth")
"""Extra fields that describe the auth (never sent as headers, never masked as secrets)."""


def check_auth_extra(name: str, extra: Mapping[str, Any], connection: Any) -> None:
    """``auth_type`` and the fields it needs; ``SyncSetupError`` naming the field otherwise."""
    auth_type = extra.get("auth_type") or "basic"
    if auth_type not in AUTH_TYPES:
        raise SyncSetupError(
            f"{name}: extra auth_type must be one of {', '.join(AUTH_TYPES)}, got {auth_type!r}"
        )
    client_auth = extra.get("client_auth")
    if client_auth is not None and auth_type != "oauth2_client_credentials":
        raise SyncSetupError(
            f"{name}: extra client_auth needs auth_type oauth2_client_credentials, got {auth_type!r}"
        )
    if client_auth is not None and client_auth not in CLIENT_AUTH:
        raise SyncSetupError(
            f"{name}: extra client_auth must be one of {', '.join(CLIENT_AUTH)}, got {client_auth!r}"
        )
    if auth_type == "basic":
        return
    if first_of(extra, (*API_KEY_HEADER_FIELDS, *API_KEY_PARAM_FIELDS)) is not None:
        raise SyncSetupError(
            f"{name}: extra auth_type {auth_type!r} cannot be combined with an API key field"
        )
    if not connection.password:
        raise SyncSetupError(f"{name}: extra auth_type is {auth_type!r} but the password is empty")
    if auth_type == "bearer":
        return
    if not connection.login:
        raise SyncSetupError(f"{name}: auth_type oauth2_client_credentials needs the client id as login")
    token_url = extra.get("token_url")
    parts = urlsplit(token_url) if isinstance(token_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise SyncSetupError(f"{name}: extra token_url must be an http(s) URL, got {token_url!r}")
    scopes = extra.get("scopes")
    ok = (
        scopes is None
        or isinstance(scopes, str)
        or (isinstance(scopes, list) and all(isinstance(s, str) and s and " " not in s for s in scopes))
    )
    if not ok:
        raise SyncSetupError(
            f"{name}: extra scopes must be a string or a list of scope names, got {scopes!r}"
        )


def first_of(extra: Mapping[str, Any], fields: tuple[str, ...]) -> Any:
    """The value of the first of ``fields`` set in ``extra`` (``None`` if none is)."""
    return next((extra.get(f) for f in fields if extra.get(f)), None)
