"""Resources of one source through the real operator against the demo API: each keeps its own
bookmark (sent back on its next sync) in the source's one state, and all share the source's window."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.state.store import InMemoryStateStore
from tests.hook import FakeClock, Sleeps, connect, make_hook, stored, sync_once

CONFIG = SyncConfig.from_dict(
    {
        "source": "demo_api",
        "rate_limit": {"max_requests": 6, "window": "1h"},
        "max_wait": "0s",
        "incremental": {"cursor_field": "updated_at", "param": "updated_since"},
        "resources": [{"name": "airdrops", "path": "/airdrops"}, {"name": "quests", "path": "/quests"}],
    }
)


def since(demo: DemoServer, endpoint: str) -> list[str | None]:
    values = [parse_qs(urlsplit(e["path"]).query).get("updated_since") for e in demo.requests(endpoint)]
    return [v[-1] if v else None for v in values]


def test_each_resource_keeps_and_sends_its_own_bookmark_within_one_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = InMemoryStateStore()
    clock = FakeClock()
    hook = make_hook(clock, store)
    with DemoServer(port=0) as demo:
        connect(monkeypatch, demo.url)
        for name in ("airdrops", "quests"):
            out = sync_once(hook, CONFIG, clock=clock, sleep=Sleeps(clock), resource=name)
            assert out.error is None, out.result
        state = stored(store, "demo_api")
        marks = {name: state.resources[name]["bookmark"] for name in ("airdrops", "quests")}
        assert state.bookmark is None and marks["airdrops"] != marks["quests"]
        assert len(state.window) == 3 + 2  # one window for both resources' pages

        demo.clear_requests()
        for name in ("airdrops", "quests"):
            sync_once(hook, CONFIG, clock=clock, sleep=Sleeps(clock), resource=name)
        assert since(demo, "airdrops") == [marks["airdrops"]]
        # the shared window holds 6 after airdrops' one page: quests is refused without sending
        assert demo.requests("quests") == []
        last = stored(store, "demo_api").resources["quests"]["last_result"]
        assert (last["error"], last["resource"]) == ("RATE_LIMIT_EXCEEDED", "quests")
