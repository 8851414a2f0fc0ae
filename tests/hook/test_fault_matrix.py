"""The fault matrix (issue 7, item 1): one row per fault, each with its exact expected outcome.

Every row runs one sync through the real ``RateLimitedSyncOperator`` (``sync_once``: ``execute`` with
a minimal context, an in-memory state store and a fake clock) of a source against the demo API with a
fault switched on (or against a scripted server, or a closed port) and checks: the result kind, how
many requests the server received, the breaker after the sync, the retries, the exact waits, and the
task state ``execute`` gave (returned: success; ``AirflowSkipException``: skipped;
``AirflowFailException``: failed). ``docs/faults.md`` is the same table for readers; the last test
keeps the two in step.

Common settings (``BASE``): 3 retries, backoff 1 s, 2 s, 4 s without jitter, breaker threshold 5,
``max_wait`` 5 min, every wait slept (recorded), 10 s timeout (0.3 s in the timeout rows).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_sync_provider.config import CircuitBreakerConfig, RateLimitConfig
from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.policy.breaker import BreakerSnapshot, BreakerState
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState
from tests.hook import (
    SHORT_TIMEOUT,
    T0,
    FakeClock,
    Reply,
    ScriptedServer,
    Sleeps,
    closed_port,
    connect,
    fast_config,
    http_date,
    make_hook,
    settled_requests,
    stored,
    sync_once,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "faults.md"
SECOND = timedelta(seconds=1)
CLOSED, OPEN = BreakerState.CLOSED, BreakerState.OPEN
K = SyncErrorKind
RETRIED = (1.0, 2.0, 4.0)
TEN_MB = 10 * 1024 * 1024


@dataclass(frozen=True)
class Row:
    id: str
    fault: dict[str, Any] | None
    """``DemoServer.set_fault`` arguments (``{other}``/``{self}`` in a location become server URLs)."""
    kind: SyncErrorKind | None
    received: int
    """Requests the server received (all attempts, pages and redirects)."""
    breaker: tuple[BreakerState, int]
    retries: int
    sleeps: tuple[float, ...]
    task: str
    source: str = "sponsored"
    config: dict[str, Any] = field(default_factory=dict)
    target: str = "demo"
    """``demo``, ``script`` (a ``ScriptedServer`` answering ``script``) or ``refused`` (a closed port)."""
    script: tuple[Reply, ...] = ()
    seed: dict[str, Any] | None = None
    """The source's stored state before the sync (``SourceState`` fields)."""
    aborted_bodies: bool = False
    """The client hung up mid-body on every request (the server's log marks them aborted)."""


def persistent(mode: str, **options: Any) -> dict[str, Any]:
    return {"mode": mode, **options}


def once(mode: str, count: int = 1, **options: Any) -> dict[str, Any]:
    return {"mode": mode, "count": count, **options}


SHORT = {"timeout": SHORT_TIMEOUT, "max_retries": 1}
YEAR = 365 * 86400

