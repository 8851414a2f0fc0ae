"""``RateLimitedSyncHook``: an Airflow HTTP connection turned into breaker- and limiter-guarded requests.

Built on the http provider's ``HttpHook`` for the connection: base URL from host/schema/port, basic
auth from login/password, the extra field as request headers (plus ``verify``, ``proxies``, ...); an
``api_key_header`` or ``api_key_param`` extra sends the password as that header or query parameter;
``auth_type: bearer`` sends it as a bearer token; ``auth_type: oauth2_client_credentials`` (with
``token_url`` and ``scopes``) asks a token endpoint for one as login/password (``hooks.oauth2``).
The hook sends one request (``send``: per-request timeout and size bound, redirects not followed)
and classifies what came back; permission, window slots, redirects, retries and waits are the
caller's (``SyncRun``); the hook never sleeps. URLs in its messages are redacted (``redact``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.sdk.log import mask_secret

from airflow_sync_provider.admin import api as admin_api
from airflow_sync_provider.config import DEFAULT_SYNC_CONFIGS, SyncConfig
from airflow_sync_provider.exceptions import SyncAbort, SyncSetupError
from airflow_sync_provider.hooks import outcome
from airflow_sync_provider.hooks.bounded_read import Deadline, TooLarge, read_bounded
from airflow_sync_provider.hooks.connection_auth import (
    API_KEY_HEADER_FIELDS,
    API_KEY_PARAM_FIELDS,
    AUTH_FIELDS,
    check_auth_extra,
    first_of,
)
from airflow_sync_provider.hooks.guard import SourceGuard
from airflow_sync_provider.hooks.oauth2 import CLIENT_AUTH, TOKENS, ClientCredentials, token_problem
from airflow_sync_provider.hooks.outcome import Attempt
from airflow_sync_provider.policy import advertised, quota
from airflow_sync_provider.policy.backoff import parse_retry_after
from airflow_sync_provider.redact import protect_http_debug_log, redact_url, scrub
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.state.store import StateStore, VariableStateStore

_SECRET_EXTRA_HINTS = ("key", "token", "secret", "auth", "pass", "sig")


class CrossHostRedirect(requests.RequestException):
    """A redirect that would leave the connection's scheme, host and port."""


