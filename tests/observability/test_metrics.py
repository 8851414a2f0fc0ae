"""The six ``sync.*`` metrics: names, values and tags (fake ``Stats``), and a real StatsD run over UDP."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_sync_provider.config import BackoffConfig, CircuitBreakerConfig, SyncConfig
from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.observability import metrics
from airflow_sync_provider.operators.sync import RateLimitedSyncOperator
from airflow_sync_provider.policy.breaker import BreakerSnapshot, BreakerState
from airflow_sync_provider.results import SyncErrorKind, SyncResult
from airflow_sync_provider.state.store import InMemoryStateStore
from tests.harness.airflow_cli import dags_test, install_dag
from tests.harness.fixtures import connection_env
from tests.harness.statsd import UdpListener
from tests.harness.task_instance import FakeTI

ONE_MS = timedelta(milliseconds=1)
DAG_FILE = Path(__file__).with_name("dags") / "obs_sync_dags.py"
SIX = (
    "sync.success",
    "sync.duration",
    "sync.circuit_breaker.state",
    "sync.circuit_breaker.failures",
    "sync.retry_count",
    "sync.rate_limit.usage",
)


class FakeStats:
    """Records every call as (kind, name, value, tags)."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str, float, dict[str, Any] | None]] = []
        self.fail = fail

    def gauge(self, stat: str, value: float, *args: Any, tags: dict[str, Any] | None = None) -> None:
        self._record("gauge", stat, value, tags)

    def timing(self, stat: str, dt: Any, *, tags: dict[str, Any] | None = None) -> None:
        self._record("timing", stat, dt, tags)

    def _record(self, kind: str, stat: str, value: float, tags: dict[str, Any] | None) -> None:
        if self.fail:
            raise OSError("statsd host unreachable")
        self.calls.append((kind, stat, value, tags))


def result(**changes: Any) -> SyncResult:
    fields: dict[str, Any] = {
        "source": "airdrops",
        "success": True,
        "items_processed": 42,
        "duration_ms": 1234,
        "error": None,
        "error_message": None,
        "retry_count": 0,
        "started_at": "2026-01-01T00:00:00+00:00",
    }
    fields.update(changes)
    return SyncResult(**fields)


# -- unit: names, values, tags ------------------------------------------------------------------------


def test_metric_names_are_the_original_six() -> None:
    assert metrics.METRIC_NAMES == SIX


def test_a_successful_sync_sends_all_six_plain_and_tagged() -> None:
    stats = FakeStats()
    metrics.emit_sync(result(), BreakerSnapshot(), 0.25, stats=stats)
    tag = {"source": "airdrops"}
    assert stats.calls == [
        ("gauge", "sync.success.airdrops", 1, None),
        ("gauge", "sync.success", 1, tag),
        ("timing", "sync.duration.airdrops", 1234, None),
        ("timing", "sync.duration", 1234, tag),
        ("gauge", "sync.retry_count.airdrops", 0, None),
        ("gauge", "sync.retry_count", 0, tag),
        ("gauge", "sync.rate_limit.usage.airdrops", 0.25, None),
        ("gauge", "sync.rate_limit.usage", 0.25, tag),
        ("gauge", "sync.circuit_breaker.state.airdrops", 0, None),
        ("gauge", "sync.circuit_breaker.state", 0, tag),
        ("gauge", "sync.circuit_breaker.failures.airdrops", 0, None),
        ("gauge", "sync.circuit_breaker.failures", 0, tag),
    ]


