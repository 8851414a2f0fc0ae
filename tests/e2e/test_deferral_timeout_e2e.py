"""A deferral nobody resumes, in a real Airflow: the scheduler times it out and the task ends cleanly.

The cluster has an api-server, a scheduler and a dag-processor but no triggerer, so a deferred
sync's trigger never runs. The sync defers for a 4 s Retry-After with a 3 s margin: after 7 s the
scheduler's ``check_trigger_timeouts`` (every second here) sends the task back with ``__fail__``, and
the operator records the sync as ``TIMEOUT`` (log, XCom, state Variable), fails the task and frees the
source's one pool slot: the next run of the source starts and succeeds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_sync_provider.demo.catalog import total_for
from airflow_sync_provider.demo.server import DemoServer
from tests.harness.cluster import AirflowCluster
from tests.harness.fixtures import connection_env

pytestmark = pytest.mark.airflow

SOURCE = "op_stuck"
DAG_FILE = f'''
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_sync_provider import RateLimitedSyncOperator, SyncConfig

CONFIG = SyncConfig(source="{SOURCE}", schedule=None, defer_after=timedelta(seconds=1), max_retries=2)

with DAG("{SOURCE}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         max_active_runs=1):
    RateLimitedSyncOperator(
        task_id="sync", source="{SOURCE}", config=CONFIG, defer_timeout_margin=timedelta(seconds=3)
    )
'''


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    with DemoServer(port=0) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, demo: DemoServer) -> Iterator[AirflowCluster]:
    env = {**connection_env(demo.url), "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "1"}
    c = AirflowCluster(
        tmp_path_factory.mktemp("no-triggerer"),
        components=("api-server", "scheduler", "dag-processor"),
        extra_env=env,
    )
    (c.dags / "stuck.py").write_text(DAG_FILE)
    try:
        c.start()
        pool = {"name": f"sync_{SOURCE}", "slots": 1, "include_deferred": True}
        c.api("POST", "/api/v2/pools", json=pool).raise_for_status()
        yield c
    finally:
        c.stop()


def xcom(cluster: AirflowCluster, run_id: str, key: str) -> Any:
    path = f"/api/v2/dags/{SOURCE}/dagRuns/{run_id}/taskInstances/sync/xcomEntries/{key}"
    response = cluster.api("GET", path)
    response.raise_for_status()
    value = response.json()["value"]
    return json.loads(value) if isinstance(value, str) else value


def test_a_deferral_without_a_triggerer_times_out_and_frees_the_pool(
    cluster: AirflowCluster, demo: DemoServer
) -> None:
    cluster.wait_for_dag(SOURCE)
    demo.set_fault("rate_limit", source=SOURCE, count=1, retry_after="4")
    run_id = cluster.trigger(SOURCE)
    run = cluster.wait_for_run(SOURCE, run_id, timeout=180)

    assert run["state"] == "failed", cluster.log_tail("scheduler")
    ti = cluster.task_instances(SOURCE, run_id)["sync"]
    assert (ti["state"], ti["try_number"]) == ("failed", 1)
    assert [e["status"] for e in demo.requests(SOURCE)] == [429]  # never resumed: nothing more sent
    assert "Timed out 1 deferred tasks without fired triggers" in cluster.log_tail("scheduler", 400)

    log = cluster.task_log(SOURCE, run_id, "sync")
    assert f"{SOURCE}: deferring for 4.0s" in log and "unless resumed within 7s" in log
    assert f"✗ {SOURCE}: TIMEOUT: the wait of " in log
    result = xcom(cluster, run_id, "return_value")
    assert (result["success"], result["error"], result["retry_count"]) == (False, "TIMEOUT", 1)
    assert "did not end within the deferral timeout of 7s" in result["error_message"]
    state = json.loads(cluster.variable(f"sync_state_{SOURCE}") or "{}")
    assert state["last_result"] == result

    pool = cluster.api("GET", f"/api/v2/pools/sync_{SOURCE}").json()
    assert (pool["occupied_slots"], pool["deferred_slots"]) == (0, 0), pool

    # the slot is free: the next sync of the source runs (and needs no triggerer)
    demo.clear_requests()
    second = cluster.trigger(SOURCE)
    assert cluster.wait_for_run(SOURCE, second, timeout=180)["state"] == "success"
    assert [e["status"] for e in demo.requests(SOURCE)] == [200]
    assert xcom(cluster, second, "return_value")["items_processed"] == total_for(SOURCE)
