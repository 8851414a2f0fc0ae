"""Scale: a deployment with N sources, each in its own one-slot pool, against N plain DAGs.

For each N, two real Airflows (``tests/harness/cluster.py``: api-server, scheduler, dag-processor;
LocalExecutor, SQLite), one after the other, with the same generated DAG file shape:

- ours: ``build_sync_dags`` of N sources, their N pools ``sync_<source>`` (1 slot, as ``setup``
  creates them) and N ``sync_state_<source>`` Variables (a mix of open, half-open, failing and
  healthy breakers with 30-request windows);
- plain: N one-``EmptyOperator`` DAGs in the default pool, no Variables.

Every DAG is unpaused and has no time schedule (``schedule=None``; any cron or interval would start
N runs at once, because ``catchup=False`` runs the latest past interval, and ours would then execute N
sync tasks while the plain ``EmptyOperator`` runs finish without a worker). So this measures an idle
loop: what N pools and N DAGs cost every scheduler loop (``Pool.slots_stats`` runs in each loop's
critical section), not the per-task work of busy hours. Once the
dag-processor has parsed all N DAGs it is stopped (its re-parses would compete for the 2 cores), and
the scheduler's own ``scheduler.scheduler_loop_duration`` timer is collected over StatsD (UDP) for
``seconds`` seconds; the median loop of ours is divided by the median loop of plain. The scheduler
process's CPU time over the same seconds, per loop, gives the headline ratio: other processes' load
on the shared cores inflates the wall-time loops of whichever side runs at a busier moment (the two
sides run one after the other); the wall-time ratio is kept as ``scheduler_loop_wall_ratio_vs_plain``.

The dashboard row (ours only): ``GET /sync-provider/api/states`` with a bearer token, after two
warm-up requests, median of 10 (milliseconds).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench.measure import median, rounded
from tests.harness.cluster import AIRFLOW, AirflowCluster
from tests.harness.statsd import UdpListener

UNSCHEDULED = None
LOOP_METRIC = "airflow.scheduler.scheduler_loop_duration:"

OURS_FILE = """\
from airflow_sync_provider import SyncConfig, build_sync_dags

configs = [SyncConfig(source=f"s{{i:05d}}", schedule={schedule!r}) for i in range({n})]
globals().update(build_sync_dags(configs))
"""

PLAIN_FILE = """\
import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

for i in range({n}):
    with DAG(
        dag_id=f"sync_s{{i:05d}}",
        schedule={schedule!r},
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args={{"owner": "sync", "retries": 0}},
        tags=["sync", f"source:s{{i:05d}}"],
    ) as dag:
        EmptyOperator(task_id="sync")
    globals()[dag.dag_id] = dag
"""


def source(i: int) -> str:
    return f"s{i:05d}"


def state_json(name: str, now: float, rng: random.Random) -> str:
    """A plausible state: ~2 % open, ~1 % half-open, ~5 % failing, the rest healthy."""
    draw = rng.random()
    breaker: dict[str, Any] = {"state": "closed", "failure_count": 0, "opened_at": None}
    if draw < 0.02:
        breaker = {"state": "open", "failure_count": 5, "opened_at": now - rng.uniform(0, 300)}
        breaker["last_error"] = "GET /items -> 503 Service Unavailable"
    elif draw < 0.03:
        breaker = {"state": "half-open", "failure_count": 5, "opened_at": now - 400, "half_open_since": now}
    elif draw < 0.08:
        breaker = {"state": "closed", "failure_count": rng.randint(1, 4), "opened_at": None}
        breaker["last_error"] = "GET /items -> 502 Bad Gateway"
    body = {
        "schema_version": 1,
        "source": name,
        "breaker": breaker,
        "window": [round(now - rng.uniform(0, 3500), 3) for _ in range(30)],
        "last_result": {"source": name, "success": breaker["state"] == "closed", "items_processed": 7},
        "updated_at": now,
    }
    return json.dumps(body, separators=(",", ":"))


class Deployment:
    """One real Airflow with N generated DAGs (``kind`` ours or plain)."""

    def __init__(self, kind: str, n: int, statsd_port: int) -> None:
        self.kind, self.n = kind, n
        self.home = Path(tempfile.mkdtemp(prefix=f"bench-scale-{kind}-"))
        self.cluster = AirflowCluster(
            self.home,
            components=("api-server", "scheduler", "dag-processor"),
            extra_env={
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
                "AIRFLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT": "1800",
                "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "1800",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3600",
                "AIRFLOW__METRICS__STATSD_ON": "True",
                "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
                "AIRFLOW__METRICS__STATSD_PORT": str(statsd_port),
                "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
            },
        )

    def start(self, timeout: float) -> Deployment:
        template = OURS_FILE if self.kind == "ours" else PLAIN_FILE
        (self.cluster.dags / f"generated_{self.kind}.py").write_text(
            template.format(n=self.n, schedule=UNSCHEDULED)
        )
        self.cluster.run(AIRFLOW, "db", "migrate", timeout=600)
        if self.kind == "ours":
            self._seed()
        for component in self.cluster.components:
            self.cluster.start_component(component)
        self.cluster.wait_healthy(timeout=300)
        self._wait_parsed(timeout)
        self.cluster.stop_component("dag-processor")
        return self

    def _seed(self) -> None:
        """The pools ``setup`` creates and a state Variable per source, through the airflow CLI."""
        rng = random.Random(12)
        now = time.time()
        pools = {
            f"sync_{source(i)}": {"slots": 1, "description": "bench", "include_deferred": True}
            for i in range(self.n)
        }
        variables = {f"sync_state_{source(i)}": state_json(source(i), now, rng) for i in range(self.n)}
        for kind, data in (("pools", pools), ("variables", variables)):
            path = self.home / f"{kind}.json"
            path.write_text(json.dumps(data))
            self.cluster.run(AIRFLOW, kind, "import", str(path), timeout=600)

    def _wait_parsed(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.cluster.api("GET", "/api/v2/dags", params={"limit": 1, "paused": "false"})
            if response.ok and response.json()["total_entries"] >= self.n:
                return
            time.sleep(5)
        raise TimeoutError(
            f"{self.kind}: {self.n} DAGs not parsed in {timeout}s\n" + self.cluster.log_tail("dag-processor")
        )

    def dashboard_ms(self, repetitions: int = 10) -> tuple[float, int]:
        """Median milliseconds of GET /sync-provider/api/states, and how many rows it returned."""
        headers = {"Authorization": f"Bearer {self.cluster.token()}"}
        url = f"{self.cluster.base_url}/sync-provider/api/states"
        times, rows = [], 0
        for i in range(repetitions + 2):
            started = time.perf_counter()
            response = requests.get(url, headers=headers, timeout=120)
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            rows = len(response.json()["states"])
            if i >= 2:
                times.append(elapsed * 1000)
        return median(times), rows

    def screenshot(self, path: Path) -> None:
        """The dashboard in headless Chromium (signed in with the UI's cookie), for a person to look at."""
        import http.server
        import threading

        from tests.plugins.test_dashboard_api import _LoginRedirect, chromium_binary, run_chromium

        binary = chromium_binary()
        if binary is None:
            raise RuntimeError("chromium is not installed (bash .ci/chromium.sh installs it)")
        target = self.cluster.base_url + "/sync-provider/"
        handler = type("Login", (_LoginRedirect,), {"token": self.cluster.token(), "target": target})
        login = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=login.serve_forever, daemon=True).start()
        try:
            run_chromium(binary, f"http://127.0.0.1:{login.server_address[1]}/", f"--screenshot={path}")
        finally:
            login.shutdown()
            login.server_close()

    def stop(self) -> None:
        self.cluster.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc/<pid>/stat``, Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loop_durations(listener: UdpListener, seconds: float) -> list[float]:
    """``scheduler_loop_duration`` timings (ms) the scheduler sends during the next ``seconds``."""
    listener.packets.clear()
    time.sleep(seconds)
    values = []
    for line in listener.lines:
        if line.startswith(LOOP_METRIC):
            values.append(float(line[len(LOOP_METRIC) :].split("|", 1)[0]))
    return values