def test_a_failed_sync_with_an_open_breaker() -> None:
    stats = FakeStats()
    failed = result(
        source="quests",
        success=False,
        duration_ms=987,
        error=SyncErrorKind.TIMEOUT,
        error_message="GET /quests timed out after 30s",
        retry_count=3,
    )
    snapshot = BreakerSnapshot(state=BreakerState.OPEN, failure_count=5, opened_at=1.0)
    metrics.emit_sync(failed, snapshot, 2 / 3, stats=stats)
    plain = {name: value for _, name, value, tags in stats.calls if tags is None}
    assert plain == {
        "sync.success.quests": 0,
        "sync.duration.quests": 987,
        "sync.retry_count.quests": 3,
        "sync.rate_limit.usage.quests": 0.6667,
        "sync.circuit_breaker.state.quests": 2,
        "sync.circuit_breaker.failures.quests": 5,
    }
    tagged = {name: (value, tags) for _, name, value, tags in stats.calls if tags is not None}
    assert tagged == {name.rsplit(".", 1)[0]: (value, {"source": "quests"}) for name, value in plain.items()}


@pytest.mark.parametrize(
    ("state", "value"), [(BreakerState.CLOSED, 0), (BreakerState.HALF_OPEN, 1), (BreakerState.OPEN, 2)]
)
def test_breaker_state_values(state: BreakerState, value: int) -> None:
    stats = FakeStats()
    metrics.emit_breaker("yield", BreakerSnapshot(state=state, failure_count=4, opened_at=1.0), stats=stats)
    assert stats.calls == [
        ("gauge", "sync.circuit_breaker.state.yield", value, None),
        ("gauge", "sync.circuit_breaker.state", value, {"source": "yield"}),
        ("gauge", "sync.circuit_breaker.failures.yield", 4, None),
        ("gauge", "sync.circuit_breaker.failures", 4, {"source": "yield"}),
    ]


def test_per_source_name_keeps_statsd_names_valid() -> None:
    assert metrics.per_source_name("sync.success", "airdrops_upcoming") == "sync.success.airdrops_upcoming"
    assert metrics.per_source_name("sync.success", "a b/c") == "sync.success.a_b_c"


def test_a_failing_backend_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    metrics.emit_sync(result(), BreakerSnapshot(), 0.0, stats=FakeStats(fail=True))
    assert caplog.messages == [
        "Could not send metrics sync.success, sync.duration, sync.retry_count, sync.rate_limit.usage, "
        "sync.circuit_breaker.state, sync.circuit_breaker.failures of airdrops "
        "(OSError: statsd host unreachable); the sync goes on"
    ]


def test_get_stats_is_the_task_sdk_stats() -> None:
    from airflow.sdk.observability.stats import Stats

    assert metrics.get_stats() is Stats


# -- the operator sends them: per sync and per transition ---------------------------------------------


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    with DemoServer(port=0) as server:
        yield server


@pytest.fixture
def conn(demo: DemoServer, monkeypatch: pytest.MonkeyPatch) -> DemoServer:
    for key, value in connection_env(demo.url).items():
        monkeypatch.setenv(key, value)
    demo.clear_faults()
    demo.clear_requests()
    return demo


def make_operator(source: str, store: InMemoryStateStore, **config: Any) -> RateLimitedSyncOperator:
    cfg = SyncConfig(
        source=source,
        schedule=None,
        backoff=BackoffConfig(initial_delay=ONE_MS, max_delay=ONE_MS),
        **config,
    )
    op = RateLimitedSyncOperator(task_id="sync", source=source, config=cfg)
    op.hook = RateLimitedSyncHook(store=store)  # cached_property: assigning replaces it (no Variables)
    op._sleep = lambda seconds: None
    return op


