"""Alerts: one per breaker transition (not per fast-failed run), notifiers and callables, never fatal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.bases.notifier import BaseNotifier
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_sync_provider import build_sync_dags
from airflow_sync_provider.config import BackoffConfig, CircuitBreakerConfig, RateLimitConfig, SyncConfig
from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.observability import alerts
from airflow_sync_provider.observability.alerts import BreakerAlert
from airflow_sync_provider.operators.sync import RateLimitedSyncOperator
from airflow_sync_provider.state.store import InMemoryStateStore
from tests.harness.airflow_cli import dags_test, install_dag
from tests.harness.fixtures import connection_env
from tests.harness.task_instance import FakeTI

DAG_FILE = Path(__file__).with_name("dags") / "obs_sync_dags.py"
SOURCE = "obs_alert_unit"
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
RESET = timedelta(minutes=5)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


class Clock:
    """A fake clock the operator, the hook and the sleeps share: a sleep advances it."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class RecordingNotifier(BaseNotifier):
    """A notifier with a templated field; records what it was asked to send."""

    template_fields = ("text",)

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def notify(self, context: Any) -> None:
        self.sent.append((self.text, dict(context)))


class Recorder:
    """A plain callable target."""

    def __init__(self) -> None:
        self.alerts: list[BreakerAlert] = []

    def __call__(self, alert: BreakerAlert) -> None:
        self.alerts.append(alert)


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer(port=0) as srv:
        yield srv