def measure(n: int, seconds: float, parse_timeout: float) -> dict[str, Any]:
    row: dict[str, Any] = {"sources": n}
    for kind in ("ours", "plain"):
        listener = UdpListener()
        deployment = Deployment(kind, n, listener.port)
        try:
            began = time.monotonic()
            deployment.start(parse_timeout)
            row[f"{kind}_ready_s"] = rounded(time.monotonic() - began, 1)
            scheduler = deployment.cluster.procs["scheduler"].pid
            cpu_before = cpu_seconds(scheduler)
            loops = loop_durations(listener, seconds)
            cpu = cpu_seconds(scheduler) - cpu_before
            if not loops:
                raise RuntimeError(f"{kind}: no scheduler_loop_duration metric in {seconds}s")
            row[f"{kind}_loop_ms"] = rounded(median(loops), 2)
            row[f"{kind}_loops"] = len(loops)
            row[f"{kind}_loop_cpu_ms"] = rounded(cpu * 1000 / len(loops), 2)
            if kind == "ours":
                ms, rows = deployment.dashboard_ms()
                row["dashboard_ms"], row["dashboard_rows"] = rounded(ms, 1), rows
                if os.environ.get("SCALE_SCREENSHOT"):  # a PNG of the page with N sources
                    deployment.screenshot(Path(f"{os.environ['SCALE_SCREENSHOT']}-{n}.png"))
        finally:
            deployment.stop()
            listener.close()
    row["loop_ratio_vs_plain"] = rounded(row["ours_loop_ms"] / row["plain_loop_ms"], 2)
    row["loop_cpu_ratio_vs_plain"] = rounded(row["ours_loop_cpu_ms"] / row["plain_loop_cpu_ms"], 2)
    return row


def run(quick: bool = False) -> dict[str, Any]:
    sizes = (100,) if quick else (250, 1000)
    seconds = 20.0 if quick else 60.0
    rows = [measure(n, seconds, parse_timeout=1800) for n in sizes]
    largest = rows[-1]
    return {
        "dashboard_ms_1000_sources": largest["dashboard_ms"] if largest["sources"] == 1000 else None,
        "dashboard_sources": largest["sources"],
        "dashboard_rows": largest["dashboard_rows"],
        # CPU per loop: the wall-time loops of the two sides (measured one after the other) moved with
        # other processes' load on the shared cores (ratios 4.5 and 1.03 in one run)
        "scheduler_loop_ratio_vs_plain": largest["loop_cpu_ratio_vs_plain"],
        "scheduler_loop_wall_ratio_vs_plain": largest["loop_ratio_vs_plain"],
        "scheduler_loop_sources": largest["sources"],
        "loop_seconds": seconds,
        "by_size": rows,
    }
