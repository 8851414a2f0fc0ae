"""The shipped DAGs in a real Airflow (scheduler, dag-processor, api-server, triggerer) on SQLite.

One cluster for the module: scheduled runs happen, overlapping manual triggers of one source run
one after another, an outage opens the breaker (visible in the Variable) and the next run fast-fails
without a request, and ``sync_admin`` closes the breaker again.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator

import pytest

from airflow_sync_provider.demo.server import DemoServer
from tests.harness.cluster import AirflowCluster, shipped_dags_cluster

pytestmark = pytest.mark.airflow


SOURCES = {
    "include_defaults": True,
    "sources": {
        # fast, small limits so the scenarios finish in seconds
        # manual-only here, so a cron tick on unpause cannot add runs to the counts below
        "airdrops": {
            "schedule": None,
            "max_retries": 1,
            "backoff": {"initial_delay": "100ms", "max_delay": "200ms"},
            "circuit_breaker": {"failure_threshold": 2, "reset_timeout": "1h"},
            "timeout": "5s",
        },
        "quests": {"schedule": None, "max_retries": 0},
        "yield": {  # four 2 s timeouts: a sync that fails slowly (~8 s) and counts 4 failures
            "schedule": None,
            "max_retries": 3,
            "timeout": "2s",
            "backoff": {"initial_delay": "100ms", "max_delay": "200ms"},
        },
        "ticker": {"schedule": "20s", "endpoint": "/ticker"},
    },
}


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    with DemoServer(port=0) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, demo: DemoServer) -> Iterator[AirflowCluster]:
    # The dag-processor replaces a DAG's NONEXISTENT_POOL warnings with its own on every parse of the
    # file (it computes none: no component passes it the known pools), so the warning pool_guard writes
    # lives until the next parse; 5 s in the harness made reading it a race. These DAG files never
    # change here, so parse them once (the run note is the durable channel, and is asserted too).
    env = {"AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600"}
    with shipped_dags_cluster(tmp_path_factory.mktemp("e2e-airflow"), demo.url, SOURCES, extra_env=env) as c:
        yield c


def breaker_warning(cluster: AirflowCluster, dag_id: str, *, present: bool, timeout: float = 60) -> str:
    """The DAG's breaker warning (REST API) once it is ``present`` (or gone: ""); the scheduler's
    listener writes it within its period (10 s) of a run ending."""
    deadline = time.monotonic() + timeout
    while True:
        body = cluster.api("GET", "/api/v2/dagWarnings", params={"dag_id": dag_id}).json()
        found = [w["message"] for w in body["dag_warnings"] if w["message"].startswith("Circuit breaker")]
        if bool(found) == present:
            return found[0] if found else ""
        assert time.monotonic() < deadline, (
            f"breaker warning of {dag_id} never {'came' if present else 'went'}"
        )
        time.sleep(1)


def test_scheduled_runs_happen(cluster: AirflowCluster, demo: DemoServer) -> None:
    cluster.wait_for_dag("sync_ticker")
    deadline = time.monotonic() + 150
    runs: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        response = cluster.api("GET", "/api/v2/dags/sync_ticker/dagRuns", params={"state": "success"})
        runs = [r for r in response.json()["dag_runs"] if r["run_type"] == "scheduled"]
        if runs:
            break
        time.sleep(2)
    assert runs, f"no scheduled run of sync_ticker succeeded:\n{cluster.log_tail('scheduler')}"
    assert demo.requests("ticker"), "the scheduled run sent no request"


def test_overlapping_manual_triggers_run_one_after_another(cluster: AirflowCluster, demo: DemoServer) -> None:
    cluster.wait_for_dag("sync_quests")
    demo.clear_requests()
    demo.set_fault("slow", source="quests", delay=1.0)
    try:
        run_ids = [cluster.trigger("sync_quests") for _ in range(3)]
        finished = [cluster.wait_for_run("sync_quests", run_id) for run_id in run_ids]
    finally:
        demo.clear_faults("quests")
    assert [r["state"] for r in finished] == ["success"] * 3
    requests = sorted(demo.requests("quests"), key=lambda r: r["start"])
    assert len(requests) == 3 * 2  # 80 items, 50 per page: two pages per run
    assert demo.max_concurrency("quests") == 1
    for earlier, later in itertools.pairwise(requests):
        assert later["start"] >= earlier["end"], "requests of one source overlapped"
    windows = [(r["start_date"], r["end_date"]) for r in finished]
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert start >= end, f"runs overlapped: {windows}"


def test_outage_opens_breaker_next_run_fast_fails_admin_reset_closes(
    cluster: AirflowCluster, demo: DemoServer
) -> None:
    cluster.wait_for_dag("sync_airdrops")
    cluster.wait_for_dag("sync_admin")
    demo.set_fault("outage", source="airdrops")
    try:
        first = cluster.trigger("sync_airdrops")
        first_run = cluster.wait_for_run("sync_airdrops", first)
        assert first_run["state"] == "failed"
        state = json.loads(cluster.variable("sync_state_airdrops") or "{}")
        assert state["breaker"]["state"] == "open"
        assert state["breaker"]["failure_count"] == 2
        assert len(demo.requests("airdrops")) == 2  # first try + 1 retry, then the breaker opened
        warning = breaker_warning(cluster, "sync_airdrops", present=True)
        assert warning.startswith("Circuit breaker of airdrops is open since "), warning
        assert "the next probe may go at " in warning and "Sync breakers" in warning

        demo.clear_requests()
        second = cluster.trigger("sync_airdrops")
        second_run = cluster.wait_for_run("sync_airdrops", second)
        assert second_run["state"] == "success"  # skipped task
        ti = cluster.task_instances("sync_airdrops", second)["sync"]
        assert ti["state"] == "skipped"
        assert demo.requests("airdrops") == [], "an open breaker must not send"
        assert "CIRCUIT_BREAKER_OPEN" in cluster.task_log("sync_airdrops", second, "sync")
    finally:
        demo.clear_faults("airdrops")

    reset = cluster.trigger("sync_admin", {"source": "airdrops", "action": "reset_breaker"})
    assert cluster.wait_for_run("sync_admin", reset)["state"] == "success"
    tis = cluster.task_instances("sync_admin", reset)
    assert tis["reset_breaker_airdrops"]["state"] == "success"
    assert tis["reset_breaker_airdrops"]["pool"] == "sync_airdrops"
    state = json.loads(cluster.variable("sync_state_airdrops") or "{}")
    assert (state["breaker"]["state"], state["breaker"]["failure_count"]) == ("closed", 0)

    assert breaker_warning(cluster, "sync_airdrops", present=False) == ""

    third = cluster.trigger("sync_airdrops")
    assert cluster.wait_for_run("sync_airdrops", third)["state"] == "success"
    assert cluster.task_instances("sync_airdrops", third)["sync"]["state"] == "success"

    # Runs that did not sync say so in a note (the listener writes it as the run ends); a good one has none.
    assert (first_run.get("note") or "").startswith("Sync of airdrops failed: ")
    assert (second_run.get("note") or "").startswith(
        "Nothing synced from airdrops: its circuit breaker is open, no request was sent."
    )
    third_run = cluster.dag_run("sync_airdrops", third)
    assert third_run["note"] is None


def test_dashboard_reset_waits_for_a_running_sync_and_is_not_lost(
    cluster: AirflowCluster, demo: DemoServer
) -> None:
    """A reset posted while a failing sync runs is queued behind it in the pool and wins."""
    cluster.wait_for_dag("sync_yield")
    cluster.wait_for_dag("sync_admin")
    demo.set_fault("slow", source="yield", delay=5.0)  # > the 2 s timeout: every try times out
    try:
        sync_run = cluster.trigger("sync_yield")
        deadline = time.monotonic() + 120
        while cluster.task_instances("sync_yield", sync_run).get("sync", {}).get("state") != "running":
            assert time.monotonic() < deadline, "the sync never started"
            time.sleep(0.5)
        response = cluster.api("POST", "/sync-provider/api/states/yield/reset")
        assert response.status_code == 202, response.text
        reset_run = response.json()["dag_run_id"]
        assert cluster.wait_for_run("sync_yield", sync_run)["state"] == "failed"
        assert cluster.wait_for_run("sync_admin", reset_run)["state"] == "success"
    finally:
        demo.clear_faults("yield")
    sync_ti = cluster.task_instances("sync_yield", sync_run)["sync"]
    reset_ti = cluster.task_instances("sync_admin", reset_run)["reset_breaker_yield"]
    assert reset_ti["start_date"] >= sync_ti["end_date"], "the reset ran while the sync held the pool"
    state = json.loads(cluster.variable("sync_state_yield") or "{}")
    assert (state["breaker"]["state"], state["breaker"]["failure_count"]) == ("closed", 0)
    assert state["last_result"]["error"] == "TIMEOUT"  # the sync's own write came first


def test_missing_pool_fails_at_once_with_the_fix_in_a_note(cluster: AirflowCluster) -> None:
    """A user who skipped setup gets a failed run saying what to do, not a task stuck in `scheduled`."""
    cluster.wait_for_dag("sync_points")
    cluster.api("DELETE", "/api/v2/pools/sync_points").raise_for_status()
    try:
        run_id = cluster.trigger("sync_points")
        run = cluster.wait_for_run("sync_points", run_id, timeout=120)
        assert run["state"] == "failed"
        assert "python -m airflow_sync_provider setup" in (run.get("note") or "")
        assert cluster.task_instances("sync_points", run_id)["sync"]["state"] == "failed"
        warnings = cluster.api("GET", "/api/v2/dagWarnings", params={"dag_id": "sync_points"}).json()
        assert any("sync_points" in w["message"] for w in warnings["dag_warnings"])
    finally:
        body = {"name": "sync_points", "slots": 1, "include_deferred": True}
        cluster.api("POST", "/api/v2/pools", json=body).raise_for_status()
