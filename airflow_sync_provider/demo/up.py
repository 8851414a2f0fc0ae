"""``python -m airflow_sync_provider.demo.up``: the demo API + Airflow with our DAGs, on a quiet console.

Sets up an isolated ``AIRFLOW_HOME`` (default ``./.airflow``, SQLite, LocalExecutor, small
parallelism), starts the demo API, migrates the DB, creates the pools and the ``sync_default``
connection, starts Airflow's api-server, scheduler, dag-processor and triggerer, unpauses the DAGs
and starts one run of each sync DAG the scheduler does not start itself. Every component logs to
``<home>/demo-logs/<name>.log``; the console shows progress, then the URL and admin password, then
one line per event that matters (see ``watch``). Ctrl-C, SIGHUP (a closed terminal) and SIGTERM stop
everything within seconds; so does the end of the process that started it (``make``). What it started
is listed in ``<home>/demo.pid``, so a demo killed hard is stopped by the next ``make demo`` or by
``make stop`` (``--stop``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_sync_provider.authoring.admin_names import ADMIN_DAG_ID
from airflow_sync_provider.demo import leftovers, logserver
from airflow_sync_provider.demo.processes import Processes, port_open, tail
from airflow_sync_provider.demo.watch import EventWatcher

HEALTH_TIMEOUT = 180.0
POLL_EVENTS_EVERY = 5.0
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
FAULT_DEFAULT_URL = "http://127.0.0.1:8765"  # `python -m airflow_sync_provider.demo fault`'s --url
# Airflow's defaults; the demo serves task logs on loopback itself (see ``logserver``)
LOG_SERVER_PORTS = {"worker-logs": "8793", "trigger-logs": "8794"}
LOG_PORT_SETTINGS = {
    "worker-logs": "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
    "trigger-logs": "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
}
# The demo API announces its own quota for one source (issue 11): above the config's 120 per hour, so it
# never blocks, but the attempt lines of sync_sponsored show "| API N left" (learned from RateLimit-*).
DEMO_QUOTAS: tuple[dict[str, Any], ...] = (
    {"source": "sponsored", "limit": 500, "window": 3600, "family": "ietf"},
)
# starlette warns at every import of its test client while httpx2 is missing: nothing a demo user can fix.
QUIET_WARNINGS = "ignore:Using `httpx` with `starlette.testclient` is deprecated"


def _secrets(home: Path) -> dict[str, str]:
    """Per-home random keys, kept across restarts: long enough for HS512 (no InsecureKeyLengthWarning)."""
    path = home / "demo-secrets.json"
    if not path.exists():
        path.write_text(
            json.dumps({"jwt_secret": secrets.token_hex(64), "secret_key": secrets.token_hex(32)})
        )
        path.chmod(0o600)
    return dict(json.loads(path.read_text()))


def _db_url(home: Path) -> str:
    # SQLite allows one writer; wait up to 30 s for the lock instead of failing after 5 s.
    return f"sqlite:///{home / 'airflow.db'}?timeout=30"


def write_config(home: Path, dags: Path) -> None:
    """Put the DAGs folder and the DB in ``<home>/airflow.cfg``, so that a CLI run with only
    ``AIRFLOW_HOME=<home>`` (the banner's commands) sees what the demo's components see: the sources
    file in the DAGs folder, the same DB. Airflow fills in every other option with its default."""
    path = home / "airflow.cfg"
    wanted = {"dags_folder": str(dags), "sql_alchemy_conn": _db_url(home)}
    if not path.exists():
        path.write_text(
            f"[core]\ndags_folder = {wanted['dags_folder']}\n\n"
            f"[database]\nsql_alchemy_conn = {wanted['sql_alchemy_conn']}\n"
        )
        return
    text = path.read_text()  # a home from before: Airflow wrote its defaults (dags_folder = <home>/dags)
    for key, value in wanted.items():
        escaped = f"{key} = {value}".replace("\\", "\\\\")  # a replacement string, not a pattern
        text = re.sub(rf"(?m)^{key} = .*$", escaped, text, count=1)
    path.write_text(text)


def _env(home: Path, dags: Path, port: int, demo_url: str) -> dict[str, str]:
    env = dict(os.environ)
    # Components run as `airflow ...`: use this venv's.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    keys = _secrets(home)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _db_url(home),
            # Created paused and unpaused over REST once the api-server answers: tasks started
            # earlier would fail to reach the Execution API.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "true",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            # loopback only: also what keeps SimpleAuthManager from warning that this looks like production
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            "AIRFLOW__API__SECRET_KEY": keys["secret_key"],
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": logserver.HOSTNAME_CALLABLE,
            "PYTHONWARNINGS": ",".join(filter(None, [env.get("PYTHONWARNINGS"), QUIET_WARNINGS])),
            "SYNC_DEMO_URL": demo_url,
        }
    )
    return env


def _log_port(env: Mapping[str, str], name: str) -> int:
    return int(env.get(LOG_PORT_SETTINGS[name], LOG_SERVER_PORTS[name]))


class Hangup(KeyboardInterrupt):
    """SIGHUP or SIGTERM, or the parent (``make``) went away: stop as Ctrl-C does."""


def _hang_up(signum: int, _frame: Any) -> None:
    raise Hangup(signal.Signals(signum).name)


class _Parent:
    """The process that started the launcher; once it is gone (re-parented), the demo stops."""

    def __init__(self) -> None:
        self.pid = os.getppid()

    def check(self) -> None:
        if os.getppid() != self.pid:
            raise Hangup("parent exited")


PARENT = _Parent()


def _wait_for(url: str, timeout: float, what: str, procs: Processes) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        PARENT.check()
        if (child := procs.exited()) is not None:
            code, log = child.proc.returncode, child.log
            raise SystemExit(f"{child.name} exited with code {code}:\n{tail(log)}\n(log: {log})")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(1)
    raise SystemExit(f"{what} did not answer at {url} within {timeout:.0f}s; logs in {procs.logs}")


def _password(home: Path) -> str:
    path = home / "simple_auth_manager_passwords.json.generated"
    for _ in range(30):
        if path.exists() and path.read_text().strip():
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


def set_demo_quotas(demo_url: str) -> list[str]:
    """Switch on ``DEMO_QUOTAS`` on the running demo API; returns the sources it now announces."""
    quotas: dict[str, Any] = {}
    for quota in DEMO_QUOTAS:
        quotas = _api(demo_url, "/_admin/quotas", body=quota)["quotas"]
    return sorted(quotas)


def _token(base: str, password: str) -> str:
    return str(_api(base, "/auth/token", body={"username": "admin", "password": password})["access_token"])


def starts_on_its_own(dag: dict[str, Any], now: datetime) -> bool:
    """Will the scheduler start a run of this (just unpaused) DAG by itself right away?

    With ``catchup=False`` Airflow runs the latest cron tick at once only if it is recent (within a
    tenth of the interval, at least 5 min); the DAG's ``next_dagrun_run_after`` says which it chose.
    """
    run_after = dag.get("next_dagrun_run_after")
    return bool(run_after) and datetime.fromisoformat(str(run_after).replace("Z", "+00:00")) <= now


Api = Callable[..., Any]  # (path, body=None, method="") -> decoded JSON, authenticated


@dataclass
class FirstRuns:
    scheduled: int = 0  # the scheduler starts them (a recent cron tick)
    triggered: int = 0  # triggered once by the demo
    earlier: int = 0  # had runs in this home already (an earlier `make demo`): not triggered again

    def line(self, dags: int) -> str:
        earlier = f", {self.earlier} ran in an earlier demo (not triggered again)" if self.earlier else ""
        return (
            f"{dags} DAGs unpaused; first runs: {self.scheduled} started by their schedule, "
            f"{self.triggered} triggered once{earlier}"
        )


def _unpause_and_start(api: Api, dag_ids: list[str], trigger: bool) -> FirstRuns:
    """Unpause every DAG; trigger the sync DAGs the scheduler will not start now and that never ran
    in this home (a restart does not queue another run behind, say, an unanswered review)."""
    deadline = time.monotonic() + 180
    pending, first = list(dag_ids), FirstRuns()
    while pending and time.monotonic() < deadline:
        for dag_id in list(pending):
            try:
                dag = api(f"/api/v2/dags/{dag_id}", {"is_paused": False}, method="PATCH")
                if dag_id != ADMIN_DAG_ID:
                    if starts_on_its_own(dag, datetime.now(UTC)):
                        first.scheduled += 1
                    elif api(f"/api/v2/dags/{dag_id}/dagRuns?limit=1")["total_entries"]:
                        first.earlier += 1
                    elif trigger:
                        api(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
                        first.triggered += 1
                pending.remove(dag_id)
            except urllib.error.HTTPError as exc:
                if exc.code not in (404, 500, 503):  # not parsed yet, or SQLite busy: try again
                    raise
        if pending:
            time.sleep(3)
    if pending:
        print(f"Not parsed in time, unpause by hand: {', '.join(pending)}", flush=True)
    return first


def _say(line: str) -> None:
    with contextlib.suppress(OSError):  # the console went away (a closed pipe): keep stopping
        print(f"{datetime.now().strftime('%H:%M:%S')}  {line}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=os.environ.get("SYNC_DEMO_HOME", ".airflow"))
    parser.add_argument("--dags", default="dags")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SYNC_DEMO_AIRFLOW_PORT", "8080")))
    parser.add_argument("--demo-port", type=int, default=int(os.environ.get("SYNC_DEMO_PORT", "8765")))
    parser.add_argument(
        "--no-trigger", action="store_true", help="do not trigger the DAGs the scheduler does not start"
    )
    parser.add_argument(
        "--stop", action="store_true", help="stop what an earlier demo in --home left running, then exit"
    )
    args = parser.parse_args(argv)

    home, dags = Path(args.home).resolve(), Path(args.dags).resolve()
    if args.stop:
        if not leftovers.stop_leftovers(home, _say):
            _say(f"No demo is running from {home}.")
        return 0
    PARENT.pid = os.getppid()
    for signum in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, _hang_up)
    logs = home / "demo-logs"
    logs.mkdir(parents=True, exist_ok=True)
    leftovers.stop_leftovers(home, _say)
    write_config(home, dags)
    demo_url = f"http://127.0.0.1:{args.demo_port}"
    py = sys.executable
    airflow = str(Path(py).with_name("airflow"))

    ports = [(args.port, "--port / SYNC_DEMO_AIRFLOW_PORT"), (args.demo_port, "--demo-port")]
    ports += [(_log_port(os.environ, name), setting) for name, setting in LOG_PORT_SETTINGS.items()]
    for port, what in ports:
        if port_open(port):
            print(f"error: port {port} is in use (another Airflow or demo running?); free it or use {what}")
            return 2

    procs = Processes(
        _env(home, dags, args.port, demo_url),
        logs,
        on_start=lambda children: leftovers.record(
            home, [("launcher", os.getpid()), *((c.name, c.proc.pid) for c in children)]
        ),
    )
    started = time.monotonic()
    try:
        _say(f"Starting the demo API on {demo_url} ...")
        demo_cmd = [py, "-m", "airflow_sync_provider.demo", "serve", "--port", str(args.demo_port)]
        procs.start("demo-api", demo_cmd, port=args.demo_port)
        _wait_for(f"{demo_url}/healthz", 30, "the demo API", procs)
        set_demo_quotas(demo_url)
        _say("Migrating Airflow's database (SQLite; the first time takes a while) ...")
        procs.run("db-migrate", [airflow, "db", "migrate"])
        _say("Creating the pools and the sync_default connection ...")
        procs.run("setup", [py, "-m", "airflow_sync_provider", "setup", "--connection", demo_url])
        _say(f"Starting Airflow: {', '.join(COMPONENTS)} ...")
        for component in COMPONENTS:
            server = component == "api-server"
            extra = ["--port", str(args.port), "--host", "127.0.0.1"] if server else []
            if component in ("scheduler", "triggerer"):
                extra = ["--skip-serve-logs"]
            procs.start(component, [airflow, component, *extra], port=args.port if server else None)
        for name in LOG_PORT_SETTINGS:
            log_port = _log_port(procs.env, name)
            cmd = [py, "-m", "airflow_sync_provider.demo.logserver", "--port", str(log_port)]
            procs.start(name, cmd, port=log_port)
        base = f"http://localhost:{args.port}"
        _wait_for(f"{base}/api/v2/monitor/health", HEALTH_TIMEOUT, "Airflow's api-server", procs)
        password = _password(home)
        token = _token(base, password)
        _say("Waiting for the DAGs to be parsed, then unpausing them ...")
        from airflow_sync_provider.sources_file import load_sources, resolve_path

        sources = sorted(load_sources(resolve_path(dags / "sources.yaml")))
        dag_ids = [ADMIN_DAG_ID, *(f"sync_{s}" for s in sources)]
        first = _unpause_and_start(
            lambda path, body=None, method="": _api(base, path, token, body, method),
            dag_ids,
            trigger=not args.no_trigger,
        )
        _say(first.line(len(dag_ids)))
        print(_banner(base, password, demo_url, home, time.monotonic() - started), flush=True)
        return _watch(base, password, token, procs)
    except KeyboardInterrupt as exc:
        with contextlib.suppress(OSError):
            print(flush=True)
        if isinstance(exc, Hangup):
            _say(f"{exc}: stopping the demo")
        return 0
    finally:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the terminal is going: finish stopping regardless
        taken = procs.stop(_say)
        if taken:
            _say(f"Stopped in {taken:.1f}s.")
        if not any(c.proc.poll() is None for c in procs.children):
            leftovers.forget(home)


def _shown(path: Path) -> str:
    """``path`` as typed from the working directory (relative when it is below it)."""
    cwd = Path.cwd()
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)


def commands(home: Path, demo_url: str, python: str = sys.executable) -> list[tuple[str, str]]:
    """The banner's copy-paste commands (run from the directory `make demo` runs in)."""
    py = _shown(Path(python))
    url = "" if demo_url == FAULT_DEFAULT_URL else f" --url {demo_url}"
    cli = f"AIRFLOW_HOME={_shown(home)} {py} -m airflow_sync_provider"
    return [
        ("break airdrops", f"{py} -m airflow_sync_provider.demo fault outage --source airdrops{url}"),
        ("heal it", f"{py} -m airflow_sync_provider.demo fault none{url}"),
        ("breaker states", f"{cli} states"),
        ("reset its breaker", f"{cli} reset airdrops"),
        ("stop the demo", "make stop   (or Ctrl-C here)"),
    ]


def _banner(base: str, password: str, demo_url: str, home: Path, seconds: float) -> str:
    tries = "\n".join(f"    {what + ':':<19}{command}" for what, command in commands(home, demo_url))
    return (
        f"\n  Airflow UI:     {base}   user admin, password {password}\n"
        f"  Sync breakers:  {base}/plugin/sync-breakers   (Browse → Sync breakers: every source's breaker)\n"
        f"  Demo API:       {demo_url}\n"
        f"  Logs:           {_shown(home / 'demo-logs')}/ (api-server, scheduler, dag-processor, triggerer, "
        "demo-api)\n"
        f"  Try, in another terminal here:\n{tries}\n"
        f"  Ready in {seconds:.0f}s. Events (failed runs, runs that did not sync, breakers, reviews) follow."
        "\n"
    )


def _watch(base: str, password: str, token: str, procs: Processes) -> int:
    """Print one line per event until a component exits (then say which, and return 1)."""
    tokens = [token]

    def fetch(path: str) -> Any:
        try:
            return _api(base, path, tokens[0])
        except urllib.error.HTTPError as exc:
            if exc.code != 401:
                raise
            tokens[0] = _token(base, password)  # the token expired
            return _api(base, path, tokens[0])

    watcher = EventWatcher(fetch)
    next_poll = time.monotonic() + POLL_EVENTS_EVERY
    while (child := procs.exited()) is None:
        PARENT.check()
        if time.monotonic() >= next_poll:
            next_poll = time.monotonic() + POLL_EVENTS_EVERY
            try:
                for line in watcher.poll():
                    _say(line)
            except (urllib.error.URLError, OSError, ValueError):
                pass  # the api-server is busy or restarting: try again at the next poll
        time.sleep(0.5)
    _say(f"{child.name} exited with code {child.proc.returncode}; its log: {child.log}")
    print(tail(child.log), flush=True)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
