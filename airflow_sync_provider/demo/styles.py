"""Two more pagination styles of the demo API, over the same catalog as ``GET /<source>``.

- ``GET /offset/<source>?offset=N&limit=M``: ``{"data": [...], "offset", "limit", "total"}``, the
  style of Jira and many SQL-backed APIs (``paginator: {type: offset, limit: M}``,
  ``data_selector: data``). An offset past the end is an empty page.
- ``GET /after/<source>?starting_after=<id>&limit=M``: ``{"data": [...], "has_more"}``, Stripe's
  style: the next page starts after the last item's id (``paginator: last_item_cursor``). An id the
  source does not have is a 400 naming it.

Both take ``updated_since`` like ``/<source>`` and share its source's faults, quota and request log
(one API, one quota). Pure functions of the query: the server only routes and writes the bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from airflow_sync_provider.demo.catalog import (
    PageError,
    is_source_name,
    make_item,
    parse_limit,
    parse_since,
    total_for,
)

STYLES = ("offset", "after")


def route(path: str) -> tuple[str | None, str | None]:
    """``(style, source)`` of a data path: ``(None, "airdrops")`` for ``/airdrops``,
    ``("offset", "airdrops")`` for ``/offset/airdrops``, ``(None, None)`` for anything else."""
    name = path[1:]
    if is_source_name(name):
        return None, name
    style, _, source = name.partition("/")
    if style in STYLES and is_source_name(source):
        return style, source
    return None, None


def render(
    style: str,
    source: str,
    query: Mapping[str, str | None],
    changes: Mapping[int, str] | None = None,
) -> bytes:
    """The JSON body of one page of ``source`` in ``style``; ``PageError`` for a bad query value."""
    items = _items(source, query.get("updated_since"), changes)
    limit = parse_limit(query.get("limit"))
    if style == "offset":
        offset = _offset(query.get("offset"))
        body: dict[str, Any] = {
            "data": items[offset : offset + limit],
            "offset": offset,
            "limit": limit,
            "total": len(items),
        }
    else:
        start = _after(items, query.get("starting_after"))
        body = {"data": items[start : start + limit], "has_more": start + limit < len(items)}
    return json.dumps(body).encode()


def _items(source: str, since: str | None, changes: Mapping[int, str] | None) -> list[dict[str, Any]]:
    after = parse_since(since)
    items = [make_item(source, i, changes) for i in range(total_for(source))]
    if after is None:
        return items
    return [item for item in items if datetime.fromisoformat(item["updated_at"]) >= after]


def _offset(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    if not raw.isdigit():
        raise PageError("offset", raw, "must be an integer >= 0")
    return int(raw)


def _after(items: list[dict[str, Any]], raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    ids = [item["id"] for item in items]
    if raw not in ids:
        raise PageError("starting_after", raw, "no such item")
    return ids.index(raw) + 1
