"""``make demo``'s source with three resources (``shared_quota`` in dags/sources.yaml, issue 18) against
the demo API: its three tasks, run back to back as the DAG runs them, land every item of the three
endpoints, each in its own table, and every request of the three took a slot of the source's one
window."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_sync_provider.demo.catalog import make_item, total_for
from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.sources_file import load_sources
from airflow_sync_provider.state import InMemoryStateStore
from tests.hook import FakeClock, Sleeps, connect, make_hook, settled_requests, stored, sync_once

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("dlt")

SHIPPED = load_sources(Path(__file__).resolve().parents[2] / "dags" / "sources.yaml")["shared_quota"]


@pytest.fixture
def demo() -> Iterator[DemoServer]:
    with DemoServer() as server:
        yield server


def test_the_three_tasks_land_their_endpoints_under_one_window(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, demo: DemoServer
) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    connect(monkeypatch, demo.url)
    clock, store = FakeClock(), InMemoryStateStore()
    hook = make_hook(clock, store)
    outcomes = {
        name: sync_once(hook, SHIPPED, clock=clock, sleep=Sleeps(clock), resource=name)
        for name in SHIPPED.resource_names
    }

    assert {n: (o.error, o.result.items_processed) for n, o in outcomes.items()} == {
        "airdrops": (None, total_for("airdrops")),
        "quests": (None, total_for("quests")),
        "points": (None, total_for("points")),
    }
    paths = [e["path"] for e in settled_requests(demo)]
    assert paths == [
        "/offset/airdrops?offset=0&limit=50",
        "/offset/airdrops?offset=50&limit=50",
        "/offset/airdrops?offset=100&limit=50",
        "/after/quests?limit=30",
        "/after/quests?limit=30&starting_after=quests-0030",
        "/after/quests?limit=30&starting_after=quests-0060",
        "/points",
    ]
    state = stored(store, "shared_quota")
    assert len(state.window) == len(paths)  # one window for the three
    assert sorted(state.resources) == ["airdrops", "points", "quests"]
    with duckdb.connect(str(tmp_path / "sync_data" / "shared_quota.duckdb"), read_only=True) as con:
        for name in SHIPPED.resource_names:
            rows = con.sql(f"select id from sync.{name} order by id").fetchall()
            assert [r[0] for r in rows] == sorted(make_item(name, i)["id"] for i in range(total_for(name)))
