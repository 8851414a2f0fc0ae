"""``python -m airflow_sync_provider.demo.up``: the demo API + ``airflow standalone`` with our DAGs.

Sets up an isolated ``AIRFLOW_HOME`` (default ``./.airflow``, SQLite, LocalExecutor, small
parallelism), starts the demo API, migrates the DB, creates the pools and the ``sync_default``
connection, starts ``airflow standalone``, unpauses the DAGs and triggers one run of every sync DAG,
and prints the URL and the admin password. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from airflow_sync_provider.admin_names import ADMIN_DAG_ID

HEALTH_TIMEOUT = 180.0


def _env(home: Path, dags: Path, port: int, demo_url: str) -> dict[str, str]:
    env = dict(os.environ)
    # `airflow standalone` starts its components as `airflow ...` from PATH: use this venv's.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            # SQLite allows one writer; wait up to 30 s for the lock instead of failing after 5 s.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=30",
            # Created paused and unpaused over REST once the api-server answers: tasks started
            # earlier would fail to reach the Execution API.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "true",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "SYNC_DEMO_URL": demo_url,
        }
    )
    return env


def _wait_for(url: str, timeout: float, what: str, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode}; see its output above")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(1)
    raise SystemExit(f"{what} did not answer at {url} within {timeout:.0f}s")


def _password(home: Path) -> str:
    path = home / "simple_auth_manager_passwords.json.generated"
    for _ in range(30):
        if path.exists():
            return str(json.loads(path.read_text()).get("admin", "?"))
        time.sleep(1)
    return f"(see {path})"


def _api(base: str, path: str, token: str | None = None, body: Any = None, method: str = "") -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}{path}", data=data, method=method or ("POST" if data else "GET"))
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def _unpause_and_trigger(base: str, password: str, dag_ids: list[str], trigger: bool) -> None:
    """Unpause every DAG and (for syncs) start one run now, before the first cron tick."""
    token = _api(base, "/auth/token", body={"username": "admin", "password": password})["access_token"]
    deadline = time.monotonic() + 180
    pending = list(dag_ids)
    while pending and time.monotonic() < deadline:
        for dag_id in list(pending):
            try:
                _api(base, f"/api/v2/dags/{dag_id}", token, {"is_paused": False}, method="PATCH")
                if trigger and dag_id != ADMIN_DAG_ID:
                    _api(base, f"/api/v2/dags/{dag_id}/dagRuns", token, {"logical_date": None})
                pending.remove(dag_id)
            except urllib.error.HTTPError as exc:
                if exc.code not in (404, 500, 503):  # not parsed yet, or SQLite busy: try again
                    raise
        if pending:
            time.sleep(3)
    if pending:
        print(f"Not parsed in time, unpause by hand: {', '.join(pending)}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=os.environ.get("SYNC_DEMO_HOME", ".airflow"))
    parser.add_argument("--dags", default="dags")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SYNC_DEMO_AIRFLOW_PORT", "8080")))
    parser.add_argument("--demo-port", type=int, default=int(os.environ.get("SYNC_DEMO_PORT", "8765")))
    parser.add_argument("--no-trigger", action="store_true", help="do not trigger a first run of each DAG")
    args = parser.parse_args(argv)

    home, dags = Path(args.home).resolve(), Path(args.dags).resolve()
    home.mkdir(parents=True, exist_ok=True)
    demo_url = f"http://127.0.0.1:{args.demo_port}"
    env = _env(home, dags, args.port, demo_url)
    py = sys.executable
    airflow = str(Path(py).with_name("airflow"))
    children: list[subprocess.Popen[Any]] = []

    def start(cmd: list[str]) -> subprocess.Popen[Any]:
        # Each child leads its own process group, so shutdown can reach the grandchildren that
        # `airflow standalone` starts (renamed by setproctitle, they are easy to orphan). SIGINT is
        # restored to its default: a background job inherits it ignored, and standalone only stops
        # cleanly on SIGINT.
        proc = subprocess.Popen(
            cmd,
            env=env,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        children.append(proc)
        return proc

    for port, what in ((args.port, "--port / SYNC_DEMO_AIRFLOW_PORT"), (args.demo_port, "--demo-port")):
        if _port_in_use(port):
            print(f"error: port {port} is in use (another Airflow or demo running?); free it or use {what}")
            return 2

    try:
        started = time.monotonic()
        demo = start([py, "-m", "airflow_sync_provider.demo", "serve", "--port", str(args.demo_port)])
        _wait_for(f"{demo_url}/healthz", 30, "the demo API", demo)
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            [py, "-m", "airflow_sync_provider", "setup", "--connection", demo_url], env=env, check=True
        )
        standalone = start([airflow, "standalone"])
        base = f"http://localhost:{args.port}"
        _wait_for(f"{base}/api/v2/monitor/health", HEALTH_TIMEOUT, "airflow standalone", standalone)
        password = _password(home)
        from airflow_sync_provider.sources_file import load_sources, resolve_path

        sources = sorted(load_sources(resolve_path(dags / "sources.yaml")))
        dag_ids = [ADMIN_DAG_ID, *(f"sync_{s}" for s in sources)]
        _unpause_and_trigger(base, password, dag_ids, trigger=not args.no_trigger)
        print(
            f"\n  Airflow UI: {base}  (user admin, password {password})\n"
            f"  Demo API:   {demo_url}  (break it: curl -X POST {demo_url}/_admin/faults "
            f"-H 'Content-Type: application/json' -d '{{\"mode\": \"outage\"}}')\n"
            f"  Ready in {time.monotonic() - started:.0f}s. Ctrl-C stops everything.\n",
            flush=True,
        )
        while all(p.poll() is None for p in children):
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
        return 0
    finally:
        _stop(children)


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop(children: list[subprocess.Popen[Any]]) -> None:
    """SIGINT every child's process group, then SIGTERM, then SIGKILL what is left."""
    for sig, grace in ((signal.SIGINT, 30.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        alive = [p for p in children if _group_alive(p.pid)]
        if not alive:
            return
        for proc in alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_group_alive(p.pid) for p in alive):
            for proc in alive:
                proc.poll()
            time.sleep(0.5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if __name__ == "__main__":
    raise SystemExit(main())