ROWS = [
    Row("500", persistent("error"), K.HTTP_ERROR, 4, (CLOSED, 4), 3, RETRIED, "failed"),
    Row("500-twice-then-ok", once("error", 2), None, 3, (CLOSED, 0), 2, (1.0, 2.0), "success"),
    Row(
        "500-until-breaker-opens",
        persistent("error"),
        K.HTTP_ERROR,
        3,
        (OPEN, 3),
        2,
        (1.0, 2.0),
        "failed",
        config={"circuit_breaker": CircuitBreakerConfig(failure_threshold=3), "max_retries": 5},
    ),
    Row("503", persistent("outage"), K.HTTP_ERROR, 4, (CLOSED, 4), 3, RETRIED, "failed"),
    Row(
        "503-retry-after",
        persistent("outage", retry_after="3"),
        K.HTTP_ERROR,
        4,
        (CLOSED, 4),
        3,
        (3.0, 3.0, 4.0),
        "failed",
    ),
    Row(
        "503-retry-after-once",
        once("outage", retry_after="10"),
        None,
        2,
        (CLOSED, 0),
        1,
        (10.0,),
        "success",
    ),
    Row("408", persistent("status", status_code=408), K.HTTP_ERROR, 4, (CLOSED, 4), 3, RETRIED, "failed"),
    Row(
        "429",
        persistent("rate_limit", retry_after=None),
        K.RATE_LIMITED,
        4,
        (CLOSED, 0),
        3,
        RETRIED,
        "failed",
    ),
    Row(
        "429-retry-after-seconds",
        once("rate_limit", retry_after="7"),
        None,
        2,
        (CLOSED, 0),
        1,
        (7.0,),
        "success",
    ),
    Row(
        "429-retry-after-date",
        once("rate_limit", retry_after=http_date(T0 + 20)),
        None,
        2,
        (CLOSED, 0),
        1,
        (20.0,),
        "success",
    ),
    Row(
        "429-retry-after-garbage",
        persistent("rate_limit", retry_after="soon"),
        K.RATE_LIMITED,
        4,
        (CLOSED, 0),
        3,
        RETRIED,
        "failed",
    ),
    Row(
        "429-retry-after-negative",
        persistent("rate_limit", retry_after="-30"),
        K.RATE_LIMITED,
        4,
        (CLOSED, 0),
        3,
        RETRIED,
        "failed",
    ),
    Row(
        "429-retry-after-one-year",
        persistent("rate_limit", retry_after=str(YEAR)),
        K.RATE_LIMITED,
        1,
        (CLOSED, 0),
        0,
        (),
        "failed",
    ),
    Row(
        "429-retry-after-date-next-year",
        persistent("rate_limit", retry_after=http_date(T0 + YEAR)),
        K.RATE_LIMITED,
        1,
        (CLOSED, 0),
        0,
        (),
        "failed",
    ),
    Row(
        "timeout", persistent("slow", delay=0.6), K.TIMEOUT, 2, (CLOSED, 2), 1, (1.0,), "failed", config=SHORT
    ),
    Row(
        "connection-refused",
        None,
        K.CONNECTION_ERROR,
        0,
        (CLOSED, 4),
        3,
        RETRIED,
        "failed",
        target="refused",
    ),
    Row(
        "connection-reset-mid-body",
        persistent("reset"),
        K.CONNECTION_ERROR,
        4,
        (CLOSED, 4),
        3,
        RETRIED,
        "failed",
    ),
    Row(
        "slow-trickle",
        persistent("trickle", delay=0.1, chunk_size=64),
        K.TIMEOUT,
        2,
        (CLOSED, 2),
        1,
        (1.0,),
        "failed",
        config=SHORT,
        aborted_bodies=True,
    ),
    Row(
        "trickle-stall",
        persistent("trickle", delay=0.6, chunk_size=256),
        K.TIMEOUT,
        2,
        (CLOSED, 2),
        1,
        (1.0,),
        "failed",
        config=SHORT,
        aborted_bodies=True,
    ),
    Row("body-10mb", persistent("huge", size_mb=10), K.INVALID_RESPONSE, 1, (CLOSED, 1), 0, (), "failed"),
    Row(
        "body-10mb-chunked",
        None,
        K.INVALID_RESPONSE,
        1,
        (CLOSED, 1),
        0,
        (),
        "failed",
        target="script",
        script=(Reply(body=b'{"items": [' + b" " * TEN_MB + b"]}", chunked=True),),
    ),
    Row("non-json", persistent("malformed"), K.INVALID_RESPONSE, 1, (CLOSED, 1), 0, (), "failed"),
    Row("wrong-shape", persistent("wrong_shape"), K.INVALID_RESPONSE, 1, (CLOSED, 1), 0, (), "failed"),
    Row(
        "maintenance-page-200",
        None,
        K.INVALID_RESPONSE,
        1,
        (CLOSED, 1),
        0,
        (),
        "failed",
        target="script",
        script=(Reply(body=b"<html><body>Down for maintenance</body></html>"),),
    ),
    Row(
        "unusable-body-not-a-failure",
        persistent("wrong_shape"),
        K.INVALID_RESPONSE,
        1,
        (CLOSED, 0),
        0,
        (),
        "failed",
        config={"invalid_response_is_failure": False},
    ),
    Row("pagination-loop-link", persistent("loop"), K.INVALID_RESPONSE, 2, (CLOSED, 0), 0, (), "failed"),
    Row(
        "pagination-loop-cursor",
        None,
        K.INVALID_RESPONSE,
        3,
        (CLOSED, 0),
        0,
        (),
        "failed",
        target="script",
        script=(Reply.page([{"id": 1}], "a"), Reply.page([{"id": 2}], "b"), Reply.page([{"id": 3}], "a")),
    ),
    Row(
        "redirect-other-host",
        persistent("redirect", location="{other}/sponsored"),
        K.INVALID_RESPONSE,
        1,
        (CLOSED, 0),
        0,
        (),
        "failed",
    ),
    Row(
        "redirect-same-host",
        once("redirect", location="{self}/sponsored?limit=20"),
        None,
        2,
        (CLOSED, 0),
        0,
        (),
        "success",
    ),
    Row(
        "redirect-loop",
        persistent("redirect", location="{self}/sponsored"),
        K.INVALID_RESPONSE,
        1,
        (CLOSED, 0),
        0,
        (),
        "failed",
    ),
    Row(
        "redirect-too-many-hops",
        None,
        K.INVALID_RESPONSE,
        6,
        (CLOSED, 0),
        0,
        (),
        "failed",
        target="script",
        script=tuple(Reply(status=302, headers={"Location": f"/sponsored?hop={n}"}) for n in range(1, 9)),
    ),
    Row(
        "redirect-malformed-location",
        None,
        K.INVALID_RESPONSE,
        1,
        (CLOSED, 0),
        0,
        (),
        "failed",
        target="script",
        script=(Reply(status=302, headers={"Location": "http://127.0.0.1:99999/sponsored"}),),
    ),
    Row(
        "next-link-other-host",
        None,
        K.INVALID_RESPONSE,
        1,
        (CLOSED, 0),
        0,
        (),
        "failed",
        target="script",
        script=(Reply.page([{"id": 1}], Link='<http://127.0.0.2:9/sponsored?cursor=2>; rel="next"'),),
    ),
    Row("404", persistent("not_found"), K.HTTP_ERROR, 1, (CLOSED, 0), 0, (), "failed"),
    Row(
        "max-pages",
        None,
        None,
        2,
        (CLOSED, 0),
        0,
        (),
        "success",
        source="airdrops",
        config={"max_pages": 2},
    ),
    Row(
        "max-sync-duration",
        persistent("error"),
        K.TIMEOUT,
        3,
        (CLOSED, 3),
        2,
        (1.0, 2.0),
        "failed",
        config={"max_sync_duration": 5 * SECOND, "max_retries": 5},
    ),
    Row(
        "breaker-open",
        None,
        K.CIRCUIT_BREAKER_OPEN,
        0,
        (OPEN, 5),
        0,
        (),
        "skipped",
        seed={"breaker": BreakerSnapshot(OPEN, failure_count=5, opened_at=T0 - 10)},
    ),
    Row(
        "window-full",
        None,
        K.RATE_LIMIT_EXCEEDED,
        0,
        (CLOSED, 0),
        0,
        (),
        "skipped",
        config={"rate_limit": RateLimitConfig(max_requests=2, window=timedelta(hours=1))},
        seed={"window": (T0 - 20, T0 - 10)},
    ),
]


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def other_host() -> Iterator[DemoServer]:
    """A second API on another loopback address (another host), to prove redirects never reach it."""
    try:
        srv = DemoServer(host="127.0.0.2").start()
    except OSError:  # platforms without the whole 127/8 on loopback: another port is another origin too
        srv = DemoServer().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_fault(row: Row, server: DemoServer, other_host: DemoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.clear_faults()
    server.clear_requests()
    other_host.clear_requests()
    clock, store = FakeClock(), InMemoryStateStore()
    if row.seed is not None:
        store.save(SourceState(row.source, **row.seed))
    config = fast_config(row.source, **row.config)
    sleeps = Sleeps(clock)

    def run(url: str) -> Any:
        connect(monkeypatch, url)
        return sync_once(make_hook(clock, store), config, clock=clock, sleep=sleeps)

    try:
        if row.fault is not None:
            options = {
                k: v.format(other=other_host.url, self=server.url) if k == "location" else v
                for k, v in row.fault.items()
            }
            server.set_fault(source=row.source, **options)
        if row.target == "script":
            with ScriptedServer(list(row.script)) as scripted:
                outcome = run(scripted.url)
            received = len(scripted.log)
        elif row.target == "refused":
            outcome = run(f"http://127.0.0.1:{closed_port()}")
            received = 0
        else:
            outcome = run(server.url)
            received = len(settled_requests(server, row.source))
    finally:
        server.clear_faults()

    assert (outcome.error.kind if outcome.error else None) == row.kind, outcome.result.error_message
    assert received == row.received
    breaker = stored(store, row.source).breaker
    assert (breaker.state, breaker.failure_count) == row.breaker
    assert outcome.result.retry_count == row.retries
    assert tuple(sleeps) == row.sleeps
    assert all(wait <= config.max_wait / SECOND for wait in sleeps)
    assert outcome.task_state == row.task
    if row.task != "success":  # the operator pushed the result before ending the task
        assert outcome.xcom == outcome.result.to_dict()
    assert outcome.result.success is (row.kind is None)
    assert outcome.result.truncated is (row.id == "max-pages")  # the only row with more pages than allowed
    assert other_host.requests() == []  # nothing ever reaches another host
    if row.target == "demo":
        assert server.requests(None) == server.requests(row.source)  # and nothing another source
        if row.aborted_bodies:
            assert [r["aborted"] for r in settled_requests(server, row.source)] == [True] * row.received


def test_the_docs_table_lists_every_row_with_its_outcome() -> None:
    lines = {
        m.group(1): line
        for line in DOC.read_text().splitlines()
        if (m := re.match(r"\|\s*`([a-z0-9-]+)`", line))
    }
    assert sorted(lines) == sorted(row.id for row in ROWS)
    for row in ROWS:
        cells = [c.strip() for c in lines[row.id].strip("|").split("|")]
        outcome = cells[2]
        assert outcome == (f"`{row.kind.value}`" if row.kind else "success"), row.id
        assert cells[-1] == row.task, row.id
