"""``make demo``'s source with three resources (``shared_quota`` in dags/sources.yaml, issue 18) against
the demo API: its three tasks, run back to back as the DAG runs them, land every item of the three
endpoints, each in its own table, and every request of the three took a slot of the source's one
window."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_sync_provider.demo.catalog import make_item, total_for
from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.sources_file import load_sources
from airflow_sync_provider.state.store import InMemoryStateStore
from tests.harness.airflow_cli import dags_test, install_dag
from tests.harness.fixtures import connection_env
from tests.hook import FakeClock, Sleeps, connect, make_hook, settled_requests, stored, sync_once

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("dlt")

REPO = Path(__file__).resolve().parents[2]
SHIPPED = load_sources(REPO / "dags" / "sources.yaml")["shared_quota"]


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


@pytest.mark.airflow
def test_the_shipped_dag_runs_its_three_tasks_in_real_airflow(airflow_db: None, variables: Any) -> None:
    """``airflow dags test sync_shared_quota`` with the shipped DAG file and sources.yaml: the three
    tasks succeed, one after the other in the one pool, and the state Variable holds each result."""
    install_dag(REPO / "dags" / "sync_sources.py")
    install_dag(REPO / "dags" / "sources.yaml")
    with DemoServer(port=0) as demo:
        run = dags_test("sync_shared_quota", **connection_env(demo.url))
        requests_seen = len(settled_requests(demo))

    assert run.state == "success", run.output[-4000:]
    assert {t: run.task_state(t) for t in SHIPPED.resource_names} == dict.fromkeys(
        SHIPPED.resource_names, "success"
    )
    assert requests_seen == 3 + 3 + 1
    state = json.loads(variables.get("sync_state_shared_quota"))
    assert {n: e["last_result"]["items_processed"] for n, e in state["resources"].items()} == {
        name: total_for(name) for name in SHIPPED.resource_names
    }
