"""The demo API: pagination, every fault mode, the admin API, the request log, shutdown and the CLI."""

from __future__ import annotations

import json
import logging
import math
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from airflow_sync_provider.demo.catalog import BULK_MAX_TOTAL, GENERIC_TOTAL, TOTALS, get_page, make_item
from airflow_sync_provider.demo.faults import FaultError
from airflow_sync_provider.demo.server import DemoServer

SHAPES = {
    "airdrops": {"id", "name", "chain", "token", "ends_at", "reward_usd", "updated_at"},
    "airdrops_upcoming": {"id", "name", "chain", "starts_at", "updated_at"},
    "quests": {"id", "title", "platform", "xp", "deadline", "updated_at"},
    "yield": {"id", "protocol", "chain", "asset", "apy", "tvl_usd", "updated_at"},
    "points": {"id", "program", "points", "multiplier", "season", "updated_at"},
    "sponsored": {"id", "sponsor", "title", "placement", "expires_at", "updated_at"},
    "community": {"id", "title", "submitted_by", "url", "submitted_at", "status", "updated_at"},
    "some_other_source": {"id", "name", "value", "updated_at"},
}
CLI = [sys.executable, "-m", "airflow_sync_provider.demo"]


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer() as srv:
        yield srv


@pytest.fixture
def demo(server: DemoServer) -> Iterator[DemoServer]:
    server.clear_faults()
    server.clear_requests()
    yield server
    server.clear_faults()


def get(demo: DemoServer, path: str, **kwargs: Any) -> requests.Response:
    return requests.get(demo.url + path, timeout=5, **kwargs)


def admin(demo: DemoServer, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, f"{demo.url}/_admin/{path}", timeout=5, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=20)


# -- data and pagination ---------------------------------------------------------------------------------


def test_healthz(demo: DemoServer) -> None:
    response = get(demo, "/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert demo.requests() == []  # health checks are not data requests


@pytest.mark.parametrize("source", sorted(SHAPES))
def test_walk_all_pages_via_next_cursor(demo: DemoServer, source: str) -> None:
    total = TOTALS.get(source, GENERIC_TOTAL)
    ids: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "7", **({"cursor": cursor} if cursor else {})}
        body = get(demo, f"/{source}", params=params).json()
        assert body["total"] == total
        assert all(set(item) == SHAPES[source] for item in body["items"])
        ids += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str)
    assert len(ids) == len(set(ids)) == total
    assert pages == math.ceil(total / 7)


def test_walk_all_pages_via_link_header(demo: DemoServer) -> None:
    url: str | None = f"{demo.url}/airdrops?limit=50"
    ids: list[str] = []
    while url:
        response = requests.get(url, timeout=5)
        ids += [item["id"] for item in response.json()["items"]]
        if "next" in response.links:
            assert response.headers["Link"].endswith('; rel="next"')
            assert response.links["next"]["url"].startswith(f"{demo.url}/airdrops?cursor=")
        else:
            assert "Link" not in response.headers
            assert response.json()["next_cursor"] is None
        url = response.links.get("next", {}).get("url")
    assert len(ids) == len(set(ids)) == TOTALS["airdrops"]


def test_link_is_absolute_from_host_header(demo: DemoServer) -> None:
    response = get(demo, "/quests?limit=10", headers={"Host": "demo.example:9999"})
    assert response.links["next"]["url"] == "http://demo.example:9999/quests?cursor=10&limit=10"


def test_items_are_deterministic_and_realistic(demo: DemoServer) -> None:
    first = get(demo, "/community?limit=5").json()
    assert first == get(demo, "/community?limit=5").json()
    assert first["items"][0] == make_item("community", 0)
    assert {item["status"] for item in first["items"]} == {"pending"}
    assert get(demo, "/airdrops").json()["next_cursor"] == "50"  # default limit 50
    assert get_page("airdrops", None, "500").limit == 200  # max limit


