"""The breaker dashboard served by a REAL ``airflow api-server`` (SimpleAuthManager, session DB).

One api-server for the module (startup is the slow part); every check talks HTTP to it, and the
screenshot test loads the page in headless Chromium with the session cookie the Airflow UI uses.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from airflow_sync_provider.config import DEFAULT_SYNC_CONFIGS, SyncConfig
from airflow_sync_provider.policy import shares as sh
from airflow_sync_provider.policy.breaker import BreakerSnapshot, BreakerState
from airflow_sync_provider.policy.quota import Quota
from airflow_sync_provider.state.store import SourceState, VariableStateStore
from tests.cli.admin_dag_deploy import admin_runs, deploy_admin_dag
from tests.harness.airflow_cli import AIRFLOW, airflow_env

ORPHAN = "dash_legacy"  # a source known only from its sync_state_* Variable
SEEDED = ("airdrops", "quests", "sponsored", "yield", ORPHAN)
ROUTES = (("GET", "/sync-provider/"), ("GET", "/sync-provider/api/states"))
RESET = "/sync-provider/api/states/{}/reset"
STARTUP_TIMEOUT = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ApiServer:
    url: str
    tokens: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, user: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kwargs)


ENCODED_ERROR = "GET /airdrops?updated_since=2026-12-05T01%3A24%3A27Z&limit=50 -> 503 Service Unavailable"


def seed_states(now: float) -> None:
    """Open, half-open, busy-window and healthy sources, plus a Variable-only one."""
    from airflow.models import Variable

    store = VariableStateStore(variable_api=Variable)
    failed = {
        "source": "airdrops",
        "success": False,
        "items_processed": 0,
        "duration_ms": 1200,
        "error": "http_error",
        "error_message": "GET /airdrops -> 503 Service Unavailable",
        "retry_count": 3,
        "started_at": "2026-01-05T10:00:00+00:00",
    }
    ok = {
        **failed,
        "source": "yield",
        "success": True,
        "items_processed": 42,
        "error": None,
        "items_loaded": 42,
        "destination": "duckdb sync.yield",
        "bookmark": "2026-01-05T09:58:00Z",
    }
    store.save(
        SourceState(
            "airdrops",
            BreakerSnapshot(
                BreakerState.OPEN,
                failure_count=5,
                opened_at=now - 60,
                last_error=ENCODED_ERROR,
                last_failure_at=now - 60,
            ),
            last_result=failed,
            updated_at=now,
        )
    )
    # the API advertised 50 per day (its headers, issue 19), 20 of them used: the fullest window
    day = sh.of([sh.Share("seed0001", 1, tuple(now - 7200 - i for i in range(20)))])
    store.save(
        SourceState(
            "quests",
            BreakerSnapshot(
                BreakerState.HALF_OPEN, failure_count=5, opened_at=now - 400, half_open_since=now - 5
            ),
            updated_at=now,
            extra_windows=((86400.0, day),),
            learned_windows=((86400.0, 50, now + 86400),),
        )
    )
    # the API said 4 of its 10 are left until an hour from now (learned quota, issue 11)
    learned = Quota(remaining=4, reset_at=now + 3600, limit=10, observed_at=now)
    store.save(
        SourceState("sponsored", window=tuple(now - i for i in range(90)), quota=learned, updated_at=now)
    )
    # healthy again (a reset or a success since), the error of before still recorded: labelled stale
    stale = BreakerSnapshot(last_error="GET /yield -> 502 Bad Gateway", last_failure_at=now - 3600)
    store.save(SourceState("yield", stale, last_result=ok, updated_at=now))
    store.save(SourceState(ORPHAN, BreakerSnapshot(failure_count=2), updated_at=now))


def delete_seeded() -> None:
    from airflow.models import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        keys = [f"sync_state_{s}" for s in SEEDED]
        session.query(Variable).filter(Variable.key.in_(keys)).delete(synchronize_session=False)


@pytest.fixture(scope="module")
def api_server(airflow_db: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    deploy_admin_dag()
    seed_states(time.time())
    port = free_port()
    log_path = tmp_path_factory.mktemp("api-server") / "api-server.log"
    env = airflow_env(
        AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin,viewer:viewer",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="false",
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        AIRFLOW__API__SECRET_KEY=secrets.token_hex(32),
    )
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    server = ApiServer(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"api-server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if requests.get(server.url + "/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"api-server not healthy after {STARTUP_TIMEOUT}s:\n{log_path.read_text()[-4000:]}"
                )
            time.sleep(1)
        # SimpleAuthManager writes the passwords it generated here (ARCHITECTURE section 4)
        passwords_file = Path(os.environ["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        passwords = json.loads(passwords_file.read_text())
        for user in ("admin", "viewer"):
            answer = requests.post(
                server.url + "/auth/token", json={"username": user, "password": passwords[user]}, timeout=60
            )
            assert answer.status_code == 201, answer.text
            server.tokens[user] = answer.json()["access_token"]
        yield server
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        delete_seeded()


# -- auth ---------------------------------------------------------------------------------------


@pytest.mark.airflow
def test_every_route_refuses_requests_without_a_token(api_server: ApiServer) -> None:
    runs_before = len(admin_runs())
    for method, path in (*ROUTES, ("POST", RESET.format("airdrops"))):
        answer = api_server.request(method, path)
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.json() == {"detail": "Not authenticated"}
    # a forged token is refused too
    forged = requests.get(
        api_server.url + "/sync-provider/api/states",
        headers={"Authorization": "Bearer not.a.jwt"},
        timeout=60,
    )
    assert forged.status_code in (401, 403)
    assert len(admin_runs()) == runs_before


@pytest.mark.airflow
def test_viewer_may_read_but_not_reset(api_server: ApiServer) -> None:
    runs_before = len(admin_runs())
    answer = api_server.request("GET", "/sync-provider/api/states", "viewer")
    assert answer.status_code == 200
    assert answer.json()["can_reset"] is False
    assert api_server.request("GET", "/sync-provider/", "viewer").status_code == 200

    refused = api_server.request("POST", RESET.format("airdrops"), "viewer")
    assert refused.status_code == 403
    assert refused.json() == {"detail": "Forbidden"}
    assert len(admin_runs()) == runs_before


# -- states ---------------------------------------------------------------------------------------


@pytest.mark.airflow
def test_states_list_every_default_source_and_variable_only_ones(api_server: ApiServer) -> None:
    answer = api_server.request("GET", "/sync-provider/api/states", "admin")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    states = {s["source"]: s for s in body["states"]}
    assert set(DEFAULT_SYNC_CONFIGS) | {ORPHAN} <= set(states)
    assert body["can_reset"] is True
    assert body["admin_dag"] == {"dag_id": "sync_admin", "present": True, "paused": True}

    airdrops = states["airdrops"]
    assert (airdrops["state"], airdrops["failure_count"], airdrops["failure_threshold"]) == ("open", 5, 5)
    assert airdrops["last_error"] == ENCODED_ERROR  # as recorded; the page decodes it
    reset_timeout = DEFAULT_SYNC_CONFIGS["airdrops"].circuit_breaker.reset_timeout.total_seconds()
    assert airdrops["next_probe_at"] == pytest.approx(airdrops["opened_at"] + reset_timeout, abs=1e-3)
    assert airdrops["last_result"]["error"] == "http_error"
    quests = states["quests"]
    assert quests["state"] == "half-open"
    assert (quests["window_requests"], quests["window_max_requests"], quests["window_seconds"]) == (
        20,
        50,
        86400,
    )
    assert [(w["requests"], w["max_requests"]) for w in quests["learned_windows"]] == [(20, 50)]
    sponsored = states["sponsored"]
    assert (sponsored["window_requests"], sponsored["window_max_requests"]) == (90, 120)
    assert sponsored["window_usage"] == pytest.approx(0.75)
    assert (sponsored["api_remaining"], sponsored["api_limit"]) == (4, 10)
    assert (airdrops["api_remaining"], airdrops["api_limit"]) == (None, None)
    assert states["yield"]["last_result"]["items_processed"] == 42
    assert (states["yield"]["last_error_stale"], airdrops["last_error_stale"]) == (True, False)
    # no sync DAG is deployed in this DB: no next run to show, and the page says so
    assert (airdrops["next_run_at"], airdrops["paused"]) == (None, None)
    orphan = states[ORPHAN]
    default_limit = SyncConfig(source=ORPHAN).rate_limit.max_requests
    assert (orphan["state"], orphan["failure_count"], orphan["window_max_requests"]) == (
        "closed",
        2,
        default_limit,
    )
    untouched = states["points"]
    assert (untouched["state"], untouched["failure_count"], untouched["last_result"]) == ("closed", 0, None)


@pytest.mark.airflow
def test_page_is_served_as_html_with_bearer_or_session_cookie(api_server: ApiServer) -> None:
    answer = api_server.request("GET", "/sync-provider/", "admin")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "<title>Sync breakers</title>" in answer.text
    assert 'fetch(BASE + "api/states"' in answer.text
    # the browser's way: the Airflow UI's HttpOnly session cookie
    with_cookie = requests.get(
        api_server.url + "/sync-provider/", cookies={"_token": api_server.tokens["viewer"]}, timeout=60
    )
    assert with_cookie.status_code == 200
    assert with_cookie.text == answer.text


@pytest.mark.airflow
def test_plugin_is_listed_with_its_external_view(api_server: ApiServer) -> None:
    answer = api_server.request("GET", "/api/v2/plugins", "admin")
    assert answer.status_code == 200
    plugin = next(p for p in answer.json()["plugins"] if p["name"] == "sync_provider")
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/sync-provider"]
    view = plugin["external_views"][0]
    assert (view["name"], view["href"], view["url_route"], view["destination"], view["category"]) == (
        "Sync breakers",
        "sync-provider/",
        "sync-breakers",
        "nav",
        "browse",
    )
    assert api_server.request("GET", "/sync-provider/openapi.json", "admin").status_code == 404


# -- reset ----------------------------------------------------------------------------------------


@pytest.mark.airflow
def test_admin_reset_queues_a_sync_admin_run(api_server: ApiServer) -> None:
    from airflow.models import Variable

    before = len(admin_runs("airdrops"))
    answer = api_server.request("POST", RESET.format("airdrops"), "admin")
    assert answer.status_code == 202, answer.text
    body = answer.json()
    runs: list[Any] = admin_runs("airdrops")
    assert len(runs) == before + 1
    run = runs[-1]
    assert body == {
        "source": "airdrops",
        "dag_id": "sync_admin",
        "dag_run_id": run.run_id,
        "dag_paused": True,
    }
    assert run.conf == {"source": "airdrops", "action": "reset_breaker"}
    assert run.triggering_user_name == "admin"
    assert str(getattr(run.triggered_by, "value", run.triggered_by)) == "rest_api"
    # the plugin never writes the Variable itself: the run does, in the pool sync_airdrops
    state = VariableStateStore(variable_api=Variable).load("airdrops")
    assert (state.breaker.state, state.breaker.failure_count) == (BreakerState.OPEN, 5)


@pytest.mark.airflow
def test_reset_of_unknown_or_unmanaged_sources_is_refused_clearly(api_server: ApiServer) -> None:
    runs_before = len(admin_runs())
    unknown = api_server.request("POST", RESET.format("no_such_source"), "admin")
    assert unknown.status_code == 404
    detail = unknown.json()["detail"]
    assert detail.startswith("unknown source 'no_such_source'; known sources: ")
    assert {"airdrops", ORPHAN} <= set(detail.split("known sources: ", 1)[1].split(", "))

    orphan = api_server.request("POST", RESET.format(ORPHAN), "admin")
    assert orphan.status_code == 409
    assert orphan.json()["detail"] == (
        f"cannot reset {ORPHAN}: the sync_admin DAG has no task reset_breaker_{ORPHAN}: "
        f"'{ORPHAN}' is not in the sources file it was built from"
    )
    assert len(admin_runs()) == runs_before


# -- the page in a browser ------------------------------------------------------------------------


def chromium_binary() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def require_chromium() -> str:
    binary = chromium_binary()
    if binary is not None:
        return binary
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is required under CI=true (.ci/chromium.sh installs it)")
    pytest.skip("chromium is not installed (bash .ci/chromium.sh installs it)")


class _LoginRedirect(http.server.BaseHTTPRequestHandler):
    """Sets the Airflow session cookie like the UI's login does, then redirects to the dashboard.

    Cookies are scoped to the host, not the port, so a cookie set by this helper on 127.0.0.1 is
    sent to the api-server on 127.0.0.1 too. Test-only: the dashboard has no token-in-URL path.
    """

    token = ""
    target = ""

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Set-Cookie", f"_token={self.token}; Path=/; HttpOnly; SameSite=Lax")
        self.send_header("Location", self.target)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def run_chromium(binary: str, url: str, *mode: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=10000",
                "--window-size=1200,700",
                *mode,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, bytearray()
    width = height = depth = color = interlace = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    assert (depth, interlace) == (8, 0) and color in (2, 6), (depth, color, interlace)
    bpp = 3 if color == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(bytes(idat))
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind_byte, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind_byte == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind_byte == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind_byte == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind_byte == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line) if bpp == 3 else bytes(v for i, v in enumerate(line) if i % 4 != 3))
        prev = line
    return width, height, rows


def count_near(rows: list[bytes], rgb: tuple[int, int, int], tolerance: int = 24) -> int:
    r0, g0, b0 = rgb
    hits = 0
    for row in rows:
        for i in range(0, len(row), 3):
            if (
                abs(row[i] - r0) <= tolerance
                and abs(row[i + 1] - g0) <= tolerance
                and abs(row[i + 2] - b0) <= tolerance
            ):
                hits += 1
    return hits


@pytest.mark.airflow
def test_page_renders_in_headless_chromium(api_server: ApiServer, tmp_path: Path) -> None:
    binary = require_chromium()
    handler = type(
        "Login",
        (_LoginRedirect,),
        {"token": api_server.tokens["admin"], "target": api_server.url + "/sync-provider/#airdrops"},
    )
    login = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=login.serve_forever, daemon=True).start()
    login_url = f"http://127.0.0.1:{login.server_address[1]}/"
    try:
        dom = run_chromium(binary, login_url, "--dump-dom")
        png = tmp_path / "dashboard.png"
        shot = run_chromium(binary, login_url, f"--screenshot={png}")
    finally:
        login.shutdown()
        login.server_close()

    # the page fetched api/states with the cookie and rendered one row per source
    assert 'data-refresh="ok"' in dom.stdout, dom.stdout[-3000:] + dom.stderr[-3000:]
    for source, state in (
        ("airdrops", "open"),
        ("quests", "half-open"),
        ("points", "closed"),
        (ORPHAN, "closed"),
    ):
        assert f'<tr id="{source}" class="state-{state}' in dom.stdout
    assert '<tr id="airdrops" class="state-open highlight"' in dom.stdout  # the #airdrops anchor
    # usable at 1,000 rows: a filter box, and open, probing and failing sources first
    assert '<input type="search" id="filter"' in dom.stdout
    order = [dom.stdout.index(f'<tr id="{s}"') for s in ("airdrops", "quests", ORPHAN, "points")]
    assert order == sorted(order), order
    assert "sent by the first run after that" in dom.stdout  # a probe is allowed, the next run sends it
    assert "earlier, before the breaker closed: GET /yield -&gt; 502 Bad Gateway" in dom.stdout
    # the last error decoded, on one line, the whole text in its tooltip; times as Airflow shows them
    airdrops_row = dom.stdout[dom.stdout.index('<tr id="airdrops"') :].split("</tr>", 1)[0]
    shown = "GET /airdrops?updated_since=2026-12-05T01:24:27Z&amp;limit=50 -&gt; 503 Service Unavailable"
    assert f'<td class="one-line small last-error" title="{shown}">{shown}</td>' in airdrops_row, airdrops_row
    assert re.search(r'<td class="when">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</td>', airdrops_row), airdrops_row
    assert "<th>Opened at (UTC)</th>" in dom.stdout and " AM" not in dom.stdout and " PM" not in dom.stdout
    # the API's own remaining count under sponsored's window bar, and only there
    assert dom.stdout.count('class="api-left') == 1
    sponsored_row = dom.stdout[dom.stdout.index('<tr id="sponsored"') :].split("</tr>", 1)[0]
    assert "API 4/10 left</div>" in sponsored_row
    # the window the API advertised, under quests' bar, and the fullest window says its length
    quests_row = dom.stdout[dom.stdout.index('<tr id="quests"') :].split("</tr>", 1)[0]
    assert "20/50 per 1d (40%)" in quests_row and "learned 20/50 per 1d until " in quests_row
    assert dom.stdout.count('class="learned') == 1
    # where yield's last sync landed its items, and the bookmark it left
    yield_row = dom.stdout[dom.stdout.index('<tr id="yield"') :].split("</tr>", 1)[0]
    assert "42 loaded -&gt; duckdb sync.yield · bookmark 2026-01-05T09:58:00Z" in yield_row

    assert png.is_file(), shot.stderr[-3000:]
    if os.environ.get("SYNC_DASHBOARD_SCREENSHOT"):
        shutil.copyfile(png, os.environ["SYNC_DASHBOARD_SCREENSHOT"])
    data = png.read_bytes()
    assert len(data) > 10_000
    width, height, rows = decode_png(data)
    assert (width, height) == (1200, 700)
    # badge colours: open red, half-open amber, closed green, all present
    for colour in ((0xD9, 0x30, 0x25), (0xE8, 0xA2, 0x00), (0x1E, 0x8E, 0x3E)):
        assert count_near(rows, colour) > 300, colour


# -- pieces that need no server -------------------------------------------------------------------


def test_plugin_import_does_not_touch_the_db(tmp_path: Path) -> None:
    code = (
        "from airflow_sync_provider.plugins.dashboard import SyncDashboardPlugin as P; "
        "print(P.fastapi_apps[0]['url_prefix'], P.external_views[0]['url_route'])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=airflow_env(AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path}/missing/dir/x.db"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "/sync-provider sync-breakers"


def test_extra_link_points_at_the_source_row(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_sync_provider.operators.links import SyncDashboardLink
    from airflow_sync_provider.provider_info import get_provider_info

    link = SyncDashboardLink()
    assert link.name == "Sync dashboard"
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    assert link.get_link(SimpleNamespace(source="airdrops"), ti_key=None) == "/sync-provider/#airdrops"
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/team-a/")
    assert link.get_link(SimpleNamespace(source="yield"), ti_key=None) == "/team-a/sync-provider/#yield"
    assert "airflow_sync_provider.operators.links.SyncDashboardLink" in get_provider_info()["extra-links"]


def test_extra_link_survives_dag_serialization() -> None:
    """What the UI gets: the serialized task names the link and the XCom key the worker fills."""
    import datetime

    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    from airflow_sync_provider.operators.links import SyncDashboardLink
    from airflow_sync_provider.operators.sync import RateLimitedSyncOperator

    class LinkedSync(RateLimitedSyncOperator):
        operator_extra_links = (SyncDashboardLink(),)

    with DAG("link_roundtrip", schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
        LinkedSync(task_id="sync", source="airdrops")
    restored = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    links = [(link.name, link.xcom_key) for link in restored.get_task("sync").operator_extra_links]
    assert links == [("Sync dashboard", "_link_SyncDashboardLink")]
