"""The demo API's offset/total (``/offset/<source>``) and last-item-cursor (``/after/<source>``) endpoints:
their pages, their errors, and a sync through each with the matching paginator, deferred mid-way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.demo.catalog import make_item, total_for
from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.demo.styles import route
from airflow_sync_provider.exceptions import SyncWaitRequired
from airflow_sync_provider.run.sync_run import Checkpoint
from tests.hook import FakeClock, Sleeps, connect, make_hook, settled_requests, sync_once
from tests.load.recipes import recipe_configs

DOC = recipe_configs("The demo API")


@pytest.fixture
def demo() -> Iterator[DemoServer]:
    with DemoServer() as server:
        yield server


def get(demo: DemoServer, path: str) -> requests.Response:
    return requests.get(f"{demo.url}{path}", timeout=10)


def catalog(source: str) -> list[dict[str, Any]]:
    return [make_item(source, i) for i in range(total_for(source))]


def test_routes() -> None:
    assert route("/airdrops") == (None, "airdrops")
    assert route("/offset/airdrops") == ("offset", "airdrops")
    assert route("/after/quests") == ("after", "quests")
    assert route("/sideways/airdrops") == (None, None)
    assert route("/offset/Bad") == (None, None)


def test_offset_pages_carry_the_total_and_end_empty(demo: DemoServer) -> None:
    items = catalog("airdrops")
    first = get(demo, "/offset/airdrops?offset=0&limit=50").json()
    last = get(demo, "/offset/airdrops?offset=100&limit=50").json()
    past = get(demo, "/offset/airdrops?offset=120&limit=50").json()

    assert first == {"data": items[:50], "offset": 0, "limit": 50, "total": 120}
    assert last["data"] == items[100:] and last["total"] == 120
    assert past["data"] == []


def test_after_pages_start_after_the_given_id_and_say_has_more(demo: DemoServer) -> None:
    items = catalog("quests")
    first = get(demo, "/after/quests?limit=30").json()
    second = get(demo, f"/after/quests?limit=30&starting_after={items[29]['id']}").json()
    last = get(demo, f"/after/quests?limit=30&starting_after={items[59]['id']}").json()

    assert first == {"data": items[:30], "has_more": True}
    assert second == {"data": items[30:60], "has_more": True}
    assert last == {"data": items[60:], "has_more": False}


def test_the_styles_filter_by_updated_since(demo: DemoServer) -> None:
    since = make_item("airdrops", 100)["updated_at"]
    page = get(demo, f"/offset/airdrops?updated_since={since}").json()
    after = get(demo, f"/after/airdrops?updated_since={since}").json()
    assert page["total"] == 20 and page["data"] == catalog("airdrops")[100:]
    assert after["data"] == page["data"] and after["has_more"] is False


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("/after/quests?starting_after=quests-9999", "starting_after", "quests-9999"),
        ("/offset/quests?offset=-1", "offset", "-1"),
        ("/offset/quests?limit=0", "limit", "0"),
    ],
)
def test_bad_values_are_a_400_naming_them(demo: DemoServer, path: str, field: str, value: str) -> None:
    response = get(demo, path)
    assert response.status_code == 400
    assert (response.json()["field"], response.json()["value"]) == (field, value)


def test_the_styles_share_their_sources_quota_and_log(demo: DemoServer) -> None:
    demo.set_quota("yield", limit=2, window=60)
    statuses = [get(demo, p).status_code for p in ("/yield", "/offset/yield", "/after/yield")]
    assert statuses == [200, 200, 429]
    assert [e["path"] for e in settled_requests(demo, "yield")] == ["/yield", "/offset/yield", "/after/yield"]


def test_the_existing_endpoint_is_unchanged(demo: DemoServer) -> None:
    body = get(demo, "/airdrops?limit=50").json()
    assert set(body) == {"items", "next_cursor", "total"} and body["next_cursor"] == "50"


def sync_with_a_deferral(
    monkeypatch: pytest.MonkeyPatch, demo: DemoServer, config: SyncConfig
) -> tuple[list[Any], list[str]]:
    """Sync ``config``; page 2 answers 429 with ``Retry-After: 30`` once, so the task defers there."""
    connect(monkeypatch, demo.url)
    served = config.endpoint.rsplit("/", 1)[-1]  # the demo source behind /offset/<source>
    clock = FakeClock()
    hook, sleeps, collected = make_hook(clock), Sleeps(clock), {}

    def collect(ctx: Any) -> int:
        for page in ctx.pages():
            collected[page.number] = page.items
            if page.number == 1 and not page.redelivered and not demo.faults():
                demo.set_fault("rate_limit", served, count=1)  # the next request: 429
        return ctx.checkpoint.items

    checkpoint = Checkpoint(started_at=clock())
    with pytest.raises(SyncWaitRequired):
        sync_once(hook, config, clock=clock, sleep=sleeps, handler=collect, checkpoint=checkpoint)
    checkpoint = Checkpoint.from_dict(json.loads(json.dumps(checkpoint.to_dict())))
    clock.advance(30)
    out = sync_once(hook, config, clock=clock, sleep=sleeps, handler=collect, checkpoint=checkpoint)
    assert out.error is None
    items = [item for n in sorted(collected) for item in collected[n]]
    return items, [e["path"] for e in settled_requests(demo, served)]


def test_an_offset_paginator_syncs_the_offset_endpoint_and_resumes_at_the_offset(
    monkeypatch: pytest.MonkeyPatch, demo: DemoServer
) -> None:
    config = DOC["demo_offset_airdrops"]  # as docs/recipes.md writes it
    items, paths = sync_with_a_deferral(monkeypatch, demo, config)
    assert items == catalog("airdrops")
    assert paths == [
        "/offset/airdrops?offset=0&limit=50",
        "/offset/airdrops?offset=50&limit=50",
        "/offset/airdrops?offset=50&limit=50",
        "/offset/airdrops?offset=100&limit=50",
    ]


def test_a_last_item_cursor_paginator_syncs_the_after_endpoint_and_resumes_at_the_item(
    monkeypatch: pytest.MonkeyPatch, demo: DemoServer
) -> None:
    config = DOC["demo_after_quests"]
    items, paths = sync_with_a_deferral(monkeypatch, demo, config)
    assert items == catalog("quests")
    assert paths == [
        "/after/quests?limit=30",
        "/after/quests?limit=30&starting_after=quests-0030",
        "/after/quests?limit=30&starting_after=quests-0030",
        "/after/quests?limit=30&starting_after=quests-0060",
    ]
