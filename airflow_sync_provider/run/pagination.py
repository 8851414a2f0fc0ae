"""Paginators as pure functions of a JSON-safe position: what a page's request adds, and what comes next.

A loop starts at ``start(p)``. Each page is requested with ``request_for(p, position)`` (query params
and JSON-body values to add), and when it has arrived, ``advance(p, position, page)`` names the next
page (its position; for the link styles also its URL) or ``None`` on the last page. The position is a
small dict of plain values (``{"offset": 200}``, ``{"page": 3}``, ``{"cursor": "abc"}``,
``{"after": "cus_9"}``; ``{}`` for the first page and the link styles, whose next page is a URL the
caller keeps), so a checkpoint holding it resumes at exactly the unfinished page, and it never holds a
credential: the values come from the API's page bodies, not from the connection.

The semantics follow dlt's ``rest_api`` paginators of the same names (see docs/architecture.md for why
they are not reused directly); ``last_item_cursor`` is Stripe's: the next page starts after the last
item's ``cursor_field``, while ``has_more_path`` says there is more. A page the paginator cannot read
(a missing ``total``, a ``has_more`` that is not a boolean) raises ``PaginationError`` naming the path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_sync_provider.config.endpoint import PaginatorConfig
from airflow_sync_provider.run import json_paths

Position = dict[str, Any]


class PaginationError(ValueError):
    """A page the paginator cannot read; the message names the path and what was there."""


@dataclass(frozen=True)
class PageRequest:
    """What a page's request adds to the endpoint's: query ``params`` and ``body`` values by path."""

    params: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PageView:
    """What the paginator reads of an arrived page."""

    body: Any
    items: Sequence[Any]
    links: Mapping[str, str] = field(default_factory=dict)
    """The ``Link`` header's URLs by ``rel``."""


@dataclass(frozen=True)
class NextPage:
    """The next page: its ``position``, its ``url`` (link styles; as the API wrote it, maybe relative)
    and ``seen_key``, which repeats only if the API sends the sync in a circle (``None``: cannot)."""

    position: Position
    url: str | None = None
    seen_key: str | None = None


def start(p: PaginatorConfig) -> Position:
    """The first page's position."""
    if p.type == "offset":
        return {"offset": p.offset}
    if p.type == "page_number":
        return {"page": p.page if p.page is not None else p.base_page}
    return {}


def request_for(p: PaginatorConfig, position: Mapping[str, Any]) -> PageRequest:
    """The query params and body values that ask for the page at ``position``."""
    request = PageRequest()
    if p.type == "offset":
        _put(request, p.offset_param, p.offset_body_path, position["offset"])
        _put(request, p.limit_param, p.limit_body_path, p.limit)
    elif p.type == "page_number":
        _put(request, p.page_param, p.page_body_path, position["page"])
    elif p.type == "cursor" and "cursor" in position:
        _put(request, p.cursor_param, p.cursor_body_path, position["cursor"])
    elif p.type == "last_item_cursor" and "after" in position:
        _put(request, p.cursor_param, p.cursor_body_path, position["after"])
    return request


def advance(p: PaginatorConfig, position: Mapping[str, Any], page: PageView) -> NextPage | None:
    """The page after the one at ``position``, or ``None`` when that was the last."""
    step = _ADVANCE[p.type]
    return step(p, position, page)


def _single(p: PaginatorConfig, position: Mapping[str, Any], page: PageView) -> NextPage | None:
    return None


def _header_link(p: PaginatorConfig, position: Mapping[str, Any], page: PageView) -> NextPage | None:
    url = page.links.get(p.links_next_key or "next")
    return NextPage({}, url=url, seen_key=url) if url else None


def _json_link(p: PaginatorConfig, position: Mapping[str, Any], page: PageView) -> NextPage | None:
    url = json_paths.lookup(page.body, p.next_url_path or "next")
    if url is json_paths.MISSING or url in (None, ""):
        return None
    if not isinstance(url, str):
        raise PaginationError(f"next_url_path {p.next_url_path!r} is not a URL: {_short(url)}")
    if p.has_more_path is not None and not _has_more(p, page.body):
        return None
    return NextPage({}, url=url, seen_key=url)


def _cursor(p: PaginatorConfig, position: Mapping[str, Any], page: PageView) -> NextPage | None:
    cursor = json_paths.lookup(page.body, p.cursor_path or "")
    if cursor is json_paths.MISSING or cursor in (None, ""):
        return None
    if p.stop_after_empty_page and not page.items:
        return None
    if p.has_more_path is not None and not _has_more(p, page.body):
        return None
    if not isinstance(cursor, str | int) or isinstance(cursor, bool):
        raise PaginationError(f"cursor_path {p.cursor_path!r} is not a string or integer: {_short(cursor)}")
    return NextPage({"cursor": cursor}, seen_key=str(cursor))


def _offset(p: PaginatorConfig, position: Mapping[str, Any], page: PageView) -> NextPage | None:
    if p.stop_after_empty_page and not page.items:
        return None
    offset = int(position["offset"]) + (p.limit or 0)
    total = _total(p, page.body)
    if total is not None and offset >= total:
        return None
    if p.maximum_offset is not None and offset >= p.maximum_offset:
        return None
    if p.has_more_path is not None and not _has_more(p, page.body):
        return None
    return NextPage({"offset": offset})


def _page_number(p: PaginatorConfig, position: Mapping[str, Any], page: PageView) -> NextPage | None:
    if p.stop_after_empty_page and not page.items:
        return None
    number = int(position["page"]) + 1
    total = _total(p, page.body)  # the number of pages
    if total is not None and number >= total + (p.base_page or 0):
        return None
    if p.maximum_page is not None and number >= p.maximum_page:
        return None
    if p.has_more_path is not None and not _has_more(p, page.body):
        return None
    return NextPage({"page": number})


def _last_item(p: PaginatorConfig, position: Mapping[str, Any], page: PageView) -> NextPage | None:
    if not page.items:
        return None
    if p.has_more_path is not None and not _has_more(p, page.body):
        return None
    last = page.items[-1]
    after = json_paths.lookup(last, p.cursor_field or "")
    if after is json_paths.MISSING or after in (None, "") or isinstance(after, bool | dict | list | float):
        shown = "missing" if after is json_paths.MISSING else _short(after)
        raise PaginationError(f"cursor_field {p.cursor_field!r} of the page's last item is {shown}")
    return NextPage({"after": after}, seen_key=str(after))


_ADVANCE = {
    "single_page": _single,
    "header_link": _header_link,
    "json_link": _json_link,
    "cursor": _cursor,
    "offset": _offset,
    "page_number": _page_number,
    "last_item_cursor": _last_item,
}


def _put(request: PageRequest, param: str | None, body_path: str | None, value: Any) -> None:
    if body_path is not None:
        request.body[body_path] = value
    elif param is not None:
        request.params[param] = value


def _total(p: PaginatorConfig, body: Any) -> int | None:
    if p.total_path is None:
        return None
    value = json_paths.lookup(body, p.total_path)
    if value is json_paths.MISSING or value is None:
        raise PaginationError(
            f"total_path {p.total_path!r} is not in the page (set total_path: null if the API sends none)"
        )
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise PaginationError(f"total_path {p.total_path!r} is not an integer: {_short(value)}")
    return value


def _has_more(p: PaginatorConfig, body: Any) -> bool:
    value = json_paths.lookup(body, p.has_more_path or "")
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        shown = "missing" if value is json_paths.MISSING else _short(value)
        raise PaginationError(f"has_more_path {p.has_more_path!r} is not a boolean: {shown}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
