"""A throwaway real Airflow for the measurements that need one: api-server, scheduler, dag-processor
and triggerer on free ports, LocalExecutor, SQLite, parallelism 4, its own AIRFLOW_HOME.

It reuses the project's test harness (``tests/harness/cluster.py``) so benchmarks and end-to-end
tests start Airflow the same way. The DAGs are ``bench/airflow_dags.py``; requests go to the demo
API running in the benchmark process.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_sync_provider.demo.server import DemoServer
from tests.harness.cluster import AirflowCluster

HERE = Path(__file__).resolve().parent
DAG_IDS = ("bench_outage", "bench_defer_ours", "bench_defer_sleeping", "bench_overhead")
POOLS = ("sync_outage", "sync_defer_ours")
STATE_EVENTS = frozenset(
    {"running", "deferred", "success", "failed", "skipped", "up_for_retry", "up_for_reschedule", "removed"}
)


class BenchDeployment:
    def __init__(self, demo: DemoServer, *, overhead_reps: int) -> None:
        self.demo = demo
        self.home = Path(tempfile.mkdtemp(prefix="bench-airflow-"))
        host, port = demo.url.split("://", 1)[1].rsplit(":", 1)
        conn = {"conn_type": "http", "host": host, "port": int(port)}
        self.cluster = AirflowCluster(
            self.home,
            extra_env={
                "AIRFLOW_CONN_SYNC_DEFAULT": json.dumps(conn),
                "BENCH_DEMO_URL": demo.url,
                "BENCH_OVERHEAD_REPS": str(overhead_reps),
            },
        )
        self.started_in_s: float | None = None

    def start(self) -> BenchDeployment:
        began = time.monotonic()
        shutil.copyfile(HERE / "airflow_dags.py", self.cluster.dags / "bench_dags.py")
        self.cluster.start()
        for pool in POOLS:
            response = self.cluster.api(
                "POST",
                "/api/v2/pools",
                json={"name": pool, "slots": 1, "include_deferred": True, "description": "bench"},
            )
            if response.status_code != 409:
                response.raise_for_status()
        for dag_id in DAG_IDS:
            self.cluster.wait_for_dag(dag_id, timeout=300)
        self.started_in_s = time.monotonic() - began
        return self

    def stop(self) -> None:
        self.cluster.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def run_dag(self, dag_id: str, timeout: float = 600) -> tuple[str, dict[str, Any]]:
        run_id = self.cluster.trigger(dag_id)
        return run_id, self.cluster.wait_for_run(dag_id, run_id, timeout=timeout)

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return self.cluster.task_instances(dag_id, run_id)[task_id]

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        response = self.cluster.api(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            params={"deserialize": "true"},
        )
        response.raise_for_status()
        value = response.json()["value"]
        return json.loads(value) if isinstance(value, str) else value

    def state_history(self, dag_id: str, run_id: str, task_id: str) -> list[tuple[str, float]]:
        """The task instance's state changes, as the Execution API recorded them (event log)."""
        response = self.cluster.api(
            "GET",
            "/api/v2/eventLogs",
            params={"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "order_by": "when", "limit": 100},
        )
        response.raise_for_status()
        events = [
            (e["event"], epoch(e["when"]))
            for e in response.json()["event_logs"]
            if e["event"] in STATE_EVENTS
        ]
        return sorted(events, key=lambda item: item[1])


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def running_segments(history: list[tuple[str, float]]) -> list[tuple[float, float]]:
    """(start, end) of every stretch the task instance spent in ``running`` (holding a worker)."""
    segments = []
    started: float | None = None
    for event, at in history:
        if event == "running":
            started = at
        elif started is not None:
            segments.append((started, at))
            started = None
    return segments