def test_bulk_source_is_sized_by_total_and_carries_it_in_the_link(demo: DemoServer) -> None:
    url: str | None = f"{demo.url}/bulk?limit=200&total=450"
    ids: list[str] = []
    while url:
        response = requests.get(url, timeout=5)
        assert response.json()["total"] == 450
        ids += [item["id"] for item in response.json()["items"]]
        url = response.links.get("next", {}).get("url")
        assert url is None or url.endswith("&total=450")
    assert ids == [make_item("bulk", i)["id"] for i in range(450)]
    assert len(set(ids)) == 450
    assert get(demo, "/bulk?limit=1").json()["total"] == BULK_MAX_TOTAL  # default size
    assert get(demo, "/airdrops?total=5").json()["total"] == TOTALS["airdrops"]  # bulk only
    for bad in ("0", "x", str(BULK_MAX_TOTAL + 1)):
        response = get(demo, f"/bulk?total={bad}")
        assert (response.status_code, response.json()["field"]) == (400, "total")


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "limit"), ("limit=abc", "limit"), ("cursor=zz", "cursor"), ("cursor=999", "cursor")],
)
def test_bad_pagination_params_are_400(demo: DemoServer, query: str, field: str) -> None:
    response = get(demo, f"/yield?{query}")
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_unknown_paths_and_methods(demo: DemoServer) -> None:
    assert get(demo, "/Bad-Name").status_code == 404
    assert get(demo, "/airdrops/extra").status_code == 404
    response = requests.post(f"{demo.url}/airdrops", timeout=5)
    assert (response.status_code, response.headers["Allow"]) == (405, "GET")
    response = admin(demo, "GET", "nope")
    assert (response.status_code, response.json()["path"]) == (404, "/_admin/nope")
    assert admin(demo, "PUT", "faults").status_code == 405


# -- faults ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "status", "retry_after"),
    [
        ({"mode": "outage"}, 503, None),
        ({"mode": "outage", "retry_after": "120"}, 503, "120"),
        ({"mode": "error"}, 500, None),
        ({"mode": "rate_limit"}, 429, "30"),
        (
            {"mode": "rate_limit", "retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"},
            429,
            "Wed, 21 Oct 2015 07:28:00 GMT",
        ),
        ({"mode": "rate_limit", "retry_after": "garbage"}, 429, "garbage"),
        ({"mode": "rate_limit", "retry_after": "-5"}, 429, "-5"),
        ({"mode": "rate_limit", "retry_after": 31536000}, 429, "31536000"),
        ({"mode": "rate_limit", "retry_after": None}, 429, None),
        ({"mode": "not_found"}, 404, None),
        ({"mode": "status", "status_code": 418}, 418, None),
        ({"mode": "status", "status_code": 503, "retry_after": "7"}, 503, "7"),
        ({"mode": "status", "status_code": 204}, 204, None),
    ],
)
def test_status_faults(demo: DemoServer, spec: dict[str, Any], status: int, retry_after: str | None) -> None:
    assert admin(demo, "POST", "faults", json=spec).status_code == 200
    response = get(demo, "/airdrops")
    assert response.status_code == status
    assert response.headers.get("Retry-After") == retry_after


def test_malformed_and_wrong_shape(demo: DemoServer) -> None:
    demo.set_fault("malformed", source="points")
    response = get(demo, "/points")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    demo.set_fault("wrong_shape", source="points")
    assert get(demo, "/points").json() == {"data": 5}


def test_huge_body_is_valid_json_of_at_least_size(demo: DemoServer) -> None:
    demo.set_fault("huge", size_mb=0.5)
    response = get(demo, "/sponsored")
    assert response.status_code == 200
    assert len(response.content) >= 512 * 1024
    items = response.json()["items"]
    assert len(items) == len({item["id"] for item in items}) > TOTALS["sponsored"]


def test_reset_breaks_the_connection_mid_body(demo: DemoServer) -> None:
    demo.set_fault("reset", source="quests", count=1)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        get(demo, "/quests")
    assert get(demo, "/quests").status_code == 200  # the server survives and the fault cleared itself
    assert demo.requests("quests")[0]["aborted"] is True


def test_loop_repeats_the_same_cursor(demo: DemoServer) -> None:
    demo.set_fault("loop", source="yield")
    cursors, links = [], []
    params: dict[str, str] = {"limit": "10"}
    for _ in range(3):
        response = get(demo, "/yield", params=params)
        cursors.append(response.json()["next_cursor"])
        links.append(response.links["next"]["url"])
        params["cursor"] = cursors[-1]
    assert len(set(cursors)) == 1 and len(set(links)) == 1
    assert links[0].endswith(f"?cursor={cursors[0]}&limit=10")


def test_redirect(demo: DemoServer) -> None:
    demo.set_fault("redirect")
    response = get(demo, "/airdrops", allow_redirects=False)
    assert (response.status_code, response.headers["Location"]) == (302, "http://127.0.0.2:9/airdrops")
    demo.set_fault("redirect", location="http://evil.invalid/{source}/x")
    assert get(demo, "/quests", allow_redirects=False).headers["Location"] == "http://evil.invalid/quests/x"


def test_slow_delays_then_answers(demo: DemoServer) -> None:
    demo.set_fault("slow", delay=0.2)
    started = time.monotonic()
    response = get(demo, "/points?limit=3")
    assert time.monotonic() - started >= 0.2
    assert response.json()["items"] == [make_item("points", i) for i in range(3)]


