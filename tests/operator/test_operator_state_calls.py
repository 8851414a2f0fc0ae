"""Variable calls of a one-page sync through the operator (issue 20): the state is read at the first
admission, not at the start of the task, so the operator costs what the hook costs.

The operator runs in-process (``execute``) on a real ``VariableStateStore`` whose Variable API counts
every call (bench/bulk.py's counter), against the demo API's ``bulk`` source.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from airflow_sync_provider.config import RateLimitConfig
from airflow_sync_provider.config.load import IncrementalConfig
from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.operators.sync import RateLimitedSyncOperator
from airflow_sync_provider.state.store import VariableStateStore
from bench.bulk import CountingVariables
from tests.harness.task_instance import FakeTI
from tests.hook import connect, fast_config

PAGE = 10


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer() as srv:
        yield srv


def one_page_sync(server: DemoServer, monkeypatch: pytest.MonkeyPatch, **config: object) -> CountingVariables:
    connect(monkeypatch, server.url)
    cfg = fast_config(
        "bulk",
        endpoint=f"/bulk?limit={PAGE}&total={PAGE}",
        rate_limit=RateLimitConfig(max_requests=100, window=timedelta(hours=1)),
        **config,
    )
    variables = CountingVariables(latency_s=0.0)
    op = RateLimitedSyncOperator(task_id="sync", source="bulk", config=cfg)
    op.hook = RateLimitedSyncHook(store=VariableStateStore(variable_api=variables))
    result = op.execute({"ti": FakeTI("sync_bulk"), "params": {}})
    assert result["success"] is True and result["items_processed"] == PAGE
    return variables


def test_a_one_page_sync_reads_the_state_at_its_first_request_and_costs_four_calls(
    server: DemoServer, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    variables = one_page_sync(server, monkeypatch)
    # the read at the first admission, its slot's write, the final re-read and write (was 5: a read
    # at the start of the task for the start line, then the admission's re-read)
    assert (variables.gets, variables.sets) == (2, 2)
    lines = capfd.readouterr().out.splitlines()  # structlog writes the operator's log to stdout
    start = [i for i, line in enumerate(lines) if "Syncing bulk: breaker closed 0/5" in line]
    first = [i for i, line in enumerate(lines) if "| GET /bulk" in line]
    assert len(start) == 1 and first and start[0] < first[0]  # the start line, still before the request


def test_an_incremental_sync_reads_its_bookmark_first_then_the_admission_reads_again(
    server: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    incremental = IncrementalConfig(cursor_field="updated_at", param="updated_since")
    variables = one_page_sync(server, monkeypatch, incremental=incremental)
    # the bookmark is read before the first request is built; the admission re-reads (a foreign write
    # between the two must be merged, not overwritten)
    assert (variables.gets, variables.sets) == (3, 2)
