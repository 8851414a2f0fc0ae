"""An in-process paginated API on a fake clock, reached through a ``requests`` transport adapter.

The adapter is mounted on the hook's own session, so every byte the real hook code sends (each
redirect hop included) reaches ``ScriptedApi.answer`` and is logged there with the fake clock's time
of *arrival*. Nothing sleeps: latency advances the clock between send and arrival (``out``) and
between arrival and response (``back``).

Collections: ``/<name>`` (any name; a trailing slash is served the same) with ``pages`` pages of
``page_size`` items, paginated by ``Link: rel="next"`` (``?page=N``) or by a numeric ``next_cursor``
in the body (``?cursor=N``); ``/detail/<id>`` answers ``{"id": id}``. Each request takes the next
scripted ``Reply`` (or a healthy one when the script is empty), so faults land on whatever request
comes next: a page, a detail request or a redirect hop.
"""

from __future__ import annotations

import io
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
import urllib3
from requests.adapters import BaseAdapter, HTTPAdapter

HOST = "api.test"
BASE = f"http://{HOST}"

# what a scripted reply can be; "ok" serves the resource
FAULTS = (
    "ok",
    "500",
    "503",
    "408",
    "429",
    "404",
    "timeout",
    "html",
    "shape",
    "redirect",
    "loop",
    "bad_location",
    "offsite",
)
INVALID_FAULTS = frozenset({"html", "shape", "loop", "bad_location", "offsite"})
"""Replies after which ending a sync as INVALID_RESPONSE is the right answer."""
SEEN_FAULTS = frozenset(FAULTS) - {"ok", "redirect"}
"""Replies that may legitimately end a sync unsuccessfully."""


