"""A real Airflow deployment for end-to-end tests: api-server, scheduler, dag-processor, triggerer.

Each cluster has its own AIRFLOW_HOME and dags folder, free ports, the execution API URL set to
its api-server, and SimpleAuthManager users with known passwords. The metadata DB is SQLite by
default or any SQLAlchemy URL (PostgreSQL for the Celery topology). Processes are stopped with
SIGINT, then killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import requests
import yaml

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
REPO = Path(__file__).resolve().parents[2]
USERS = {"admin": "admin", "viewer": "viewer"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AirflowCluster:
    """Start with ``start()``, stop with ``stop()``; use ``api()`` for authenticated REST calls."""

    def __init__(
        self,
        home: Path,
        *,
        components: Iterable[str] = ("api-server", "scheduler", "dag-processor", "triggerer"),
        sql_alchemy_conn: str | None = None,
        executor: str = "LocalExecutor",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.home = home
        self.dags = home / "dags"
        self.logs = home / "component-logs"
        self.components = list(components)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._tokens: dict[str, str] = {}
        self.dags.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        passwords = home / "passwords.json"
        passwords.write_text(json.dumps(USERS))
        self.env = dict(os.environ)
        for key in [k for k in self.env if k.startswith("AIRFLOW__") or k.startswith("AIRFLOW_CONN_")]:
            del self.env[key]
        self.env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
                "AIRFLOW__CORE__EXECUTOR": executor,
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "true",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                # the scheduler's and triggerer's log servers default to fixed ports (8793, 8794)
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__API_AUTH__JWT_SECRET": "sync-provider-tests-jwt-secret",
                "AIRFLOW__API__SECRET_KEY": "sync-provider-tests-secret-key",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            }
        )
        # SQLite allows one writer: wait up to 30 s for the lock instead of failing after 5 s.
        default_db = f"sqlite:///{home / 'airflow.db'}?timeout=30"
        self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = sql_alchemy_conn or default_db
        self.env.update(extra_env or {})

    # -- lifecycle --------------------------------------------------------------------------------

    def run(self, *args: str, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess[str]:
        """Run a command (e.g. ``airflow db migrate``) in the cluster's environment."""
        return subprocess.run(
            list(args), env=self.env, capture_output=True, text=True, timeout=timeout, check=check
        )

    def start(self) -> AirflowCluster:
        self.run(AIRFLOW, "db", "migrate")
        for component in self.components:
            self.start_component(component)
        self.wait_healthy()
        return self

    def start_component(self, component: str) -> subprocess.Popen[bytes]:
        cmd = [AIRFLOW, *component.split()]
        if component == "api-server":
            cmd += ["--port", str(self.port), "--host", "127.0.0.1"]
        log = open(self.logs / f"{component.replace(' ', '-')}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs[component] = proc
        return proc

    def stop_component(self, component: str, sig: int = signal.SIGINT, timeout: float = 30) -> None:
        proc = self.procs.pop(component, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop(self) -> None:
        for component in list(self.procs):
            self.stop_component(component)

    def wait_healthy(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            try:
                if requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        raise RuntimeError(f"api-server not healthy in {timeout}s:\n{self.log_tail('api-server')}")

    def log_tail(self, component: str, lines: int = 60) -> str:
        path = self.logs / f"{component.replace(' ', '-')}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # -- REST -------------------------------------------------------------------------------------

    def token(self, user: str = "admin") -> str:
        if user not in self._tokens:
            response = requests.post(
                f"{self.base_url}/auth/token",
                json={"username": user, "password": USERS[user]},
                timeout=10,
            )
            response.raise_for_status()
            self._tokens[user] = response.json()["access_token"]
        return self._tokens[user]

    def api(self, method: str, path: str, *, user: str = "admin", **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token(user)}", **kwargs.pop("headers", {})}
        # generous: on a loaded 2-core machine the API server has answered a trigger after more than 30 s
        return requests.request(method, f"{self.base_url}{path}", headers=headers, timeout=120, **kwargs)

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id``; unpause it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.api("GET", f"/api/v2/dags/{dag_id}")
            if response.status_code == 200:
                self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
                return dict(response.json())
            time.sleep(2)
        raise TimeoutError(f"{dag_id} was not parsed within {timeout}s:\n{self.log_tail('dag-processor')}")

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        response = self.api(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}}
        )
        response.raise_for_status()
        return str(response.json()["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        response = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        response.raise_for_status()
        return dict(response.json())

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 240) -> dict[str, Any]:
        """Wait until the run is finished (success or failed); return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.dag_run(dag_id, run_id)
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(1)
        raise TimeoutError(f"{dag_id}/{run_id} unfinished after {timeout}s:\n{self.log_tail('scheduler')}")

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        response = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        response.raise_for_status()
        return {ti["task_id"]: ti for ti in response.json()["task_instances"]}

    def variable(self, key: str) -> str | None:
        response = self.api("GET", f"/api/v2/variables/{key}")
        return str(response.json()["value"]) if response.status_code == 200 else None

    def set_variable(self, key: str, value: str) -> None:
        response = self.api("POST", "/api/v2/variables", json={"key": key, "value": value})
        if response.status_code == 409:
            response = self.api("PATCH", f"/api/v2/variables/{key}", json={"key": key, "value": value})
        response.raise_for_status()

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        response = self.api(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            headers={"Accept": "application/json"},
        )
        response.raise_for_status()
        content = response.json().get("content") or []
        if isinstance(content, str):
            return content
        return "\n".join(str(e.get("event", e)) if isinstance(e, dict) else str(e) for e in content)


@contextlib.contextmanager
def shipped_dags_cluster(
    home: Path,
    demo_url: str,
    sources: dict[str, Any],
    *,
    connection_fields: dict[str, Any] | None = None,
    extra_env: dict[str, str] | None = None,
    **cluster_kwargs: Any,
) -> Iterator[AirflowCluster]:
    """A started cluster running the shipped ``dags/sync_sources.py`` on ``sources`` (YAML form).

    The ``sync_default`` connection points at the demo API (plus ``connection_fields``), and our
    ``setup`` has created every source's pool. Stopped on exit.
    """
    sources_file = home / "sources.yaml"
    sources_file.write_text(yaml.safe_dump(sources))
    host, port = demo_url.split("://", 1)[1].split(":")
    conn = {"conn_type": "http", "host": host, "port": int(port), **(connection_fields or {})}
    env = {"SYNC_SOURCES_FILE": str(sources_file), "AIRFLOW_CONN_SYNC_DEFAULT": json.dumps(conn)}
    cluster = AirflowCluster(home, extra_env={**env, **(extra_env or {})}, **cluster_kwargs)
    shutil.copyfile(REPO / "dags" / "sync_sources.py", cluster.dags / "sync_sources.py")
    try:
        cluster.start()
        cluster.run(
            sys.executable, "-m", "airflow_sync_provider", "setup", "--sources-file", str(sources_file)
        )
        yield cluster
    finally:
        cluster.stop()