def test_trickle_sends_a_valid_body_slowly(demo: DemoServer) -> None:
    demo.set_fault("trickle", delay=0.02, chunk_size=200)
    expected = get(demo, "/healthz")  # warm up the connection pool path
    assert expected.status_code == 200
    started = time.monotonic()
    response = get(demo, "/airdrops?limit=5")
    elapsed = time.monotonic() - started
    chunks = math.ceil(len(response.content) / 200)
    assert chunks >= 4 and elapsed >= (chunks - 1) * 0.02
    demo.clear_faults()
    assert response.json() == get(demo, "/airdrops?limit=5").json()


def test_count_auto_clears(demo: DemoServer) -> None:
    demo.set_fault("outage", source="quests", count=2)
    assert get(demo, "/quests").status_code == 503
    assert demo.faults() == [{"mode": "outage", "source": "quests", "remaining": 1, "retry_after": None}]
    assert get(demo, "/quests").status_code == 503
    assert get(demo, "/quests").status_code == 200
    assert demo.faults() == []


def test_per_source_faults_and_precedence(demo: DemoServer) -> None:
    demo.set_fault("outage", source="quests")
    assert get(demo, "/quests").status_code == 503
    assert get(demo, "/airdrops").status_code == 200
    demo.set_fault("error")  # global; the source's own fault wins
    assert get(demo, "/quests").status_code == 503
    assert get(demo, "/airdrops").status_code == 500
    assert demo.clear_faults("quests") == 1
    assert get(demo, "/quests").status_code == 500


def test_admin_fault_lifecycle_over_http(demo: DemoServer) -> None:
    answer = admin(demo, "POST", "faults", json={"mode": "rate_limit", "source": "yield", "count": 3}).json()
    assert answer["fault"] == {"mode": "rate_limit", "source": "yield", "remaining": 3, "retry_after": "30"}
    admin(demo, "POST", "faults", json={"mode": "slow", "delay": 1})
    assert len(admin(demo, "GET", "faults").json()["faults"]) == 2
    assert admin(demo, "DELETE", "faults?source=yield").json() == {"cleared": 1, "faults": demo.faults()}
    assert [f["mode"] for f in demo.faults()] == ["slow"]
    assert admin(demo, "POST", "faults", json={"mode": "none"}).json()["cleared"] == 1
    demo.set_fault("error", source="points")
    assert admin(demo, "DELETE", "faults").json() == {"cleared": 1, "faults": []}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "mode"),
        ({"mode": "explode"}, "mode"),
        ({"mode": "outage", "count": 0}, "count"),
        ({"mode": "outage", "count": "3"}, "count"),
        ({"mode": "outage", "count": True}, "count"),
        ({"mode": "outage", "source": "Bad-Name"}, "source"),
        ({"mode": "slow", "delay": -1}, "delay"),
        ({"mode": "trickle", "chunk_size": 0}, "chunk_size"),
        ({"mode": "huge", "size_mb": 0}, "size_mb"),
        ({"mode": "status"}, "status_code"),
        ({"mode": "status", "status_code": 99}, "status_code"),
        ({"mode": "rate_limit", "retry_after": "1\r\nX-Evil: 1"}, "retry_after"),
        ({"mode": "rate_limit", "retry-after": "5"}, "retry-after"),
        ({"mode": "error", "delay": 1}, "delay"),
        ({"mode": "redirect", "location": ""}, "location"),
    ],
)
def test_bad_fault_input_is_400_naming_the_field(demo: DemoServer, spec: dict[str, Any], field: str) -> None:
    response = admin(demo, "POST", "faults", json=spec)
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == field and field in body["error"]
    assert body["value"] == spec.get(field)
    with pytest.raises(FaultError) as excinfo:
        demo.set_fault(**{"mode": None, **spec})
    assert excinfo.value.field == field
    assert demo.faults() == []


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]"])
def test_fault_body_must_be_a_json_object(demo: DemoServer, raw: bytes) -> None:
    response = admin(demo, "POST", "faults", data=raw)
    assert (response.status_code, response.json()["field"]) == (400, "body")
    assert admin(demo, "DELETE", "faults?source=Bad-Name").json()["field"] == "source"


# -- request log -----------------------------------------------------------------------------------------


