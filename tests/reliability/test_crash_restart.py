"""Crash and restart in a real deployment (api-server, scheduler, dag-processor, triggerer; LocalExecutor).

Three scenarios on one cluster, each followed by a clean run that must start and succeed:

1. SIGKILL of the task process while a page request is in flight: the supervisor reports the
   task failed; the window still holds every request the API received, the breaker is sane.
2. SIGKILL of the supervisor and its task process (a lost worker): nobody reports, so the
   scheduler's heartbeat-timeout detection fails the task; same checks.
3. Scheduler and triggerer stopped and started again while the sync is deferred on a Retry-After:
   the sync resumes at the page it deferred on, which is requested exactly once more.

The connection carries a planted password; the last test checks that every request sent it and that
no file of the deployment (component logs, task logs, the metadata DB) contains it.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_sync_provider.demo.catalog import TOTALS
from airflow_sync_provider.demo.server import DemoServer
from tests.harness.cluster import AirflowCluster, shipped_dags_cluster

pytestmark = pytest.mark.airflow

HEARTBEAT_TIMEOUT = 10
PASSWORD = f"PLANTED-pw-{secrets.token_hex(8)}"
SOURCES = {
    "include_defaults": False,
    "sources": {
        # kill -9 scenarios: 120 items = 3 pages; one try per request, so a run is easy to count
        "airdrops": {"schedule": None, "max_retries": 0, "timeout": "20s"},
        # deferral scenario: 60 items = 2 pages; any wait over 1 s defers
        "yield": {"schedule": None, "max_retries": 2, "defer_after": "1s", "max_wait": "2m"},
    },
}


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    with DemoServer(port=0) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, demo: DemoServer) -> Iterator[AirflowCluster]:
    with shipped_dags_cluster(
        tmp_path_factory.mktemp("crash-airflow"),
        demo.url,
        SOURCES,
        connection_fields={"login": "syncer", "password": PASSWORD},
        extra_env={
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        },
    ) as c:
        yield c


# -- helpers -----------------------------------------------------------------------------------------


def wait_until(what: str, check: Any, timeout: float = 180, cluster: AirflowCluster | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    tail = cluster.log_tail("scheduler") if cluster else ""
    raise TimeoutError(f"{what} not within {timeout}s\n{tail}")


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process on the machine."""
    found: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        found[int(entry.name)] = (ppid, cmdline)
    return found


def descends_from(pid: int, ancestor: int, table: dict[int, tuple[int, str]]) -> bool:
    while pid in table and pid > 1:
        if pid == ancestor:
            return True
        pid = table[pid][0]
    return False


def task_processes(cluster: AirflowCluster, ti_id: str) -> tuple[int, int]:
    """(task process, its supervisor): found by the task runner's process title, under our scheduler.

    The Task SDK titles the task process ``airflow worker -- <ti id>``; its parent is the LocalExecutor
    worker that supervises it. Only processes below this cluster's scheduler are considered.
    """
    scheduler = cluster.procs["scheduler"].pid
    table = processes()
    matches = [
        pid
        for pid, (_, cmd) in table.items()
        if cmd == f"airflow worker -- {ti_id}" and descends_from(pid, scheduler, table)
    ]
    assert len(matches) == 1, f"task process of {ti_id}: {matches}"
    task = matches[0]
    supervisor = table[task][0]
    assert table[supervisor][1].startswith("airflow worker -- LocalExecutor"), table[supervisor]
    return task, supervisor


def in_flight(demo: DemoServer, source: str, count: int) -> bool:
    """``count`` requests arrived and the last one is still being answered."""
    entries = demo.requests(source)
    return len(entries) == count and entries[-1]["end"] is None


def heartbeat_timeouts(cluster: AirflowCluster, run_id: str) -> int:
    """How often the scheduler failed a task of ``run_id`` for a missing heartbeat."""
    log = (cluster.logs / "scheduler.log").read_text(errors="replace")
    marker = "Detected a task instance without a heartbeat"
    return sum(1 for line in log.splitlines() if marker in line and run_id in line)


def state_of(cluster: AirflowCluster, source: str) -> dict[str, Any]:
    raw = cluster.variable(f"sync_state_{source}")
    assert raw is not None
    return dict(json.loads(raw))


def kill_mid_sync(cluster: AirflowCluster, demo: DemoServer, *, supervisor_too: bool) -> tuple[str, int]:
    """Start a slow sync of airdrops, SIGKILL it while page 2 is in flight; return (run id, requests)."""
    demo.clear_requests()
    demo.set_fault("slow", source="airdrops", delay=3.0)
    run_id = cluster.trigger("sync_airdrops")
    wait_until("page 2 in flight", lambda: in_flight(demo, "airdrops", 2), cluster=cluster)
    ti = cluster.task_instances("sync_airdrops", run_id)["sync"]
    assert ti["state"] == "running", ti
    task, supervisor = task_processes(cluster, ti["id"])
    if supervisor_too:
        os.kill(supervisor, signal.SIGKILL)
    os.kill(task, signal.SIGKILL)
    wait_until("the killed process to be gone", lambda: task not in processes())
    sent = len(demo.requests("airdrops"))
    demo.clear_faults("airdrops")
    return run_id, sent


