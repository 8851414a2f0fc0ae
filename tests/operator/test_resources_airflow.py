"""Several resources of one source share its window, in real Airflow (``airflow dags test``).

The same three endpoints of the demo API (7 pages in all) as three resources of one source and as
three sources (three tasks of one DAG), each with a limit of 3 requests per 10 s: counted from the
server's own request log, the resources never send more than 3 requests in any 10 s, the three sources
send all 7 within seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_sync_provider.demo.server import DemoServer
from tests.harness.airflow_cli import dags_test, install_dag
from tests.harness.fixtures import connection_env

pytestmark = pytest.mark.airflow

DAGS = Path(__file__).with_name("dags")
WINDOW, LIMIT = 10.0, 3


@pytest.fixture(scope="module", autouse=True)
def resource_dags(private_airflow_home: Path) -> None:
    install_dag(DAGS / "resources.py", "operator_resources.py")


@pytest.fixture
def demo() -> Iterator[DemoServer]:
    with DemoServer(port=0) as server:
        yield server


def busiest_window(demo: DemoServer) -> int:
    """The most requests the server received in any ``WINDOW`` seconds (from its request log)."""
    starts = sorted(e["start"] for e in demo.requests())
    return max((sum(1 for t in starts if s <= t < s + WINDOW) for s in starts), default=0)


def test_three_resources_of_one_source_stay_within_its_limit_where_three_sources_exceed_it(
    demo: DemoServer, stored_variables: Any
) -> None:
    shared = dags_test("sync_shared_api", **connection_env(demo.url))
    assert shared.state == "success", shared.output[-4000:]
    for task in ("airdrops", "quests", "yield_"):
        assert shared.task_state(task) == "success", shared.output[-4000:]
    one_source = busiest_window(demo)
    sent = len(demo.requests())
    assert sent == 3 + 2 + 2  # every page of the three endpoints (50 items a page)
    assert one_source <= LIMIT
    state = json.loads(stored_variables.get("sync_state_shared_api"))
    results = {name: entry["last_result"] for name, entry in state["resources"].items()}
    assert {n: (r["items_processed"], r["resource"]) for n, r in results.items()} == {
        "airdrops": (120, "airdrops"),
        "quests": (80, "quests"),
        "yield_": (60, "yield_"),
    }

    demo.clear_requests()
    run = dags_test("three_sources_one_api", **connection_env(demo.url))
    assert run.state == "success", run.output[-4000:]
    assert len(demo.requests()) == sent
    three_sources = busiest_window(demo)
    print(
        f"busiest {WINDOW:g}s at the API: one source with 3 resources {one_source}, 3 sources {three_sources}"
    )
    assert three_sources > LIMIT
