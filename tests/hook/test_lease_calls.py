"""Variable calls per sync with leased slots (issue 20 item 1), against the demo API's ``bulk`` source.

The state lives in a real ``VariableStateStore`` whose Variable API counts every get and set, as
``bench/bulk.py`` counts them; the sync is the default handler on a ``SyncRun`` (no load).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from airflow_sync_provider.config import RateLimitConfig
from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.hooks.lease import LEASE_MAX
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.state.store import VariableStateStore
from bench.bulk import CountingVariables
from bench.measure import default_sync
from tests.hook import LOG, FakeClock, connect, fast_config

PAGE = 10


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer() as srv:
        yield srv


def calls_for(server: DemoServer, monkeypatch: pytest.MonkeyPatch, pages: int) -> int:
    """Variable calls of one sync of ``pages`` pages (the final write included)."""
    connect(monkeypatch, server.url)
    variables = CountingVariables(latency_s=0.0)
    config = fast_config(
        "bulk",
        endpoint=f"/bulk?limit={PAGE}&total={pages * PAGE}",
        rate_limit=RateLimitConfig(max_requests=10_000, window=timedelta(hours=1)),
        max_pages=pages,
    )
    hook = RateLimitedSyncHook(conn_id="sync_default", store=VariableStateStore(variable_api=variables))
    hook.clock = FakeClock()  # the page rate seen by the guard: pages with no time between them
    _, handled = default_sync(hook, config, LOG, clock=hook.clock)
    assert handled == pages * PAGE
    return variables.calls


def test_a_one_page_sync_reads_at_its_first_admission_and_writes_twice(
    server: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the read at the first admission, its slot's write, and the final re-read and write
    assert calls_for(server, monkeypatch, 1) == 4


def test_extra_pages_cost_a_quarter_call_each_or_less(
    server: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = LEASE_MAX + 1
    extra = calls_for(server, monkeypatch, pages) - calls_for(server, monkeypatch, 1)
    assert extra / (pages - 1) <= 0.25