def test_request_log_records_headers_and_values(demo: DemoServer) -> None:
    get(demo, "/healthz")
    admin(demo, "GET", "faults")
    get(demo, "/airdrops?limit=2", headers={"Authorization": "Bearer s3cret", "X-API-Key": "k-123"})
    demo.set_fault("outage", source="quests")
    get(demo, "/quests")
    first, second = demo.requests()
    assert first["source"] == "airdrops" and first["path"] == "/airdrops?limit=2"
    assert (first["method"], first["status"], first["fault"], first["aborted"]) == ("GET", 200, None, False)
    assert first["start"] <= first["end"]
    assert first["authorization"] is True
    assert first["headers"]["Authorization"] == "Bearer s3cret"
    assert first["headers"]["X-API-Key"] == "k-123"
    assert {"Authorization", "X-API-Key", "Host", "User-Agent"} <= set(first["header_names"])
    assert (second["status"], second["fault"], second["authorization"]) == (503, "outage", False)
    over_http = admin(demo, "GET", "requests").json()
    assert over_http == {"requests": demo.requests(), "max_concurrency": {"airdrops": 1, "quests": 1}}
    assert [e["source"] for e in admin(demo, "GET", "requests?source=quests").json()["requests"]] == [
        "quests"
    ]
    assert admin(demo, "DELETE", "requests").json() == {"cleared": 2}
    assert demo.requests() == [] and demo.max_concurrency("airdrops") == 0


def test_max_concurrency_of_three_slow_requests(demo: DemoServer) -> None:
    demo.set_fault("slow", source="yield", delay=0.3)
    with ThreadPoolExecutor(max_workers=3) as pool:
        statuses = list(pool.map(lambda _: get(demo, "/yield").status_code, range(3)))
    assert statuses == [200, 200, 200]
    assert demo.max_concurrency("yield") == 3  # they ran side by side
    assert demo.max_concurrency("airdrops") == 0
    assert admin(demo, "GET", "requests").json()["max_concurrency"] == {"yield": 3}


# -- lifecycle -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["slow", "trickle"])
def test_stop_is_prompt_with_a_request_in_flight(mode: str) -> None:
    srv = DemoServer().start()
    options: dict[str, Any] = {"chunk_size": 16} if mode == "trickle" else {}
    srv.set_fault(mode, delay=30, **options)
    outcome: list[Any] = []

    def client() -> None:
        try:
            outcome.append(requests.get(f"{srv.url}/airdrops", timeout=10).status_code)
        except requests.RequestException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    deadline = time.monotonic() + 2
    while not srv.requests() and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 1
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert isinstance(outcome[0], requests.RequestException)
    srv.stop()  # idempotent


def test_a_client_hanging_up_is_one_quiet_line_not_a_traceback(
    demo: DemoServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that resets its connection mid-request (a sync timing out in an outage) is expected."""
    caplog.set_level(logging.INFO, logger="airflow_sync_provider.demo.server")
    demo.set_fault("outage", source="airdrops")
    with socket.create_connection(("127.0.0.1", demo.port)) as sock:
        sock.sendall(b"GET /airdrops HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
    deadline = time.monotonic() + 5
    while not any("hung up" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert any("hung up (ConnectionResetError)" in r.getMessage() for r in caplog.records)
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING] == []
    assert get(demo, "/airdrops").status_code == 503  # and the server still serves


def test_lifecycle_errors() -> None:
    srv = DemoServer()
    with pytest.raises(RuntimeError):
        _ = srv.url
    with srv:
        assert srv.url == f"http://127.0.0.1:{srv.port}"
        with pytest.raises(RuntimeError):
            srv.start()


# -- CLI -------------------------------------------------------------------------------------------------


def test_cli_fault_and_faults_against_a_running_server(demo: DemoServer) -> None:
    result = run_cli(
        "fault", "outage", "--source", "quests", "--count", "2", "--retry-after=-5", "--url", demo.url
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["fault"] == {
        "mode": "outage",
        "source": "quests",
        "remaining": 2,
        "retry_after": "-5",
    }
    response = get(demo, "/quests")
    assert (response.status_code, response.headers["Retry-After"]) == (503, "-5")
    listed = run_cli("faults", "--url", demo.url)
    assert json.loads(listed.stdout)["faults"][0]["remaining"] == 1
    assert run_cli("fault", "none", "--url", demo.url).returncode == 0
    assert demo.faults() == []


def test_cli_reports_the_server_400(demo: DemoServer) -> None:
    result = run_cli("fault", "error", "--delay", "1", "--url", demo.url)
    assert result.returncode == 1
    assert json.loads(result.stdout)["field"] == "delay"


def test_cli_against_a_closed_port_is_a_clean_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli("fault", "outage", "--url", url)
    assert result.returncode == 2
    assert result.stdout == ""
    assert url in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_serve_logs_requests_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        url = banner.split()[4]
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=5)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "stopped" in out
    assert '"GET /healthz" 200' in err and "Traceback" not in err


def test_cli_help() -> None:
    result = run_cli("fault", "--help")
    assert result.returncode == 0
    assert "rate_limit" in result.stdout and "--retry-after" in result.stdout