class RateLimitedSyncHook(HttpHook):
    """Breaker-aware, rate-limited HTTP access to one Airflow connection.

    :param conn_id: the Airflow connection (type ``http`` or ``sync_http``); default ``sync_default``.
    :param store: where breaker and window state live; default Airflow Variables.
    :param configs: the known sources, for ``get_all_states``; default ``DEFAULT_SYNC_CONFIGS``.
    :param clock: epoch seconds; injected by tests and simulations.
    """

    conn_name_attr = "conn_id"
    default_conn_name = "sync_default"
    conn_type = "sync_http"
    hook_name = "Rate-limited Sync (HTTP)"

    def __init__(
        self,
        conn_id: str = default_conn_name,
        *,
        store: StateStore | None = None,
        configs: Mapping[str, SyncConfig] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(method="GET", http_conn_id=conn_id)
        self.conn_id = conn_id
        self._store = store
        self.configs = dict(configs if configs is not None else DEFAULT_SYNC_CONFIGS)
        self.clock = clock
        self._session: requests.Session | None = None
        self._origin: tuple[str, str, int | None] | None = None
        self._key_param: tuple[str, str] | None = None
        self._secrets: tuple[str, ...] = ()
        self.oauth: ClientCredentials | None = None
        """The connection's OAuth2 client credentials (``auth_type: oauth2_client_credentials``)."""
        self._named_secrets: dict[str, str] = {}

    @property
    def store(self) -> StateStore:
        if self._store is None:
            self._store = VariableStateStore()
        return self._store

    # -- connection ----------------------------------------------------------------------------

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """The connection's session; an ``api_key_header`` extra sends the password in that header,
        an ``api_key_param`` extra as that query parameter (added by ``send``).

        Raises ``SyncSetupError`` naming the connection and the field when the connection is missing
        or unusable (no host, a port out of range, extra that is not a JSON object, an
        ``api_key_header`` or ``api_key_param`` without a password, a scheme other than http/https).
        """
        connection = self._usable_connection()
        session = super().get_conn(headers, extra_options)
        self._check_base_url()
        extra = connection.extra_dejson
        key_header = first_of(extra, API_KEY_HEADER_FIELDS)
        key_param = first_of(extra, API_KEY_PARAM_FIELDS)
        for field in (*API_KEY_HEADER_FIELDS, *API_KEY_PARAM_FIELDS, *AUTH_FIELDS):
            session.headers.pop(field, None)
        auth_type = extra.get("auth_type") or "basic"
        if key_header or key_param or auth_type != "basic":
            session.auth = None
        if auth_type == "bearer":
            session.headers["Authorization"] = f"Bearer {connection.password}"
        if auth_type == "oauth2_client_credentials":
            scopes = extra.get("scopes") or ()
            self.oauth = ClientCredentials(
                token_url=str(extra["token_url"]),
                client_id=str(connection.login),
                secret=str(connection.password),
                scopes=tuple(scopes.split() if isinstance(scopes, str) else scopes),
                client_auth=str(extra.get("client_auth") or CLIENT_AUTH[0]),
            )
        if key_header and connection.password:
            session.headers[str(key_header)] = connection.password
        if key_param and connection.password:
            self._key_param = (str(key_param), connection.password)
        hidden = {"password": connection.password or ""}
        names = (*API_KEY_HEADER_FIELDS, *API_KEY_PARAM_FIELDS, *AUTH_FIELDS)  # they name, not hold, keys
        hidden |= {
            f"extra.{k}": str(v)
            for k, v in extra.items()
            if k not in names and any(h in str(k).lower() for h in _SECRET_EXTRA_HINTS)
        }
        self._named_secrets = {name: value for name, value in hidden.items() if value}
        self._secrets = tuple(self._named_secrets.values())
        protect_http_debug_log(self._secrets)
        # SyncRun follows redirects (each hop its own slot); requests' own machinery would still parse
        # the Location of a 3xx (for Response.next) and raise on a malformed one
        session.resolve_redirects = _no_redirects  # type: ignore[method-assign]
        return session

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            try:
                self._session = self.get_conn()
            except SyncSetupError as exc:  # nothing was sent: end the sync with the reason, no traceback
                raise SyncAbort(SyncErrorKind.CONNECTION_ERROR, str(exc), sent_requests=False) from None
            parts = urlsplit(self.base_url)
            self._origin = (parts.scheme, parts.hostname or "", parts.port)
        return self._session

    def _usable_connection(self) -> Any:
        name = f"connection {self.http_conn_id!r}"
        try:
            connection = self.get_connection(self.http_conn_id)
        except AirflowNotFoundException as exc:
            raise SyncSetupError(f"{name} is not defined (or could not be parsed): {exc}") from None
        if connection.extra:
            try:
                extra = json.loads(connection.extra)
            except ValueError as exc:
                raise SyncSetupError(f"{name}: extra is not valid JSON ({exc})") from None
            if not isinstance(extra, dict):
                raise SyncSetupError(f"{name}: extra must be a JSON object, got {type(extra).__name__}")
            for fields in (API_KEY_HEADER_FIELDS, API_KEY_PARAM_FIELDS):
                value = first_of(extra, fields)
                if value is None:
                    continue
                if not isinstance(value, str) or not value.strip() or any(c in value for c in "&=#?\r\n"):
                    raise SyncSetupError(f"{name}: extra {fields[0]} must be a plain name, got {value!r}")
                if not connection.password:
                    raise SyncSetupError(
                        f"{name}: extra {fields[0]} is {value!r} but the password (the key) is empty"
                    )
            check_auth_extra(name, extra, connection)
        return connection

    def _check_base_url(self) -> None:
        name = f"connection {self.http_conn_id!r}"
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https"):
            raise SyncSetupError(f"{name}: scheme must be http or https, got {parts.scheme!r}")
        if not parts.hostname:
            raise SyncSetupError(f"{name} has no host")
        try:
            port = parts.port
        except ValueError:
            port = -1
        if port is not None and not 0 < port <= 65535:
            port_text = self.base_url.rsplit(":", 1)[-1]
            raise SyncSetupError(f"{name}: port must be an integer in [1, 65535], got {port_text!r}")

    def url_for(self, path_or_url: str) -> str:
        """Resolve ``path_or_url`` against the base URL; refuse URLs on another origin."""
        _ = self.session  # the base URL is known once the connection has been read
        base = self.base_url
        url = (
            urljoin(base.rstrip("/") + "/", path_or_url.lstrip("/"))
            if "://" not in path_or_url
            else path_or_url
        )
        if not self._same_origin(url, base):
            raise CrossHostRedirect(f"refusing to send a request to another host: {_origin_of(url)}")
        return url

    def _same_origin(self, url: str, base: str) -> bool:
        try:
            return _origin_of(url) == _origin_of(base)
        except ValueError:  # a bad port or IPv6 literal: not an origin we know
            raise CrossHostRedirect("refusing to send a request to a malformed URL") from None

    @property
    def named_secrets(self) -> dict[str, str]:
        """The connection's secrets by where they come from: ``password``, ``extra.<field>`` (key extras)."""
        _ = self.session  # they are known once the connection has been read
        return dict(self._named_secrets)

    def redact(self, url: str, config: SyncConfig) -> str:
        """``url`` as messages show it: path and query, query values and known secrets masked."""
        return redact_url(url, keep=_positions(config), secrets=self._secrets)

    # -- one guarded attempt ---------------------------------------------------------------------

    def open_guard(
        self, config: SyncConfig, *, log: Any = None, on_transition: Any = None, writer: str | None = None
    ) -> SourceGuard:
        """Hold the source's state for one sync (read at its first use); ``writer`` names every write."""
        return SourceGuard(
            config,
            self.store,
            clock=self.clock,
            log=log or self.log,
            on_transition=on_transition,
            writer=writer,
        )

    def send(
        self,
        config: SyncConfig,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        *,
        json_body: Any = None,
        token_call: bool = False,
    ) -> Attempt:
        """Send one request (no permission check) and classify what came back.

        Redirects are not followed here: a same-origin redirect comes back with ``redirect_to`` set
        (``SyncRun`` follows it through its own window slot); one to another host or with a malformed
        ``Location`` is ``INVALID_RESPONSE``. ``json_body`` is sent as JSON; ``token_call`` sends the
        OAuth2 token request to ``url`` (the connection's ``token_url``) instead.
        """
        started = time.monotonic()
        deadline = config.timeout / timedelta(seconds=1)
        shown = self.redact(url, config)
        extra: dict[str, Any] = {}
        if token_call and self.oauth is not None:
            extra = {"data": self.oauth.form, "auth": self.oauth.basic_auth}
        else:
            params = self._with_key_param(url, params)
            token = self.cached_token()
            if token is not None:
                extra["headers"] = {"Authorization": f"Bearer {token}"}
            if json_body is not None:
                extra["json"] = json_body
        try:
            response = self.session.request(
                method, url, params=params, timeout=deadline, stream=True, allow_redirects=False, **extra
            )
        except requests.Timeout:
            return outcome.timeout(f"{method} {shown} timed out after {deadline:g}s")
        except (requests.TooManyRedirects, requests.exceptions.InvalidURL) as exc:  # never worth a retry
            return outcome.invalid(f"{method} {shown}: {self._scrub(_short(exc), url, config)}", None)
        except requests.RequestException as exc:
            return outcome.connection_error(f"{method} {shown}: {self._scrub(_short(exc), url, config)}")
        except ValueError as exc:  # a URL urllib3 cannot parse: no request left
            return outcome.invalid(f"{method} {shown}: {self._scrub(_short(exc), url, config)}", None)
        with response:
            if response.status_code in outcome.REDIRECT_STATUSES and "location" in response.headers:
                return self._redirect(response, method, url, config)
            return self._classify(response, method, url, config, started, deadline)

    def cached_token(self) -> str | None:
        """The OAuth2 token this process holds for the connection (None: none, or near expiry)."""
        return None if self.oauth is None else TOKENS.get(self.oauth.key, self.clock())

    def keep_token(self, body: Any) -> None:
        """Keep the token of a token response (``token_problem(body)`` is None); masked from now on."""
        if self.oauth is None:
            return
        token = TOKENS.put(self.oauth.key, body, self.clock())
        mask_secret(token)
        self._named_secrets["oauth.access_token"] = token
        self._secrets = tuple(self._named_secrets.values())

    def forget_token(self) -> None:
        """Drop the cached token (the API answered 401 with it)."""
        if self.oauth is not None:
            TOKENS.forget(self.oauth.key)

    @staticmethod
    def token_problem(body: Any) -> str | None:
        """Why a token response cannot be used (None: it can)."""
        return token_problem(body)

    def _with_key_param(self, url: str, params: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """``params`` plus the ``api_key_param`` key, unless the URL (a next link) already carries it."""
        if self._key_param is None:
            return params
        name, key = self._key_param
        if (params and name in params) or any(
            p.partition("=")[0] == name for p in urlsplit(url).query.split("&")
        ):
            return params
        return {**(params or {}), name: key}

    def _scrub(self, text: str, url: str, config: SyncConfig) -> str:
        return scrub(text, url, keep=_positions(config), secrets=self._secrets)

    def _redirect(self, response: requests.Response, method: str, url: str, config: SyncConfig) -> Attempt:
        """A 3xx with a ``Location``: where it leads, if the hook may follow it."""
        status = response.status_code
        location = response.headers["location"]
        where = f"{method} {self.redact(url, config)} -> {status}"
        try:
            target = urljoin(url, location)
            same = self._same_origin(target, self.base_url)
        except (ValueError, CrossHostRedirect):
            shown = redact_url(location, keep=_positions(config), secrets=self._secrets)
            return outcome.redirect_problem(f"{where} with a malformed Location {shown!r}", status)
        if not same:
            return outcome.redirect_problem(
                f"{where}: refused redirect to another host: {_origin_of(target)}", status
            )
        message = f"{where} redirect to {self.redact(target, config)}"
        return Attempt(
            None, False, outcome.BreakerEffect.NEUTRAL, message, status, url=url, redirect_to=target
        )

    def _classify(
        self,
        response: requests.Response,
        method: str,
        url: str,
        config: SyncConfig,
        started: float,
        deadline: float,
    ) -> Attempt:
        """What the response means, with the quota it reports (when the config learns from headers)."""
        retry_after = None
        if response.status_code in outcome.RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self.clock())
        attempt = self._meaning(response, method, url, config, started, deadline, retry_after)
        limit = config.rate_limit
        if not limit.learn_from_headers:
            return attempt
        reported = quota.parse_headers(
            response.headers,
            self.clock(),
            remaining_header=limit.remaining_header,
            reset_header=limit.reset_header,
            reset_is=limit.reset_is,
            retry_after=retry_after if attempt.kind is SyncErrorKind.RATE_LIMITED else None,
        )
        return attempt if reported.is_empty() else dataclasses.replace(attempt, quota=reported)

    def _meaning(
        self,
        response: requests.Response,
        method: str,
        url: str,
        config: SyncConfig,
        started: float,
        deadline: float,
        retry_after: float | None,
    ) -> Attempt:
        status = response.status_code
        shown = self.redact(url, config)
        headers = {k.lower(): v for k, v in response.headers.items() if k.lower() in _KEPT_HEADERS}
        signal = status == outcome.FORBIDDEN and outcome.says_rate_limited(
            response.headers, retry_after, remaining_header=config.rate_limit.remaining_header
        )
        kind, retryable, effect = outcome.from_status(status, response.reason or "", rate_limit_signal=signal)
        if kind is not None:
            message = f"{method} {shown} -> {status} {response.reason or ''}".rstrip()
            return Attempt(kind, retryable, effect, message, status, retry_after, headers=headers, url=url)
        failure = config.invalid_response_is_failure
        try:
            raw = read_bounded(response, config.max_response_bytes, started, deadline)
        except TooLarge:
            return outcome.unusable_body(
                f"{method} {shown}: body larger than max_response_bytes={config.max_response_bytes}",
                status,
                is_failure=failure,
            )
        except Deadline:
            return outcome.timeout(f"{method} {shown}: body not received within {deadline:g}s")
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            detail = self._scrub(_short(exc), url, config)
            return outcome.connection_error(f"{method} {shown}: broken body: {detail}")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return outcome.unusable_body(
                f"{method} {shown}: body is not JSON ({raw[:40]!r}...)", status, is_failure=failure
            )
        return Attempt(
            None, False, outcome.BreakerEffect.SUCCESS, "ok", status, body=body, headers=headers, url=url
        )

    # -- the original design's admin API (the logic lives in ``admin_api``) ------------------------

    def get_circuit_breaker_state(self, source: str) -> dict[str, Any]:
        """Breaker state of ``source``: ``state``, ``failure_count``, ``opened_at``, ``next_probe_at``..."""
        return admin_api.breaker_state(self.store, source, self.configs, self.clock())

    def get_all_states(self) -> dict[str, dict[str, Any]]:
        """``get_circuit_breaker_state`` of every known source."""
        return admin_api.all_states(self.store, self.configs, self.clock())

    def reset_circuit_breaker(self, source: str, *, writer: str | None = None) -> dict[str, Any]:
        """Close ``source``'s breaker and clear its count. Run it in the pool ``sync_<source>``."""
        admin_api.reset_breaker(self.store, source, self.clock(), log=self.log, writer=writer)
        return self.get_circuit_breaker_state(source)


_KEPT_HEADERS = frozenset({"link", "retry-after", "content-type", "date"}) | advertised.NAMES


def _positions(config: SyncConfig) -> tuple[str, ...]:
    """Query parameters shown as they are: where the sync stands (the cursor, the incremental bookmark,
    the paginator's offset, page or cursor)."""
    names = [config.cursor_param]
    if config.incremental is not None:
        names.append(config.incremental.param)
    p = config.paginator
    if p is not None:
        names += [n for n in (p.cursor_param, p.offset_param, p.limit_param, p.page_param) if n is not None]
    return tuple(names)


def _origin_of(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), parts.port or default_port)


def _no_redirects(*args: Any, **kwargs: Any) -> Iterator[Any]:
    return iter(())


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."