@pytest.fixture
def demo(server: DemoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[DemoServer]:
    for key, value in connection_env(server.url).items():
        monkeypatch.setenv(key, value)
    server.clear_faults()
    server.clear_requests()
    yield server
    server.clear_faults()


def config(**changes: Any) -> SyncConfig:
    fields: dict[str, Any] = {
        "source": SOURCE,
        "schedule": None,
        "max_retries": 3,
        "backoff": BackoffConfig(initial_delay=timedelta(seconds=1), max_delay=timedelta(seconds=2)),
        "circuit_breaker": CircuitBreakerConfig(failure_threshold=3, reset_timeout=RESET),
    }
    fields.update(changes)
    return SyncConfig(**fields)


class Harness:
    """Runs the operator in-process: InMemoryStateStore (no Variables) and a fake clock (no sleeping)."""

    def __init__(self, **operator_kwargs: Any) -> None:
        self.clock = Clock()
        self.store = InMemoryStateStore()
        self.operator_kwargs = operator_kwargs
        self.config = operator_kwargs.pop("config", None) or config()

    def run(self) -> tuple[str, dict[str, Any]]:
        """One sync with a fresh operator (as every task try has); returns (task state, result)."""
        op = RateLimitedSyncOperator(
            task_id="sync", source=self.config.source, config=self.config, **self.operator_kwargs
        )
        op.hook = RateLimitedSyncHook(store=self.store, clock=self.clock)  # replaces the cached_property
        op._clock, op._sleep = self.clock, self.clock.sleep
        ti = FakeTI("sync_obs_alert_unit")
        try:
            return "success", op.execute({"ti": ti, "params": {}})
        except AirflowSkipException:
            return "skipped", ti.xcom["return_value"]
        except AirflowFailException:
            return "failed", ti.xcom["return_value"]


# -- once per transition ------------------------------------------------------------------------------


def test_an_outage_alerts_once_and_recovery_alerts_once(demo: DemoServer) -> None:
    opened, closed = Recorder(), Recorder()
    h = Harness(on_breaker_open=opened, on_breaker_close=closed)

    demo.set_fault("outage", source=SOURCE)
    state, result = h.run()
    assert (state, result["error"]) == ("failed", "HTTP_ERROR")
    assert len(demo.requests(SOURCE)) == 3  # threshold 3: the third failure opens the breaker
    assert len(opened.alerts) == 1
    opened_at = opened.alerts[0]

    h.clock.sleep(60)  # well before the probe is due
    state, result = h.run()
    assert (state, result["error"]) == ("skipped", "CIRCUIT_BREAKER_OPEN")
    assert len(demo.requests(SOURCE)) == 3  # the fast-failed run sent nothing ...
    assert len(opened.alerts) == 1  # ... made no transition, and so did not alert again
    assert closed.alerts == []

    demo.clear_faults()
    h.clock.now = T0 + RESET.total_seconds() + 10  # past the probe time
    state, result = h.run()
    assert (state, result["success"]) == ("success", True)
    assert len(opened.alerts) == 1
    assert len(closed.alerts) == 1

    h.clock.sleep(3600)
    assert h.run()[0] == "success"  # a normal sync: no transition, no alert
    assert (len(opened.alerts), len(closed.alerts)) == (1, 1)
    assert opened_at.event == "breaker_open"
    assert closed.alerts[0].event == "breaker_close"


def test_open_alert_names_source_failures_last_error_and_next_probe(demo: DemoServer) -> None:
    opened = Recorder()
    h = Harness(on_breaker_open=opened)
    demo.set_fault("outage", source=SOURCE)
    h.run()
    (alert,) = opened.alerts
    # the third failure came after the backoff waits of retries 1 and 2 (1 s, then 2 s, jitter +-10 %)
    stored = json.loads(h.store.raw[f"sync_state_{SOURCE}"])["breaker"]
    opened_ts = stored["opened_at"]
    assert alert.source == SOURCE
    assert alert.state == "open"
    assert alert.failure_count == 3
    assert alert.failure_threshold == 3
    assert alert.last_error == f"GET /{SOURCE} -> 503 Service Unavailable"
    assert alert.opened_at == iso(opened_ts)
    assert alert.next_probe_at == iso(opened_ts + 300)
    assert alert.reason == f"3 consecutive failures: GET /{SOURCE} -> 503 Service Unavailable"
    assert (alert.dag_id, alert.run_id, alert.task_id) == ("sync_obs_alert_unit", "manual__1", "sync")
    assert alert.message == (
        f"Circuit breaker of {SOURCE} OPENED after 3 consecutive failures (threshold 3). "
        f"Last error: GET /{SOURCE} -> 503 Service Unavailable. "
        f"Next probe due at {iso(opened_ts + 300)}; "
        f"until then syncs of {SOURCE} send nothing and are skipped."
    )


def test_close_alert_names_the_failures_it_recovered_from(demo: DemoServer) -> None:
    closed = Recorder()
    h = Harness(on_breaker_close=closed)
    demo.set_fault("outage", source=SOURCE)
    h.run()
    opened_ts = json.loads(h.store.raw[f"sync_state_{SOURCE}"])["breaker"]["opened_at"]
    demo.clear_faults()
    h.clock.now = opened_ts + 301
    assert h.run()[0] == "success"
    (alert,) = closed.alerts
    assert (alert.event, alert.state, alert.failure_count) == ("breaker_close", "closed", 3)
    assert alert.next_probe_at is None
    assert alert.opened_at == iso(opened_ts)
    assert alert.at == iso(opened_ts + 301)
    assert alert.message == (
        f"Circuit breaker of {SOURCE} CLOSED: probe succeeded after 3 consecutive failures "
        f"(open since {iso(opened_ts)}). Last error was: GET /{SOURCE} -> 503 Service Unavailable. "
        "No probe pending; syncs run normally."
    )


def test_a_failed_probe_reopens_without_a_second_open_alert(demo: DemoServer) -> None:
    opened, closed = Recorder(), Recorder()
    h = Harness(on_breaker_open=opened, on_breaker_close=closed)
    demo.set_fault("outage", source=SOURCE)
    h.run()
    h.clock.sleep(RESET.total_seconds() + 1)
    state, result = h.run()  # the probe fails: half-open -> open
    assert (state, result["error"]) == ("failed", "HTTP_ERROR")
    assert json.loads(h.store.raw[f"sync_state_{SOURCE}"])["breaker"]["state"] == "open"
    assert len(opened.alerts) == 1
    demo.clear_faults()
    h.clock.sleep(RESET.total_seconds() + 1)
    assert h.run()[0] == "skipped"  # the failed probe doubled the open wait (reset_multiplier 2)
    h.clock.sleep(RESET.total_seconds())
    assert h.run()[0] == "success"
    assert (len(opened.alerts), len(closed.alerts)) == (1, 1)
    assert closed.alerts[0].failure_count == 4  # three that opened it plus the failed probe


# -- targets: notifiers, callables, lists; failures --------------------------------------------------


TEMPLATE = "[{{ ti.dag_id }}] {{ sync_alert.event }}: {{ sync_alert.message }}"


def test_a_notifier_and_a_callable_both_receive_the_alert(
    demo: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    copies: list[Any] = []
    fresh = alerts._fresh

    def keep_copy(target: Any) -> Any:
        copy = fresh(target)
        copies.append(copy)
        return copy

    monkeypatch.setattr(alerts, "_fresh", keep_copy)
    notifier, plain = RecordingNotifier(TEMPLATE), Recorder()
    h = Harness(on_breaker_open=[notifier, plain], on_breaker_close=notifier)
    demo.set_fault("outage", source=SOURCE)
    h.run()
    demo.clear_faults()
    h.clock.sleep(RESET.total_seconds() + 1)
    h.run()

    # rendering is irreversible, so each alert renders a copy: the configured notifier stays a template
    assert (notifier.text, notifier.sent) == (TEMPLATE, [])
    assert len(copies) == 2 and all(c is not notifier for c in copies)
    (open_text, open_context), (close_text, _) = copies[0].sent[0], copies[1].sent[0]
    assert open_text == f"[sync_obs_alert_unit] breaker_open: {plain.alerts[0].message}"
    assert close_text.startswith(f"[sync_obs_alert_unit] breaker_close: Circuit breaker of {SOURCE} CLOSED")
    assert open_context["sync_alert"] == plain.alerts[0].to_dict()
    assert open_context["ti"].dag_id == "sync_obs_alert_unit"
    assert [a.event for a in plain.alerts] == ["breaker_open"]


def test_an_alert_that_raises_does_not_change_the_sync(
    demo: DemoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(alert: BreakerAlert) -> None:
        raise RuntimeError("slack is down")

    class BrokenNotifier(BaseNotifier):
        def notify(self, context: Any) -> None:
            raise ConnectionError("smtp is down")

    after = Recorder()
    h = Harness(
        on_breaker_open=[broken, BrokenNotifier(), after],
        on_breaker_close=[broken, BrokenNotifier(), after],
    )
    demo.set_fault("outage", source=SOURCE)
    state, result = h.run()
    assert (state, result["error"]) == ("failed", "HTTP_ERROR")  # as without alerts: not an alert error
    demo.clear_faults()
    h.clock.sleep(RESET.total_seconds() + 1)
    state, result = h.run()
    assert (state, result["success"], result["items_processed"]) == ("success", True, 30)
    assert [a.event for a in after.alerts] == ["breaker_open", "breaker_close"]  # later targets still run
    captured = capsys.readouterr()
    logged = captured.out + captured.err  # the task logger writes through structlog, not to caplog
    assert "on_breaker_open alert target" in logged and "slack is down" in logged
    assert "smtp is down" in logged
    assert "on_breaker_open alert for obs_alert_unit sent to 1 of 3 target(s)" in logged


def test_rate_limited_sync_alerts_once(demo: DemoServer) -> None:
    limited, opened = Recorder(), Recorder()
    h = Harness(on_rate_limited=limited, on_breaker_open=opened, config=config(max_retries=1))
    demo.set_fault("rate_limit", source=SOURCE, retry_after="1")
    state, result = h.run()
    assert (state, result["error"]) == ("failed", "RATE_LIMITED")
    (alert,) = limited.alerts
    assert alert.event == "rate_limited" and alert.error == "RATE_LIMITED"
    expected = f"Sync of {SOURCE} ended RATE_LIMITED after 1 retries: GET /{SOURCE} -> 429"
    assert alert.message.startswith(expected)
    assert alert.message.endswith("Breaker closed with 0 consecutive failures; no probe pending.")
    assert opened.alerts == []  # 429 is not a breaker failure


def test_window_full_sync_alerts_with_the_next_free_slot(demo: DemoServer) -> None:
    limited = Recorder()
    window = RateLimitConfig(max_requests=1, window=timedelta(hours=1))
    h = Harness(on_rate_limited=limited, config=config(rate_limit=window))
    assert h.run()[0] == "success"
    first_request = json.loads(h.store.raw[f"sync_state_{SOURCE}"])["window"][0]
    h.clock.sleep(60)
    state, result = h.run()
    assert (state, result["error"]) == ("skipped", "RATE_LIMIT_EXCEEDED")
    (alert,) = limited.alerts
    frees = first_request + 3600 + 1  # the window plus the default safety margin (1 s)
    assert alert.retry_at == iso(frees)
    assert f"Next window slot frees at {iso(frees)}." in alert.message


def test_a_learned_year_long_quota_alerts_once_not_at_every_run_it_refuses(demo: DemoServer) -> None:
    """A 429 with ``Retry-After`` a year away: one alert when learned; the runs it refuses stay quiet
    (each used to alert); after ``max_learned_wait`` one request finds out, and what it learns alerts."""
    limited = Recorder()
    h = Harness(on_rate_limited=limited, config=config(max_retries=1))
    demo.set_fault("rate_limit", source=SOURCE, retry_after="31536000")
    state, result = h.run()
    assert (state, result["error"]) == ("failed", "RATE_LIMITED")
    (alert,) = limited.alerts
    assert alert.reason == "LEARNED_QUOTA" and alert.error == "RATE_LIMITED"
    assert f"its quota is spent until {iso(T0 + 31536000)} (31536000s, longer than max_wait=300s)" in (
        alert.message
    )
    assert alert.retry_at == iso(T0 + 3600)  # rate_limit.max_learned_wait: by default the window, 1 h
    sent = len(demo.requests(SOURCE))
    for _ in range(3):
        h.clock.sleep(600)
        state, result = h.run()
        assert (state, result["error"]) == ("skipped", "RATE_LIMIT_EXCEEDED")
    assert len(limited.alerts) == 1
    assert len(demo.requests(SOURCE)) == sent
    h.clock.sleep(1800)  # past the cap
    state, result = h.run()
    assert (state, result["error"]) == ("failed", "RATE_LIMITED")
    assert len(demo.requests(SOURCE)) == sent + 1  # one request found out (and learned it again)
    assert len(limited.alerts) == 2


def test_targets_are_validated() -> None:
    with pytest.raises(TypeError, match="on_breaker_open takes notifiers or callables"):
        RateLimitedSyncOperator(task_id="t", source="airdrops", on_breaker_open=["not callable"])
    with pytest.raises(TypeError, match="per-source mapping is for build_sync_dags"):
        RateLimitedSyncOperator(task_id="t", source="airdrops", on_breaker_close={"airdrops": print})
    op = RateLimitedSyncOperator(task_id="t", source="airdrops", on_breaker_open=print)
    assert (op.on_breaker_open, op.on_breaker_close, op.on_rate_limited) == ([print], [], [])


def test_factory_passes_alerts_per_source() -> None:
    one, other = Recorder(), Recorder()
    dags = build_sync_dags(
        on_breaker_open=one,
        on_breaker_close={"airdrops": [one, other]},
        on_rate_limited={"quests": other},
    )
    ops = {dag_id: dag.get_task("sync") for dag_id, dag in dags.items()}
    assert all(op.on_breaker_open == [one] for op in ops.values())
    assert ops["sync_airdrops"].on_breaker_close == [one, other]
    assert ops["sync_quests"].on_breaker_close == []
    assert ops["sync_quests"].on_rate_limited == [other]
    assert ops["sync_airdrops"].on_rate_limited == []
    unknown = r"on_breaker_open names sources that are not configured: \['airdrop'\]"
    with pytest.raises(ValueError, match=unknown):
        build_sync_dags(on_breaker_open={"airdrop": one})


# -- end to end: real task runs, alerts appended to a file --------------------------------------------


@pytest.mark.airflow
def test_real_runs_alert_once_per_transition(airflow_db: None, variables: Any, tmp_path: Path) -> None:
    """Outage run -> one open alert; fast-failed run -> none; probe run after recovery -> one close alert.

    The reset timeout is read when the DAG file is parsed: long (600 s) for the first two runs, so the
    second is certainly fast-failed however slow this machine is, and 1 s for the third, so its probe is
    due at once (a config change between runs, as a deploy would make).
    """
    install_dag(DAG_FILE)
    alert_file = tmp_path / "alerts.jsonl"
    env = {"SYNC_ALERT_FILE": str(alert_file)}

    def alerts_so_far() -> list[dict[str, Any]]:
        if not alert_file.exists():
            return []
        return [json.loads(line) for line in alert_file.read_text().splitlines()]

    with DemoServer(port=0) as demo:
        env.update(connection_env(demo.url))
        demo.set_fault("outage", source="obs_alerts")
        run1 = dags_test("test_obs_alerts", OBS_RESET_TIMEOUT_S="600", **env)
        assert run1.task_state("sync") == "failed", run1.output[-3000:]
        assert len(demo.requests("obs_alerts")) == 2  # threshold 2
        after1 = alerts_so_far()

        run2 = dags_test("test_obs_alerts", OBS_RESET_TIMEOUT_S="600", **env)
        assert run2.task_state("sync") == "skipped", run2.output[-3000:]
        assert len(demo.requests("obs_alerts")) == 2  # nothing sent
        after2 = alerts_so_far()

        demo.clear_faults()
        run3 = dags_test("test_obs_alerts", OBS_RESET_TIMEOUT_S="1", **env)
        assert run3.task_state("sync") == "success", run3.output[-3000:]
        after3 = alerts_so_far()

    print("\nalert lines:\n  " + "\n  ".join(json.dumps(a) for a in after3))

    def kinds(lines: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
        return [(a["via"], a.get("event")) for a in lines]

    assert kinds(after1) == [("callable", "breaker_open"), ("notifier", None)]
    assert after2 == after1
    assert kinds(after3[2:]) == [("callable", "breaker_close"), ("notifier", None)]
    state = json.loads(variables.get("sync_state_obs_alerts"))
    assert state["breaker"]["state"] == "closed"

    opened, opened_line, closed, closed_line = after3[0], after3[1]["line"], after3[2], after3[3]["line"]
    assert (opened["source"], opened["failure_count"]) == ("obs_alerts", 2)
    assert opened["dag_id"] == "test_obs_alerts"
    assert opened["last_error"] == "GET /obs_alerts -> 503 Service Unavailable"
    probe_at = datetime.fromisoformat(opened["opened_at"]) + timedelta(seconds=600)
    assert opened["next_probe_at"] == probe_at.isoformat()
    assert opened_line == f"test_obs_alerts | breaker_open | {opened['message']}"
    assert f"Next probe due at {opened['next_probe_at']}" in opened["message"]
    assert (closed["failure_count"], closed["next_probe_at"]) == (2, None)
    assert closed["reason"] == "probe succeeded"
    assert closed_line == f"test_obs_alerts | breaker_close | {closed['message']}"
    # the task logs let a person follow it: the summary lines of the original design and the alerts
    assert "✗ obs_alerts: HTTP_ERROR: " in run1.output
    assert "on_breaker_open alert for obs_alerts sent to 2 of 2 target(s)" in run1.output
    assert "✗ obs_alerts: CIRCUIT_BREAKER_OPEN: " in run2.output
    assert "alert for obs_alerts" not in run2.output
    assert "✓ obs_alerts: 30 items in" in run3.output
    assert "on_breaker_close alert for obs_alerts sent to 2 of 2 target(s)" in run3.output
