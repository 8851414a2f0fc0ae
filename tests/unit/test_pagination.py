"""The pure paginators: each style walked over a simulated collection, stop conditions, and a
checkpoint round-trip at every page (the position through JSON, then on from there)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_sync_provider.config.endpoint import PaginatorConfig, parse_paginator
from airflow_sync_provider.run import pagination
from airflow_sync_provider.run.pagination import NextPage, PageView, PaginationError
from airflow_sync_provider.run.selection import SelectionError, mismatch, select

ROWS = [{"id": f"r{i}"} for i in range(7)]


def offset_api(request: pagination.PageRequest, **extra: Any) -> PageView:
    start, size = request.params.get("offset", 0), request.params.get("limit", 3)
    items = ROWS[start : start + size]
    return PageView({"items": items, "total": len(ROWS), **extra}, items)


def page_api(request: pagination.PageRequest, base: int = 1) -> PageView:
    number = request.params["page"] - base
    items = ROWS[number * 3 : number * 3 + 3]
    return PageView({"items": items, "total_pages": 3}, items)


def cursor_api(request: pagination.PageRequest) -> PageView:
    start = int(request.body.get("start_cursor") or 0)
    items = ROWS[start : start + 3]
    more = start + 3 < len(ROWS)
    return PageView(
        {"results": items, "next_cursor": str(start + 3) if more else None, "has_more": more}, items
    )


def last_item_api(request: pagination.PageRequest) -> PageView:
    after = request.params.get("starting_after")
    start = 0 if after is None else next(i for i, r in enumerate(ROWS) if r["id"] == after) + 1
    items = ROWS[start : start + 3]
    return PageView({"data": items, "has_more": start + 3 < len(ROWS)}, items)


def walk(p: PaginatorConfig, api: Any, *, through_json: bool = False) -> list[list[str]]:
    """Every page's ids; with ``through_json`` the position is stored and read back between pages."""
    position, pages = pagination.start(p), []
    for _ in range(20):
        page = api(pagination.request_for(p, position))
        pages.append([item["id"] for item in page.items])
        following = pagination.advance(p, position, page)
        if following is None:
            return pages
        position = following.position
        if through_json:
            position = json.loads(json.dumps(position))
    raise AssertionError("the paginator never stopped")


IDS = [["r0", "r1", "r2"], ["r3", "r4", "r5"], ["r6"]]


@pytest.mark.parametrize("through_json", [False, True])
def test_offset_stops_at_total(through_json: bool) -> None:
    p = PaginatorConfig(type="offset", limit=3)
    assert walk(p, offset_api, through_json=through_json) == IDS


def test_offset_without_total_stops_after_an_empty_page() -> None:
    p = PaginatorConfig(type="offset", limit=3, total_path=None)
    assert walk(p, offset_api) == [*IDS, []]


def test_offset_stops_at_maximum_offset_and_on_has_more() -> None:
    assert walk(PaginatorConfig(type="offset", limit=3, maximum_offset=4), offset_api) == IDS[:2]
    p = PaginatorConfig(type="offset", limit=3, total_path=None, has_more_path="more")
    assert walk(p, lambda r: offset_api(r, more=False)) == IDS[:1]


def test_offset_params_take_the_configured_names_or_body_paths() -> None:
    p = PaginatorConfig(type="offset", limit=50, offset_param="startAt", limit_param="maxResults")
    assert pagination.request_for(p, {"offset": 100}).params == {"startAt": 100, "maxResults": 50}
    p = PaginatorConfig(type="offset", limit=50, offset_body_path="page.from", limit_body_path="page.size")
    assert pagination.request_for(p, {"offset": 100}).body == {"page.from": 100, "page.size": 50}


def test_a_missing_or_non_integer_total_names_the_path() -> None:
    p = PaginatorConfig(type="offset", limit=3)
    with pytest.raises(PaginationError, match="total_path 'total' is not in the page"):
        pagination.advance(p, {"offset": 0}, PageView({"items": ROWS[:3]}, ROWS[:3]))
    with pytest.raises(PaginationError, match="total_path 'total' is not an integer: 'many'"):
        pagination.advance(p, {"offset": 0}, PageView({"total": "many"}, ROWS[:3]))


@pytest.mark.parametrize("through_json", [False, True])
def test_page_number_counts_from_base_page_to_total_pages(through_json: bool) -> None:
    p = PaginatorConfig(type="page_number", base_page=1, total_path="total_pages")
    assert pagination.start(p) == {"page": 1}
    assert walk(p, page_api, through_json=through_json) == IDS


