"""Local emulations of well-known APIs, each built from that API's public documentation.

Every emulation is a loopback HTTP server (``EmulatedApi``) that logs each request (method, path,
headers, JSON or form body) and can answer one request 429 with ``Retry-After`` (``throttle_at``), so
a test can defer a sync in the middle of a pagination and check where the resume starts.

- ``Stripe`` (docs.stripe.com/api/pagination, /rate-limits): ``GET /v1/customers``, bearer secret key,
  ``limit`` 1..100 (default 10), ``starting_after`` = an object id, newest first, ``created[gte]``;
  ``{"object": "list", "url", "has_more", "data"}``; an unknown id is a 400 ``resource_missing``; no
  rate-limit headers on success, a 429 ``rate_limit`` error when throttled.
- ``Zendesk`` (developer.zendesk.com, cursor pagination): ``GET /api/v2/tickets.json`` with basic auth,
  ``page[size]`` (max 100) and ``page[after]``; ``{"tickets", "meta": {"has_more", "after_cursor",
  "before_cursor"}, "links": {"next", "prev"}}`` with full-URL links; ``next`` stays set on the last
  page, so only ``meta.has_more`` says stop. Every answer carries the account's quota (``X-Rate-Limit:
  700``, ``X-Rate-Limit-Remaining``) and the list endpoints' ``ratelimit-limit/-remaining/-reset``.
- ``Notion`` (developers.notion.com, query a database): ``POST /v1/databases/<id>/query`` with a bearer
  token and a ``Notion-Version`` header, ``start_cursor`` and ``page_size`` (max 100) in the JSON body;
  ``{"object": "list", "results", "next_cursor", "has_more"}``; errors are ``{"object": "error",
  "status", "code"}`` (429 ``rate_limited`` with ``Retry-After``).
- ``Jira`` (REST API v3 search): ``GET /rest/api/3/search`` with basic auth, ``jql``, ``startAt``,
  ``maxResults`` (capped at 50, echoed); ``{"startAt", "maxResults", "total", "issues"}``; a 429 carries
  ``Retry-After`` and ``RateLimit-Reason``.
- ``GitHub``: in ``tests.apis.github``; ``HubSpot``: in ``tests.apis.hubspot``.
- ``OAuthReports``: an OAuth2 client-credentials API (RFC 6749 section 4.4 and RFC 6750):
  ``POST /oauth/token`` (form ``grant_type=client_credentials``, ``scope``; client id and secret as
  basic auth, or as ``client_id`` / ``client_secret`` in the form where ``client_auth`` accepts
  ``client_secret_post`` (section 2.3.1; both at once is a 400 ``invalid_request``); ``401
  invalid_client`` otherwise) returns ``{"access_token", "token_type": "Bearer",
  "expires_in"}``; ``GET /v1/reports?page=N&per_page=M`` (pages from 1, ``total_pages``) needs a
  live token (``401`` with ``WWW-Authenticate: Bearer error="invalid_token"`` otherwise);
  ``revoke_tokens()`` invalidates every token issued so far. Reports answers carry the IETF draft's
  ``RateLimit-Limit: 120``, ``-Remaining``, ``-Reset`` and ``RateLimit-Policy: 120;w=60``.
- ``Harvest`` (help.getharvest.com/api-v2, pagination and rate limiting): a page-number API.
  ``GET /v2/time_entries`` with a bearer token, ``Harvest-Account-Id`` and a ``User-Agent`` (400 without
  one), ``page`` (from 1), ``per_page`` (1..2000, more is a 422) and ``updated_since`` (ISO 8601);
  ``{"time_entries", "per_page", "total_pages", "total_entries", "next_page", "previous_page", "page",
  "links"}``; 100 requests per 15 seconds, a 429 with ``Retry-After``.

Every emulation answers a throttled request (``throttle_at``) as that API documents its 429, always with
``Retry-After: 30``.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class EmulatedApi:
    """A loopback server; subclasses answer in ``answer``. ``throttle_at(n)`` answers the n-th request
    (1-based, counted over the whole log) 429 with ``Retry-After: 30`` (or ``retry_after``)."""

    def __init__(self) -> None:
        self.log: list[Seen] = []
        self._throttle: dict[int, tuple[int, int]] = {}
        self._quota: tuple[int, float, Callable[[], float]] | None = None
        self.admitted: list[float] = []
        self.refused = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True

    def __enter__(self) -> EmulatedApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def enforce(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        """Refuse (this API's 429, ``Retry-After`` = the window) a request that would be the
        ``limit + 1``-th within ``window`` seconds of ``clock``: the API's documented quota, enforced.
        ``admitted`` holds the admitted requests' times, ``refused`` counts the refusals."""
        self._quota = (limit, window, clock)

    def throttle_at(self, n: int, retry_after: int = 30, status: int = 429) -> None:
        """Answer the ``n``-th request ``status`` (429, or 403 where an API documents it for a rate
        limit) with this API's rate-limit body and ``Retry-After: retry_after``."""
        self._throttle[n] = (retry_after, status)

    def requests(self, path_prefix: str = "/") -> list[Seen]:
        return [s for s in self.log if s.path.startswith(path_prefix)]

    def receive(self, seen: Seen) -> Answer:
        with self._lock:
            self.log.append(seen)
            if len(self.log) in self._throttle:
                refused = self.rate_limited()
                wait, status = self._throttle[len(self.log)]
                return Answer(status, refused.body, {**refused.headers, "Retry-After": str(wait)})
            if self._quota is not None:
                limit, window, clock = self._quota
                now = clock()
                if sum(1 for t in self.admitted if t > now - window) >= limit:
                    self.refused += 1
                    refused = self.rate_limited()
                    return Answer(429, refused.body, {**refused.headers, "Retry-After": f"{window:g}"})
                self.admitted.append(now)
            answer = self.answer(seen)
            return Answer(answer.status, answer.body, {**self.quota_headers(), **answer.headers})

    def answer(self, seen: Seen) -> Answer:
        raise NotImplementedError

    def rate_limited(self) -> Answer:
        """This API's documented 429 (``Retry-After: 30`` is added)."""
        return Answer(429, {"error": "rate limited"})

    def quota_headers(self) -> dict[str, str]:
        """The rate-limit headers this API sends with every answer (none unless it documents some)."""
        return {}


def basic_auth(headers: dict[str, str]) -> tuple[str, str] | None:
    value = headers.get("Authorization", "")
    if not value.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(value[6:]).decode().partition(":")
    return user, password


def bearer(headers: dict[str, str]) -> str | None:
    value = headers.get("Authorization", "")
    return value[7:] if value.startswith("Bearer ") else None


def _handler(api: EmulatedApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            kind = self.headers.get("Content-Type", "")
            body: Any = None
            if raw and kind.startswith("application/json"):
                body = json.loads(raw)
            elif raw:
                body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            answer = api.receive(Seen(self.command, parts.path, query, dict(self.headers.items()), body))
            data = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_GET

    return Handler


def error_answer(status: int, **body: Any) -> Answer:
    return Answer(status, body)


class Stripe(EmulatedApi):
    """``/v1/customers``: ``count`` customers, newest first; the secret key ``key`` as a bearer token."""

    def __init__(self, count: int, key: str = "sk_test_4eC39HqLyjWDarjtT1zdp7dc") -> None:
        super().__init__()
        self.key = key
        # cus_0001 is the oldest; lists are in reverse chronological order
        self.customers = [
            {"id": f"cus_{i:04d}", "object": "customer", "created": 1_700_000_000 + i}
            for i in range(count, 0, -1)
        ]

    def answer(self, seen: Seen) -> Answer:
        if bearer(seen.headers) != self.key:
            return error_answer(
                401, error={"type": "invalid_request_error", "message": "Invalid API Key provided"}
            )
        if seen.path != "/v1/customers":
            return error_answer(
                404, error={"type": "invalid_request_error", "message": "Unrecognized request URL"}
            )
        limit = int(seen.query.get("limit", 10))
        if not 1 <= limit <= 100:
            return error_answer(400, error={"type": "invalid_request_error", "param": "limit"})
        rows = [c for c in self.customers if c["created"] >= int(seen.query.get("created[gte]", 0))]
        start = 0
        if "starting_after" in seen.query:
            ids = [c["id"] for c in rows]
            if seen.query["starting_after"] not in ids:
                return error_answer(400, error={"type": "invalid_request_error", "code": "resource_missing"})
            start = ids.index(seen.query["starting_after"]) + 1
        page = rows[start : start + limit]
        more = start + limit < len(rows)
        return Answer(200, {"object": "list", "url": "/v1/customers", "has_more": more, "data": page})

    def rate_limited(self) -> Answer:
        message = "Too many requests hit the API too quickly."
        error = {"type": "invalid_request_error", "code": "rate_limit", "message": message}
        return Answer(429, {"error": error})


class Zendesk(EmulatedApi):
    """``/api/v2/tickets.json``: ``count`` tickets; basic auth ``user``/``token``."""

    def __init__(
        self, count: int, user: str = "agent@example.com/token", token: str = "zd-6wiIBWbGkBMo1mRDMuVwkw"
    ) -> None:
        super().__init__()
        self.credentials = (user, token)
        self.tickets = [{"id": i, "subject": f"ticket {i}"} for i in range(1, count + 1)]

    limit = 700
    """The account's requests a minute (Enterprise; the emulation never refuses on its own)."""

    def quota_headers(self) -> dict[str, str]:
        remaining = str(max(0, self.limit - len(self.log)))
        return {
            "X-Rate-Limit": str(self.limit),
            "X-Rate-Limit-Remaining": remaining,
            "ratelimit-limit": str(self.limit),
            "ratelimit-remaining": remaining,
            "ratelimit-reset": "41",
        }

    def rate_limited(self) -> Answer:
        return Answer(429, {"error": "APIRateLimitExceeded"}, {"X-Rate-Limit-Remaining": "0"})

    def answer(self, seen: Seen) -> Answer:
        if basic_auth(seen.headers) != self.credentials:
            return error_answer(401, error="Couldn't authenticate you")
        if seen.path != "/api/v2/tickets.json":
            return error_answer(404, error="InvalidEndpoint", description="Not found")
        size = min(int(seen.query.get("page[size]", 100)), 100)
        after = seen.query.get("page[after]")
        start = 0 if after is None else int(base64.b64decode(after).decode()) + 1
        page = self.tickets[start : start + size]
        last = start + len(page) - 1
        cursor = base64.b64encode(str(last).encode()).decode() if page else None
        base = f"{self.url}/api/v2/tickets.json"
        return Answer(
            200,
            {
                "tickets": page,
                "meta": {
                    "has_more": start + size < len(self.tickets),
                    "after_cursor": cursor,
                    "before_cursor": None,
                },
                # the next link is there even on the last page: meta.has_more says when to stop
                "links": {
                    "next": f"{base}?{urlencode({'page[size]': size, 'page[after]': cursor})}",
                    "prev": None,
                },
            },
        )


def notion_error(status: int, code: str) -> Answer:
    """Notion's error object: ``{"object": "error", "status", "code", "message"}``."""
    return Answer(status, {"object": "error", "status": status, "code": code, "message": code})


class Notion(EmulatedApi):
    """``POST /v1/databases/<database>/query``: ``count`` pages; ``token`` as a bearer token."""

    def __init__(
        self,
        count: int,
        database: str = "d9824bdc84454327be8b5b47500af6ce",
        token: str = "secret_notion_AbC123",
    ) -> None:
        super().__init__()
        self.database, self.token = database, token
        self.pages = [{"object": "page", "id": f"page-{i:03d}"} for i in range(count)]

    def answer(self, seen: Seen) -> Answer:
        if bearer(seen.headers) != self.token:
            return notion_error(401, "unauthorized")
        if "Notion-Version" not in seen.headers:
            return notion_error(400, "missing_version")
        if seen.method != "POST" or seen.path != f"/v1/databases/{self.database}/query":
            return notion_error(404, "object_not_found")
        body = seen.body or {}
        size = min(int(body.get("page_size", 100)), 100)
        cursor = body.get("start_cursor")
        start = 0 if cursor is None else [p["id"] for p in self.pages].index(cursor)
        page = self.pages[start : start + size]
        more = start + size < len(self.pages)
        following = self.pages[start + size]["id"] if more else None
        return Answer(200, {"object": "list", "results": page, "next_cursor": following, "has_more": more})

    def rate_limited(self) -> Answer:
        return notion_error(429, "rate_limited")


class Jira(EmulatedApi):
    """``/rest/api/3/search``: ``count`` issues; basic auth; ``maxResults`` capped at ``cap``."""

    def __init__(
        self, count: int, cap: int = 50, user: str = "me@example.com", token: str = "ATATT3xFfGF0jira"
    ) -> None:
        super().__init__()
        self.credentials, self.cap = (user, token), cap
        self.issues = [{"id": str(10000 + i), "key": f"PROJ-{i + 1}"} for i in range(count)]

    def answer(self, seen: Seen) -> Answer:
        if basic_auth(seen.headers) != self.credentials:
            return error_answer(401, errorMessages=["You are not authenticated."])
        start = int(seen.query.get("startAt", 0))
        size = min(int(seen.query.get("maxResults", 50)), self.cap)
        page = self.issues[start : start + size]
        return Answer(200, {"startAt": start, "maxResults": size, "total": len(self.issues), "issues": page})

    def rate_limited(self) -> Answer:
        return Answer(
            429, {"errorMessages": ["Rate limit exceeded."]}, {"RateLimit-Reason": "jira-burst-based"}
        )


class OAuthReports(EmulatedApi):
    """An OAuth2 client-credentials API: ``/oauth/token`` and the page-numbered ``/v1/reports``."""

    def __init__(
        self,
        count: int,
        client_id: str = "reports-client",
        secret: str = "s3cr3t-client-secret-value",
        expires_in: int = 3600,
        client_auth: tuple[str, ...] = ("client_secret_basic",),
    ) -> None:
        super().__init__()
        self.client = (client_id, secret)
        self.expires_in = expires_in
        self.client_auth = client_auth
        """The client authentication methods the token endpoint accepts (RFC 6749 2.3.1)."""
        self.reports = [{"id": i, "title": f"report {i}"} for i in range(1, count + 1)]
        self.live: set[str] = set()
        self.issued: list[str] = []

    def revoke_tokens(self) -> None:
        with self._lock:
            self.live.clear()

    def token_calls(self) -> list[Seen]:
        return self.requests("/oauth/token")

    def quota_headers(self) -> dict[str, str]:
        remaining = max(0, 120 - len(self.requests("/v1/")))
        return {
            "RateLimit-Limit": "120",
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": "60",
            "RateLimit-Policy": "120;w=60",
        }

    def answer(self, seen: Seen) -> Answer:
        if seen.path == "/oauth/token":
            form = seen.body or {}
            if seen.method != "POST" or form.get("grant_type") != "client_credentials":
                return error_answer(400, error="unsupported_grant_type")
            posted = (form.get("client_id"), form.get("client_secret"))
            if posted[1] is not None and basic_auth(seen.headers) is not None:
                return error_answer(400, error="invalid_request")  # one authentication method only
            used = "client_secret_basic" if posted[1] is None else "client_secret_post"
            given = basic_auth(seen.headers) if posted[1] is None else posted
            if used not in self.client_auth or given != self.client:
                return Answer(401, {"error": "invalid_client"}, {"WWW-Authenticate": 'Basic realm="token"'})
            token = f"at-{len(self.issued) + 1:04d}-{'x' * 24}"
            self.issued.append(token)
            self.live.add(token)
            return Answer(
                200,
                {
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": self.expires_in,
                    "scope": form.get("scope", ""),
                },
                {"Cache-Control": "no-store"},
            )
        if bearer(seen.headers) not in self.live:
            return Answer(
                401, {"error": "invalid_token"}, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        page, per_page = int(seen.query.get("page", 1)), int(seen.query.get("per_page", 10))
        rows = self.reports[(page - 1) * per_page : page * per_page]
        total_pages = -(-len(self.reports) // per_page)
        return Answer(200, {"reports": rows, "page": page, "total_pages": total_pages})


T0 = datetime(2027, 1, 1, tzinfo=UTC)


def _hours_after(start: datetime, hours: int) -> str:
    return (start + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Harvest(EmulatedApi):
    """``/v2/time_entries``: ``count`` time entries, page-numbered; ``token`` as a bearer token."""

    def __init__(self, count: int, token: str = "2165448.pt.AbCdEf", account: str = "174528") -> None:
        super().__init__()
        self.token, self.account = token, account
        self.entries = [
            {"id": 636_700_000 + i, "hours": round(0.25 * i, 2), "updated_at": _hours_after(T0, i)}
            for i in range(1, count + 1)
        ]

    def touch(self, entry_id: int, updated_at: str) -> None:
        """An entry edited at ``updated_at`` (``updated_since`` finds it again)."""
        for entry in self.entries:
            if entry["id"] == entry_id:
                entry["updated_at"] = updated_at

    def rate_limited(self) -> Answer:
        return error_answer(429, error="rate_limited", error_description="Too many requests")

    def answer(self, seen: Seen) -> Answer:
        if not seen.headers.get("User-Agent"):
            return error_answer(400, error="missing_user_agent")
        if bearer(seen.headers) != self.token or seen.headers.get("Harvest-Account-Id") != self.account:
            return error_answer(401, error="invalid_token", error_description="The access token is invalid")
        if seen.path != "/v2/time_entries":
            return error_answer(404, error="not_found")
        per_page = int(seen.query.get("per_page", 2000))
        if not 1 <= per_page <= 2000:
            return error_answer(422, message="per_page must be between 1 and 2000")
        since = seen.query.get("updated_since", "")
        rows = [e for e in self.entries if e["updated_at"] >= since]
        page = int(seen.query.get("page", 1))
        total_pages = max(1, -(-len(rows) // per_page))

        def link(n: int) -> str:
            query = {k: v for k, v in seen.query.items() if k != "page"}
            return f"{self.url}{seen.path}?{urlencode({**query, 'page': n})}"

        return Answer(
            200,
            {
                "time_entries": rows[(page - 1) * per_page : page * per_page],
                "per_page": per_page,
                "total_pages": total_pages,
                "total_entries": len(rows),
                "next_page": page + 1 if page < total_pages else None,
                "previous_page": page - 1 if page > 1 else None,
                "page": page,
                "links": {
                    "first": link(1),
                    "next": link(page + 1) if page < total_pages else None,
                    "previous": link(page - 1) if page > 1 else None,
                    "last": link(total_pages),
                },
            },
        )
