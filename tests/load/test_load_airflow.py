"""Syncs that land their items, in real Airflow (``airflow dags test``) against the demo API.

The DAGs are ``dags/load_scenarios.py`` (shipped-style, from YAML). What a run did is read from the
demo API's request log, the state Variable ``sync_state_<source>`` and the DuckDB file itself.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_sync_provider.demo.catalog import get_page, make_item, total_for
from airflow_sync_provider.demo.server import DemoServer
from tests.harness.airflow_cli import DagTestRun, dags_test, install_dag
from tests.harness.fixtures import connection_env

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("dlt")
pytestmark = pytest.mark.airflow

DAGS = Path(__file__).with_name("dags")


@pytest.fixture(scope="module", autouse=True)
def load_dags(airflow_db: None) -> None:
    install_dag(DAGS / "load_scenarios.py", "load_scenarios.py")


@pytest.fixture
def demo() -> Iterator[DemoServer]:
    with DemoServer(port=0) as server:
        yield server


def database(source: str) -> Path:
    return Path(os.environ["AIRFLOW_HOME"]) / "load_tests" / f"{source}.duckdb"


@pytest.fixture
def fresh(stored_variables: Any) -> Iterator[Any]:
    for source in ("landed_airdrops", "crashing_quests", "truncated_airdrops", "replaced_quests"):
        database(source).unlink(missing_ok=True)
    yield stored_variables


def run(dag_id: str, demo: DemoServer, conf: dict[str, Any] | None = None, **env: str) -> DagTestRun:
    return dags_test(dag_id, conf=conf, **connection_env(demo.url), **env)


def rows(source: str) -> dict[str, str]:
    """id -> updated_at (ISO, UTC) of every row of ``sync.<source>``; duplicates fail the test."""
    with duckdb.connect(str(database(source)), read_only=True) as con:
        found = con.sql(f"select id, updated_at from sync.{source} order by id").fetchall()
    ids = [r[0] for r in found]
    assert len(ids) == len(set(ids)), "an item was landed twice"
    return {r[0]: r[1].strftime("%Y-%m-%dT%H:%M:%SZ") for r in found}


def bookmark(store: Any, source: str) -> Any:
    raw = store.get(f"sync_state_{source}", default_var=None)
    return None if raw is None else json.loads(raw).get("bookmark")


def since_params(demo: DemoServer, endpoint: str) -> list[str | None]:
    """The ``updated_since`` of every request to ``endpoint`` (None when absent)."""
    out = []
    for entry in demo.requests(endpoint):
        values = parse_qs(urlsplit(entry["path"]).query).get("updated_since")
        out.append(values[-1] if values else None)
    return out


def catalog(source: str, changes: dict[int, str] | None = None) -> dict[str, str]:
    items = (make_item(source, i, changes) for i in range(total_for(source)))
    return {item["id"]: item["updated_at"] for item in items}


HAS_OPENLINEAGE = importlib.util.find_spec("airflow.providers.openlineage") is not None


def lineage_env(path: Path) -> dict[str, str]:
    """The OpenLineage provider's file transport (one JSON event per line) into ``path``."""
    transport = {"type": "file", "log_file_path": str(path), "append": True}
    return {"AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport), "AIRFLOW__OPENLINEAGE__NAMESPACE": "t"}


def completed_lineage(path: Path, job: str) -> dict[str, Any]:
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    done = [e for e in events if e.get("eventType") == "COMPLETE" and e["job"]["name"] == job]
    assert done, [(e.get("eventType"), e["job"]["name"]) for e in events]
    return done[-1]


def test_incremental_sync_lands_each_item_once_and_fetches_only_what_changed(
    demo: DemoServer, fresh: Any, tmp_path: Path
) -> None:
    """Run 1 lands all 120 items and stores the highest updated_at; run 2 sends it and merges the changes;
    a full refresh fetches everything again without duplicating a row. Run 1 also reports its lineage
    (API endpoint in, table out) through the OpenLineage provider when it is installed."""
    events = tmp_path / "lineage.jsonl"
    first = run("sync_landed_airdrops", demo, **(lineage_env(events) if HAS_OPENLINEAGE else {}))
    assert first.state == "success", first.output[-4000:]
    if HAS_OPENLINEAGE:
        event = completed_lineage(events, "sync_landed_airdrops.sync")
        host = demo.url.split("://", 1)[1]
        assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [(f"http://{host}", "/airdrops")]
        db = database("landed_airdrops")
        outputs = [(d["namespace"], d["name"]) for d in event["outputs"]]
        assert outputs == [(f"duckdb://{db}", "landed_airdrops.sync.landed_airdrops")]
    assert since_params(demo, "airdrops") == [None, None, None]  # 3 pages, no bookmark yet
    expected = catalog("airdrops")
    assert rows("landed_airdrops") == expected
    mark = bookmark(fresh, "landed_airdrops")
    assert mark == max(expected.values())
    assert re.search(r"✓ landed_airdrops: 120 items -> duckdb sync\.landed_airdrops in \d+ ms", first.output)

    demo.clear_requests()
    stamp = demo.touch("airdrops", [3, 7])
    second = run("sync_landed_airdrops", demo)
    assert second.state == "success", second.output[-4000:]
    assert since_params(demo, "airdrops") == [mark]  # one page: only what changed since the bookmark
    changed = get_page("airdrops", None, None, mark, demo.changes("airdrops")).items
    assert {i["id"] for i in changed} >= {"airdrops-0004", "airdrops-0008"}
    assert len(changed) < 5
    n = len(changed)
    assert re.search(rf"✓ landed_airdrops: {n} items -> duckdb sync\.landed_airdrops", second.output)
    assert rows("landed_airdrops") == catalog("airdrops", demo.changes("airdrops"))
    assert bookmark(fresh, "landed_airdrops") == stamp

    demo.clear_requests()
    third = run("sync_landed_airdrops", demo, conf={"full_refresh": True})
    assert third.state == "success", third.output[-4000:]
    assert since_params(demo, "airdrops") == [None, None, None]
    assert rows("landed_airdrops") == catalog("airdrops", demo.changes("airdrops"))
    assert bookmark(fresh, "landed_airdrops") == stamp


def test_a_load_killed_before_it_commits_keeps_the_bookmark_and_the_next_run_lands_each_item_once(
    demo: DemoServer, fresh: Any
) -> None:
    """The task process dies inside the load (rows written, load not committed): the bookmark stays;
    the next run sends the same bookmark again and merge leaves every item exactly once."""
    all_items = catalog("quests")
    start = sorted(all_items.values())[40]  # a stored bookmark: items 40.. are newer
    fresh.set(
        "sync_state_crashing_quests",
        json.dumps({"schema_version": 1, "source": "crashing_quests", "bookmark": start}),
    )
    crashed = run("sync_crashing_quests", demo, SYNC_TEST_CRASH_AT_COMMIT="1")
    assert "CRASHING before the load commits" in crashed.output, crashed.output[-4000:]
    assert crashed.state != "success"
    assert bookmark(fresh, "crashing_quests") == start
    newer = {k: v for k, v in all_items.items() if v >= start}
    assert since_params(demo, "quests") == [start]
    partial = rows("crashing_quests") if database("crashing_quests").exists() else {}
    assert set(partial) <= set(newer)

    demo.clear_requests()
    again = run("sync_crashing_quests", demo)
    assert again.state == "success", again.output[-4000:]
    assert since_params(demo, "quests") == [start]
    assert rows("crashing_quests") == newer
    assert bookmark(fresh, "crashing_quests") == max(newer.values())


def test_a_truncated_sync_keeps_the_bookmark_so_the_pages_it_did_not_read_land_next_time(
    demo: DemoServer, fresh: Any
) -> None:
    """Page 1 holds the newest item (a touched item keeps its place in id order); ``max_pages=1``: the
    sync succeeds truncated and keeps the bookmark (order unknown), so the next sync lands pages 2-3."""
    stamp = demo.touch("airdrops", [3])
    first = run("sync_truncated_airdrops", demo, conf={"max_pages": 1})
    assert first.state == "success", first.output[-4000:]
    assert len(rows("truncated_airdrops")) == 50
    assert bookmark(fresh, "truncated_airdrops") is None
    assert "stopped at max_pages, so the bookmark stays at None" in first.output

    second = run("sync_truncated_airdrops", demo)
    assert second.state == "success", second.output[-4000:]
    assert rows("truncated_airdrops") == catalog("airdrops", demo.changes("airdrops"))
    assert bookmark(fresh, "truncated_airdrops") == stamp


def test_replace_with_a_deferral_never_shows_a_partial_table_even_when_the_resumed_sync_aborts(
    demo: DemoServer, fresh: Any
) -> None:
    """Yesterday's sync replaced the table with all 80 items. Today page 1 is staged, the sync defers
    for the window, the resumed sync aborts (page 2 is gone): the table holds yesterday's 80 rows during
    the wait (as the resumed sync finds it) and after."""
    first = run("sync_replaced_quests", demo)
    assert first.state == "success", first.output[-4000:]
    full = catalog("quests")
    assert rows("replaced_quests") == full
    assert "deferring" in first.output

    demo.clear_requests()
    stop = threading.Event()

    def break_page_two() -> None:
        """Once page 1 is served (the sync then stages it and defers), page 2 is gone."""
        while not stop.wait(0.05):
            if demo.requests("quests"):
                demo.set_fault("not_found", source="quests", count=5)
                return

    watcher = threading.Thread(target=break_page_two, daemon=True)
    watcher.start()
    try:
        second = run("sync_replaced_quests", demo, SYNC_TEST_REPORT_TABLE="1")
    finally:
        stop.set()
        watcher.join()
    assert second.state != "success", second.output[-4000:]
    assert "TABLE DURING THE WAIT: 80 rows" in second.output, second.output[-4000:]  # during the wait
    assert rows("replaced_quests") == full  # and after
    assert "Staged 50 items" in second.output and "Replaced" not in second.output
    assert "Replaced duckdb sync.replaced_quests with the 80 items" in first.output