class FakeClock:
    """Epoch seconds that move only when told to."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Crash(BaseException):
    """The worker dies: nothing after this point of the sync runs (not caught by ``except Exception``)."""


@dataclass(frozen=True)
class Reply:
    kind: str = "ok"
    out: float = 0.0
    """Seconds from send to arrival at the API."""
    back: float = 0.0
    """Seconds from arrival to the response reaching the client."""
    retry_after: int | None = None


@dataclass(frozen=True)
class Wire:
    """One request as the API saw it."""

    at: float
    method: str
    path: str
    host: str
    sync: int
    """Which sync sent it (``ScriptedApi.sender``); -1 when none was set."""
    limit: int
    """``max_requests`` of the run that sent it."""
    kind: str
    """What the API answered (a ``FAULTS`` name)."""
    page: tuple[str, int] | None = None
    """``(collection, page number)`` when a page was served."""


class ScriptedApi:
    def __init__(self, clock: FakeClock, *, pages: int, page_size: int, cursor: bool) -> None:
        self.clock = clock
        self.pages = pages
        self.page_size = page_size
        self.cursor = cursor
        self.script: deque[Reply] = deque()
        self.log: list[Wire] = []
        self.sender: tuple[int, int] = (-1, 0)
        """``(sync id, max_requests)`` of the run now sending."""
        self.on_wire: Callable[[str, Wire | None], None] | None = None
        """Called ``("before", None)`` before and ``("after", wire)`` after each arrival (crash points)."""

    def items(self, collection: str, page: int) -> list[str]:
        return [f"{collection}-{page}-{k}" for k in range(self.page_size)]

    def all_items(self, collection: str, pages: int | None = None) -> list[str]:
        n = self.pages if pages is None else min(pages, self.pages)
        return [i for p in range(1, n + 1) for i in self.items(collection, p)]

    # -- one request ------------------------------------------------------------------------------

    def arrive(self, method: str, url: str) -> tuple[Wire, Reply]:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        looping = parts.path.startswith("/loop")
        reply = Reply("loop") if looping else (self.script.popleft() if self.script else Reply())
        if self.on_wire is not None:
            self.on_wire("before", None)
        self.clock.advance(reply.out)
        sync, limit = self.sender
        wire = Wire(self.clock(), method, path, parts.hostname or "", sync, limit, reply.kind)
        if reply.kind == "ok":
            wire = self._with_page(wire, parts.path, parts.query)
        self.log.append(wire)
        if self.on_wire is not None:
            self.on_wire("after", wire)
        return wire, reply

    def _with_page(self, wire: Wire, path: str, query: str) -> Wire:
        name = path.strip("/")
        if "/" in name or not name:
            return wire
        q = dict(parse_qsl(query))
        page = int(q.get("cursor" if self.cursor else "page", "1"))
        return Wire(**{**wire.__dict__, "page": (name, page)})

    def answer(self, wire: Wire, reply: Reply) -> tuple[int, dict[str, str], bytes]:
        kind = reply.kind
        retry = {"Retry-After": str(reply.retry_after)} if reply.retry_after is not None else {}
        if kind in ("500", "503", "408", "429", "404"):
            return int(kind), {"Content-Type": "text/plain", **retry}, b"scripted " + kind.encode()
        if kind == "html":
            return 200, {"Content-Type": "text/html"}, b"<html><body>Down for maintenance</body></html>"
        if kind == "shape":
            return 200, {"Content-Type": "application/json"}, b'{"unexpected": {"a": 1}}'
        if kind == "redirect":  # the classic trailing-slash redirect, to the same resource
            parts = urlsplit(wire.path)
            target = parts.path.rstrip("/") if parts.path.endswith("/") else parts.path + "/"
            return 301, {"Location": target + (f"?{parts.query}" if parts.query else "")}, b""
        if kind == "loop":
            hop = int(dict(parse_qsl(urlsplit(wire.path).query)).get("hop", "0")) + 1
            return 302, {"Location": f"/loop?hop={hop % 2}"}, b""
        if kind == "bad_location":
            return 302, {"Location": f"http://{HOST}:99999/items"}, b""
        if kind == "offsite":
            return 302, {"Location": "http://elsewhere.test/items"}, b""
        return self._resource(wire)

    def _resource(self, wire: Wire) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(wire.path)
        name = parts.path.strip("/")
        json_type = {"Content-Type": "application/json"}
        if name.startswith("detail/"):
            return 200, json_type, json.dumps({"id": name.removeprefix("detail/")}).encode()
        if wire.page is None:
            return 404, {}, b"no such resource"
        collection, page = wire.page
        if not 1 <= page <= self.pages:
            return 404, {}, b"no such page"
        body: dict[str, Any] = {"items": self.items(collection, page)}
        headers = dict(json_type)
        if page < self.pages:
            if self.cursor:
                body["next_cursor"] = str(page + 1)
            else:
                headers["Link"] = f'</{collection}?{urlencode({"page": page + 1})}>; rel="next"'
        return 200, headers, json.dumps(body).encode()


class ApiAdapter(BaseAdapter):
    """A ``requests`` transport that delivers to a ``ScriptedApi`` instead of a socket."""

    def __init__(self, api: ScriptedApi) -> None:
        super().__init__()
        self.api = api

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        wire, reply = self.api.arrive(request.method or "GET", request.url or "")
        if reply.kind == "timeout":
            seconds = timeout[-1] if isinstance(timeout, tuple) else timeout
            self.api.clock.advance(float(seconds or 0))
            raise requests.ReadTimeout(f"scripted timeout of {wire.path}", request=request)
        status, headers, body = self.api.answer(wire, reply)
        self.api.clock.advance(reply.back)
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(body),
            headers={**headers, "Content-Length": str(len(body))},
            status=status,
            reason=requests.status_codes._codes.get(status, ("",))[0].upper(),  # type: ignore[attr-defined]
            preload_content=False,
            decode_content=False,
        )
        return HTTPAdapter.build_response(self, request, raw)  # type: ignore[arg-type]

    def close(self) -> None:
        pass