def test_page_number_stops_at_maximum_page_and_starts_at_page() -> None:
    p = PaginatorConfig(type="page_number", base_page=1, page=2, total_path=None, maximum_page=3)
    assert walk(p, page_api) == [IDS[1]]


@pytest.mark.parametrize("through_json", [False, True])
def test_cursor_in_a_json_body_until_has_more_is_false(through_json: bool) -> None:
    p = PaginatorConfig(
        type="cursor", cursor_path="next_cursor", cursor_body_path="start_cursor", has_more_path="has_more"
    )
    assert pagination.request_for(p, pagination.start(p)) == pagination.PageRequest()  # no cursor at first
    assert walk(p, cursor_api, through_json=through_json) == IDS


def test_cursor_defaults_to_the_cursor_query_param_and_stops_without_one() -> None:
    p = PaginatorConfig(type="cursor", cursor_path="meta.next")
    assert pagination.request_for(p, {"cursor": "c2"}).params == {"cursor": "c2"}
    assert pagination.advance(p, {}, PageView({"meta": {"next": None}}, ROWS)) is None
    assert pagination.advance(p, {}, PageView({"meta": {"next": "c2"}}, ROWS)) == NextPage(
        {"cursor": "c2"}, seen_key="c2"
    )
    with pytest.raises(PaginationError, match=r"cursor_path .meta\.next. is not a string or integer"):
        pagination.advance(p, {}, PageView({"meta": {"next": {"x": 1}}}, ROWS))


@pytest.mark.parametrize("through_json", [False, True])
def test_last_item_cursor_is_stripes_starting_after(through_json: bool) -> None:
    p = PaginatorConfig(type="last_item_cursor")
    assert (p.cursor_field, p.cursor_param, p.has_more_path) == ("id", "starting_after", "has_more")
    assert walk(p, last_item_api, through_json=through_json) == IDS
    assert pagination.request_for(p, {"after": "r2"}).params == {"starting_after": "r2"}


def test_last_item_cursor_stops_on_an_empty_page_and_names_a_missing_field() -> None:
    p = PaginatorConfig(type="last_item_cursor")
    assert pagination.advance(p, {}, PageView({"data": [], "has_more": True}, [])) is None
    with pytest.raises(PaginationError, match="has_more_path 'has_more' is not a boolean: missing"):
        pagination.advance(p, {}, PageView({"data": ROWS}, ROWS))
    with pytest.raises(PaginationError, match="cursor_field 'id' of the page's last item is missing"):
        pagination.advance(p, {}, PageView({"has_more": True}, [{"name": "x"}]))


def test_link_styles_return_the_next_url_as_given() -> None:
    json_link = PaginatorConfig(type="json_link", next_url_path="links.next", has_more_path="meta.has_more")
    body = {"links": {"next": "https://x/api?page[after]=abc"}, "meta": {"has_more": True}}
    assert pagination.advance(json_link, {}, PageView(body, ROWS)) == NextPage(
        {}, url="https://x/api?page[after]=abc", seen_key="https://x/api?page[after]=abc"
    )
    body["meta"] = {"has_more": False}  # Zendesk: a next link may come with has_more false
    assert pagination.advance(json_link, {}, PageView(body, ROWS)) is None
    header = PaginatorConfig(type="header_link")
    assert pagination.advance(header, {}, PageView([], [], links={"next": "/a?p=2"})).url == "/a?p=2"  # type: ignore[union-attr]
    assert pagination.advance(header, {}, PageView([], [], links={"prev": "/a"})) is None
    assert pagination.advance(PaginatorConfig(type="single_page"), {}, PageView([], ROWS)) is None


def test_parse_paginator_accepts_a_type_name_and_round_trips() -> None:
    assert parse_paginator("header_link") == PaginatorConfig(type="header_link")
    p = parse_paginator({"type": "offset", "limit": 10, "offset_param": "startAt", "total_path": None})
    assert p is not None and parse_paginator(p.to_dict()) == p


def test_select_reads_a_path_and_treats_missing_as_empty() -> None:
    assert select({"data": {"children": [1, 2]}}, "data.children") == [1, 2]
    assert select({"response": {"items": [3]}}, "$.response.items") == [3]
    assert select({"data": None}, "data") == [] and select({}, "data") == []
    with pytest.raises(SelectionError, match="data_selector 'data' selects an object with keys"):
        select({"data": {"id": 1}}, "data")


def test_a_selector_that_misses_is_named_on_the_first_page() -> None:
    assert mismatch({"data": []}, "data") is None
    warning = mismatch({"object": "list"}, "data")
    assert warning is not None and "data_selector 'data' is not in the first page" in warning
    with pytest.raises(SelectionError, match="which has items at 'results'"):
        mismatch({"results": [{"id": 1}]}, "data")