def test_operator_sends_six_metrics_per_sync(conn: DemoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    stats = FakeStats()
    monkeypatch.setattr(metrics, "get_stats", lambda: stats)
    conn.set_fault("error", source="obs_unit", count=1)
    op = make_operator("obs_unit", InMemoryStateStore())
    payload = op.execute({"ti": FakeTI("sync_obs"), "params": {}})
    assert payload["success"] is True
    assert payload["retry_count"] == 1
    sent = len(conn.requests("obs_unit"))
    plain = {name: value for _, name, value, tags in stats.calls if tags is None}
    assert plain == {
        "sync.success.obs_unit": 1,
        "sync.duration.obs_unit": payload["duration_ms"],
        "sync.retry_count.obs_unit": 1,
        "sync.rate_limit.usage.obs_unit": round(sent / 60, 4),
        "sync.circuit_breaker.state.obs_unit": 0,
        "sync.circuit_breaker.failures.obs_unit": 0,
    }
    tagged = {(name, tags["source"]) for _, name, _, tags in stats.calls if tags}
    assert tagged == {(m, "obs_unit") for m in SIX}


def test_operator_sends_breaker_gauges_at_the_transition(
    conn: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    stats = FakeStats()
    monkeypatch.setattr(metrics, "get_stats", lambda: stats)
    conn.set_fault("outage", source="obs_unit")
    op = make_operator(
        "obs_unit", InMemoryStateStore(), circuit_breaker=CircuitBreakerConfig(failure_threshold=2)
    )
    with pytest.raises(AirflowFailException):
        op.execute({"ti": FakeTI("sync_obs"), "params": {}})

    def sent(name: str) -> list[float]:
        return [value for _, stat, value, _ in stats.calls if stat == name]

    states = sent("sync.circuit_breaker.state.obs_unit")
    failures = sent("sync.circuit_breaker.failures.obs_unit")
    # once at the closed -> open transition, once at the end of the sync
    assert states == [2, 2]
    assert failures == [2, 2]
    assert sent("sync.success.obs_unit") == [0]


def test_a_broken_metrics_backend_never_fails_a_sync(
    conn: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "get_stats", lambda: FakeStats(fail=True))
    payload = make_operator("obs_unit", InMemoryStateStore()).execute(
        {"ti": FakeTI("sync_obs"), "params": {}}
    )
    assert payload["success"] is True
    assert payload["items_processed"] == 30


# -- a real task run reporting to a real UDP StatsD listener -------------------------------------------


@pytest.mark.airflow
def test_a_real_sync_run_sends_all_six_metrics_over_udp(airflow_db: None, variables: Any) -> None:
    install_dag(DAG_FILE)
    listener = UdpListener()
    with DemoServer(port=0) as demo:
        demo.set_fault("error", source="obs_metrics", count=1)  # one retry, so retry_count is 1
        try:
            run = dags_test(
                "test_obs_metrics",
                **connection_env(demo.url),
                AIRFLOW__METRICS__STATSD_ON="True",
                AIRFLOW__METRICS__STATSD_HOST="127.0.0.1",
                AIRFLOW__METRICS__STATSD_PORT=str(listener.port),
                AIRFLOW__METRICS__STATSD_PREFIX="airflow",
            )
        finally:
            listener.close()
        sent = len(demo.requests("obs_metrics"))
    ours = sorted(line for line in listener.lines if line.startswith("airflow.sync."))
    print("\nStatsD lines received from the task run:\n  " + "\n  ".join(ours))
    assert run.state == "success", run.output[-3000:]
    state = json.loads(variables.get("sync_state_obs_metrics"))
    assert state["last_result"]["retry_count"] == 1
    values = {line.split(":", 1)[0]: line.split(":", 1)[1] for line in ours}
    duration = state["last_result"]["duration_ms"]
    usage = round(sent / 60, 4)
    expected = {
        "airflow.sync.success.obs_metrics": "1|g",
        "airflow.sync.duration.obs_metrics": f"{duration:0.6f}|ms",
        "airflow.sync.circuit_breaker.state.obs_metrics": "0|g",
        "airflow.sync.circuit_breaker.failures.obs_metrics": "0|g",
        "airflow.sync.retry_count.obs_metrics": "1|g",
        "airflow.sync.rate_limit.usage.obs_metrics": f"{usage}|g",
    }
    assert {name: values.get(name) for name in expected} == expected
    # the tagged forms arrive too; plain StatsD drops their tag, so they carry the bare name
    assert {f"airflow.{m}" for m in SIX} <= set(values)
    assert not [line for line in ours if "password" in line.lower() or "127.0.0.1" in line]
    assert os.environ.get("AIRFLOW__METRICS__STATSD_ON") is None  # the test process itself sends nothing