def check_window_and_breaker_then_rerun(
    cluster: AirflowCluster, demo: DemoServer, run_id: str, sent_before: int, window_before: int
) -> None:
    state = state_of(cluster, "airdrops")
    # every request the API saw holds a slot: the slot is written before the request is sent
    assert len(state["window"]) == window_before + sent_before
    assert (state["breaker"]["state"], state["breaker"]["failure_count"]) == ("closed", 0)

    demo.clear_requests()
    again = cluster.trigger("sync_airdrops")
    finished = cluster.wait_for_run("sync_airdrops", again)
    assert finished["state"] == "success", cluster.log_tail("scheduler")
    assert cluster.task_instances("sync_airdrops", again)["sync"]["state"] == "success"
    assert [e["status"] for e in demo.requests("airdrops")] == [200, 200, 200]
    after = state_of(cluster, "airdrops")
    assert len(after["window"]) == window_before + sent_before + 3
    assert (after["breaker"]["state"], after["breaker"]["failure_count"]) == ("closed", 0)
    assert (after["last_result"]["success"], after["last_result"]["items_processed"]) == (
        True,
        TOTALS["airdrops"],
    )


# -- scenarios ---------------------------------------------------------------------------------------


def test_kill_9_of_the_task_process_mid_request(cluster: AirflowCluster, demo: DemoServer) -> None:
    cluster.wait_for_dag("sync_airdrops")
    window_before = len(json.loads(cluster.variable("sync_state_airdrops") or '{"window": []}')["window"])

    run_id, sent = kill_mid_sync(cluster, demo, supervisor_too=False)

    assert sent == 2  # page 1 answered, page 2 in flight when the process died
    finished = cluster.wait_for_run("sync_airdrops", run_id)
    assert finished["state"] == "failed"
    assert cluster.task_instances("sync_airdrops", run_id)["sync"]["state"] == "failed"
    assert heartbeat_timeouts(cluster, run_id) == 0  # its supervisor reported the failure
    check_window_and_breaker_then_rerun(cluster, demo, run_id, sent, window_before)


def test_kill_9_of_the_worker_and_task_is_caught_by_heartbeat_timeout(
    cluster: AirflowCluster, demo: DemoServer
) -> None:
    cluster.wait_for_dag("sync_airdrops")
    window_before = len(state_of(cluster, "airdrops")["window"])

    run_id, sent = kill_mid_sync(cluster, demo, supervisor_too=True)

    assert sent == 2
    finished = cluster.wait_for_run("sync_airdrops", run_id, timeout=HEARTBEAT_TIMEOUT + 240)
    assert finished["state"] == "failed"
    assert cluster.task_instances("sync_airdrops", run_id)["sync"]["state"] == "failed"
    assert heartbeat_timeouts(cluster, run_id) == 1  # the scheduler, not a supervisor, failed it
    check_window_and_breaker_then_rerun(cluster, demo, run_id, sent, window_before)


def test_scheduler_and_triggerer_restart_during_a_deferral(cluster: AirflowCluster, demo: DemoServer) -> None:
    cluster.wait_for_dag("sync_yield")
    demo.clear_requests()
    # page 1 is slow (a one-shot fault for every source); page 2 gets one 429 with Retry-After: 15
    demo.set_fault("slow", count=1, delay=2.0)
    run_id = cluster.trigger("sync_yield")
    wait_until("page 1 to take the slow fault", lambda: demo.requests("yield") and not demo.faults())
    demo.set_fault("rate_limit", source="yield", count=1, retry_after="15")

    def deferred() -> bool:
        return bool(cluster.task_instances("sync_yield", run_id)["sync"]["state"] == "deferred")

    wait_until("the sync to defer", deferred, cluster=cluster)
    cluster.stop_component("triggerer")
    cluster.stop_component("scheduler")
    time.sleep(5)
    assert [e["status"] for e in demo.requests("yield")] == [200, 429]
    cluster.start_component("scheduler")
    cluster.start_component("triggerer")

    finished = cluster.wait_for_run("sync_yield", run_id)
    assert finished["state"] == "success", cluster.log_tail("scheduler")
    requests = demo.requests("yield")
    assert [(e["path"], e["status"]) for e in requests] == [
        ("/yield", 200),
        ("/yield?cursor=50&limit=50", 429),
        ("/yield?cursor=50&limit=50", 200),  # the deferred page, once more; page 1 was not read again
    ]
    assert requests[2]["start"] - requests[1]["end"] >= 14.9  # Retry-After was honoured across restarts
    state = state_of(cluster, "yield")
    result = state["last_result"]
    assert (result["success"], result["items_processed"], result["retry_count"]) == (True, TOTALS["yield"], 1)
    assert len(state["window"]) == 3
    assert (state["breaker"]["state"], state["breaker"]["failure_count"]) == ("closed", 0)
    log = cluster.task_log("sync_yield", run_id, "sync", try_number=1)
    assert "deferring for" in log and "Resuming the sync of yield after a wait (deferral 1)" in log, log[
        -3000:
    ]


def test_the_deployment_files_hold_no_connection_password(cluster: AirflowCluster, demo: DemoServer) -> None:
    """After the crashes and restarts above (and one more clean run): sent to the API, stored nowhere."""
    cluster.wait_for_dag("sync_airdrops")
    demo.clear_requests()
    run_id = cluster.trigger("sync_airdrops")
    assert cluster.wait_for_run("sync_airdrops", run_id)["state"] == "success"
    basic = base64.b64encode(f"syncer:{PASSWORD}".encode()).decode()
    assert [r["headers"].get("Authorization") for r in demo.requests("airdrops")] == [f"Basic {basic}"] * 3

    files = [p for p in cluster.home.rglob("*") if p.is_file()]
    task_logs = [p for p in files if "dag_id=sync_" in str(p)]
    assert task_logs, "no task log files were written"
    assert cluster.home / "airflow.db" in files
    leaks = [str(p) for p in files for value in (PASSWORD, basic) if value.encode() in p.read_bytes()]
    assert leaks == []
