"""Bad inputs not covered elsewhere: connection fields, trigger params, stored state.

Each answer is a clear error naming what is wrong, or a logged recovery. Config objects, sources
YAML and most corrupt-state cases are in ``tests/unit/test_config.py``,
``tests/dags/test_sources_file.py`` and ``tests/unit/test_state.py``; the table in
``docs/reliability.md`` lists them all with their tests.

Connection and state cases run in-process (a ``DemoServer``, an ``InMemoryStateStore``, a fake
clock); one ``airflow dags test`` run shows the same answers in a real task.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_sync_provider import DEFAULT_SYNC_CONFIGS, build_sync_dags
from airflow_sync_provider.authoring.params import apply_params
from airflow_sync_provider.config import CircuitBreakerConfig, RateLimitConfig, SyncConfig
from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.exceptions import SyncConfigError
from airflow_sync_provider.hooks.guard import SourceGuard
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.policy.breaker import BreakerState
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState, variable_key
from tests.harness.airflow_cli import DagTestRun, dags_test
from tests.hook import SyncOutcome
from tests.hook import sync_once as operator_sync

LOG = logging.getLogger("tests.reliability")
NOW = 1_800_000_000.0
YEAR = 366 * 86400.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Warnings(list[str]):
    """A logger stand-in that keeps warning messages (``%`` formatted)."""

    def warning(self, msg: str, *args: Any, **_: Any) -> None:
        self.append(msg % args if args else msg)

    def info(self, msg: str, *args: Any, **_: Any) -> None:
        pass


def sync_once(config: SyncConfig, store: InMemoryStateStore, clock: Clock) -> SyncOutcome:
    """One sync of ``config`` through the real operator (``tests.hook.sync_once``), waits not slept."""
    hook = RateLimitedSyncHook(conn_id=config.conn_id, store=store, clock=clock)
    return operator_sync(hook, config, clock=clock, sleep=lambda seconds: None)  # type: ignore[arg-type]


def stored(store: InMemoryStateStore, source: str) -> SourceState:
    return SourceState.from_json(store.raw.get(variable_key(source)), source, on_warning=pytest.fail)


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    with DemoServer(port=0) as server:
        yield server


# -- connection fields ------------------------------------------------------------------------------

SETUP_ERRORS = [
    # (id, connection fields (host/port filled in unless given), exact error message)
    ("missing-host", {"host": None}, "connection 'sync_default' has no host"),
    ("empty-host", {"host": ""}, "connection 'sync_default' has no host"),
    (
        "port-out-of-range",
        {"port": 70000},
        "connection 'sync_default': port must be an integer in [1, 65535], got '70000'",
    ),
    (
        "port-negative",
        {"port": -1},
        "connection 'sync_default': port must be an integer in [1, 65535], got '-1'",
    ),
    (
        "port-not-a-number",
        {"port": "http"},
        "connection 'sync_default' is not defined (or could not be parsed): "
        "The conn_id `sync_default` isn't defined",
    ),
    (
        "api-key-header-without-password",
        {"login": "syncer", "extra": {"api_key_header": "X-Api-Key"}},
        "connection 'sync_default': extra api_key_header is 'X-Api-Key' but the password (the key) is empty",
    ),
    (
        "extra-invalid-json",
        {"extra": '{"X-Client": "a",'},
        "connection 'sync_default': extra is not valid JSON "
        "(Expecting property name enclosed in double quotes: line 1 column 18 (char 17))",
    ),
    (
        "extra-not-an-object",
        {"extra": "[1, 2]"},
        "connection 'sync_default': extra must be a JSON object, got list",
    ),
    ("scheme-ftp", {"schema": "ftp"}, "connection 'sync_default': scheme must be http or https, got 'ftp'"),
]


def _connection(demo: DemoServer, fields: dict[str, Any]) -> str:
    conn: dict[str, Any] = {"conn_type": "http", "host": "127.0.0.1", "port": demo.port}
    conn.update(fields)
    if isinstance(conn.get("extra"), dict):
        conn["extra"] = json.dumps(conn["extra"])
    return json.dumps({k: v for k, v in conn.items() if v is not None})


@pytest.mark.parametrize(
    ("fields", "message"), [c[1:] for c in SETUP_ERRORS], ids=[c[0] for c in SETUP_ERRORS]
)
def test_unusable_connection_ends_the_sync_with_a_message_naming_the_field(
    demo: DemoServer, monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], message: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SYNC_DEFAULT", _connection(demo, fields))
    demo.clear_requests()
    store = InMemoryStateStore()

    outcome = sync_once(SyncConfig(source="points"), store, Clock())

    assert outcome.error is not None
    assert (outcome.error.kind, str(outcome.error)) == (SyncErrorKind.CONNECTION_ERROR, message)
    assert outcome.error.sent_requests is False and outcome.task_state == "failed"  # nothing was sent
    assert (outcome.result.success, outcome.result.error_message) == (False, message)
    assert demo.requests() == []
    state = stored(store, "points")
    # a configuration mistake is not the API's fault: no window slot, no breaker failure
    assert (state.window, state.breaker.failure_count, state.breaker.state) == ((), 0, BreakerState.CLOSED)
    assert state.last_result == outcome.result.to_dict()


def test_a_header_value_with_a_newline_is_refused_by_requests_and_named(
    demo: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Header values come from the extra; requests refuses an illegal one before sending."""
    monkeypatch.setenv("AIRFLOW_CONN_SYNC_DEFAULT", _connection(demo, {"extra": {"X-Client": "a\nb"}}))
    demo.clear_requests()
    store = InMemoryStateStore()

    outcome = sync_once(SyncConfig(source="points", max_retries=0), store, Clock())

    assert outcome.error is not None
    assert outcome.error.kind is SyncErrorKind.CONNECTION_ERROR
    assert str(outcome.error) == (
        "GET /points: InvalidHeader: Invalid leading whitespace, reserved character(s), or return "
        "character(s) in header value: 'a\\nb'; gave up after 0 retries"
    )
    assert demo.requests() == []
    # the limit of this answer: it is found at send time, so it takes a slot and counts one failure
    state = stored(store, "points")
    assert (len(state.window), state.breaker.failure_count) == (1, 1)


def test_a_missing_connection_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SYNC_DEFAULT", raising=False)
    outcome = sync_once(SyncConfig(source="points", conn_id="rel_nowhere"), InMemoryStateStore(), Clock())
    assert outcome.error is not None
    assert (outcome.error.kind, str(outcome.error)) == (
        SyncErrorKind.CONNECTION_ERROR,
        "connection 'rel_nowhere' is not defined (or could not be parsed): "
        "The conn_id `rel_nowhere` isn't defined",
    )


# -- manual-trigger params --------------------------------------------------------------------------

AIRDROPS = DEFAULT_SYNC_CONFIGS["airdrops"]  # 60 requests per hour, 3 retries, 100 pages
PARAM_ERRORS = [
    # (conf, Airflow's Param refusal when the run is created, the operator's own refusal in the task)
    (
        {"dry_run": "yes"},
        "dry_run: 'yes' is not of type 'boolean'",
        "params.dry_run must be true or false, got 'yes'",
    ),
    (
        {"dry_run": None},
        "dry_run: None is not of type 'boolean'",
        "params.dry_run must be true or false, got None",
    ),
    (
        {"max_requests": 0},
        "max_requests: 0 is less than the minimum of 1",
        "params.max_requests must be an integer in [1, 60] (params can only tighten limits), got 0",
    ),
    (
        {"max_requests": -5},
        "max_requests: -5 is less than the minimum of 1",
        "params.max_requests must be an integer in [1, 60] (params can only tighten limits), got -5",
    ),
    (
        {"max_requests": 61},
        "max_requests: 61 is greater than the maximum of 60",
        "params.max_requests must be an integer in [1, 60] (params can only tighten limits), got 61",
    ),
    (
        {"max_requests": "5"},
        "max_requests: '5' is not of type 'null', 'integer'",
        "params.max_requests must be an integer in [1, 60] (params can only tighten limits), got '5'",
    ),
    (
        {"max_retries": 4},
        "max_retries: 4 is greater than the maximum of 3",
        "params.max_retries must be an integer in [0, 3] (params can only tighten limits), got 4",
    ),
    (
        {"max_retries": 1.5},
        "max_retries: 1.5 is not of type 'null', 'integer'",
        "params.max_retries must be an integer in [0, 3] (params can only tighten limits), got 1.5",
    ),
    (
        {"max_pages": True},
        "max_pages: True is not of type 'null', 'integer'",
        "params.max_pages must be an integer in [1, 100] (params can only tighten limits), got True",
    ),
]


@pytest.mark.parametrize(
    ("conf", "param_message", "task_message"),
    PARAM_ERRORS,
    ids=[f"{k}={v!r}" for conf, _, _ in PARAM_ERRORS for k, v in conf.items()],
)
def test_bad_params_are_refused_when_the_run_is_created_and_again_in_the_task(
    conf: dict[str, Any], param_message: str, task_message: str
) -> None:
    import copy

    from airflow.sdk.definitions.param import ParamValidationError
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_sync_provider.operators.sync import RateLimitedSyncOperator

    dag = build_sync_dags({"airdrops": AIRDROPS})["sync_airdrops"]
    params = copy.deepcopy(dag.params)
    with pytest.raises(ParamValidationError) as refused:
        params.update(conf)  # what Airflow does with a trigger's conf
        params.validate()
    assert str(refused.value).startswith(f"Invalid input for param {param_message}")

    with pytest.raises(SyncConfigError) as info:
        apply_params(AIRDROPS, conf)
    assert str(info.value) == task_message

    # a run created around Airflow's check (e.g. an old DAG version) still fails cleanly, before I/O
    operator = RateLimitedSyncOperator(task_id="sync", source="airdrops", config=AIRDROPS)
    with pytest.raises(AirflowFailException) as failed:
        operator.execute({"params": conf})
    assert str(failed.value) == f"airdrops: invalid trigger params: {task_message}"


# -- stored state -----------------------------------------------------------------------------------

BREAKER_60S = CircuitBreakerConfig(failure_threshold=5, reset_timeout=timedelta(seconds=60))
STATE_CONFIG = SyncConfig(source="airdrops", circuit_breaker=BREAKER_60S)


def state_json(window: list[float] | None = None, updated_at: float | None = None, **breaker: Any) -> str:
    body = {
        "state": "closed",
        "failure_count": 0,
        "opened_at": None,
        "half_open_since": None,
        "probes_in_flight": 0,
        "last_error": None,
        "last_failure_at": None,
        **breaker,
    }
    return json.dumps(
        {
            "schema_version": 1,
            "source": "airdrops",
            "breaker": body,
            "window": window or [],
            "last_result": None,
            "updated_at": updated_at,
        }
    )


def admissions(raw: str, steps: list[float], config: SyncConfig = STATE_CONFIG) -> tuple[list[Any], Warnings]:
    """One guard per step (a sync at NOW + step): its admission, then the sync's final write."""
    store = InMemoryStateStore({variable_key("airdrops"): raw})
    warnings = Warnings()
    answers = []
    for step in steps:
        guard = SourceGuard(config, store, clock=Clock(NOW + step), log=warnings)
        admission = guard.admit()
        guard.finish({"step": step})
        kind = admission.kind.value if admission.kind else None
        answers.append((step, admission.allowed, kind, round(admission.wait)))
    return answers, warnings


def test_opened_at_in_the_future_is_clamped_so_the_breaker_probes_after_reset_timeout() -> None:
    raw = state_json(state="open", failure_count=5, opened_at=NOW + YEAR, last_error="503")
    answers, warnings = admissions(raw, [0, 30, 60])
    assert answers == [
        (0, False, "CIRCUIT_BREAKER_OPEN", 60),  # not a year
        (30, False, "CIRCUIT_BREAKER_OPEN", 30),
        (60, True, None, 0),  # the probe
    ]
    assert warnings[0] == "sync_state_airdrops: breaker.opened_at 31622400s in the future; set to now"
    assert len(warnings) == 2  # logged once, then the clamped state was written by the first sync
    assert warnings[1] == "Circuit breaker of airdrops: open -> half-open (reset timeout elapsed)"


def test_half_open_since_in_the_future_is_clamped() -> None:
    raw = state_json(
        state="half-open",
        failure_count=5,
        opened_at=NOW - 100,
        half_open_since=NOW + YEAR,
        probes_in_flight=1,
    )
    answers, warnings = admissions(raw, [0, 60])
    assert answers == [(0, False, "CIRCUIT_BREAKER_OPEN", 60), (60, True, None, 0)]
    assert warnings == ["sync_state_airdrops: breaker.half_open_since 31622400s in the future; set to now"]


def test_huge_probes_in_flight_without_half_open_since_expire_at_once() -> None:
    """Probes lost to a crash, of unknown age: they count as expired (the rule lives in the pure
    breaker), so one probe goes now and its lease is stored; they never block the breaker."""
    raw = state_json(state="half-open", failure_count=5, opened_at=NOW - 100, probes_in_flight=10**9)
    answers, warnings = admissions(raw, [0, 59, 60])
    assert answers == [
        (0, True, None, 0),
        (59, False, "CIRCUIT_BREAKER_OPEN", 1),
        (60, True, None, 0),
    ]
    assert warnings == []


def test_huge_probes_in_flight_with_a_start_time_expire_after_reset_timeout() -> None:
    raw = state_json(
        state="half-open",
        failure_count=5,
        opened_at=NOW - 100,
        half_open_since=NOW - 10,
        probes_in_flight=10**9,
    )
    answers, warnings = admissions(raw, [0, 50])
    assert answers == [(0, False, "CIRCUIT_BREAKER_OPEN", 50), (50, True, None, 0)]
    assert warnings == []


def test_window_timestamps_in_the_future_count_as_now_and_free_after_one_window() -> None:
    config = STATE_CONFIG.replace(rate_limit=RateLimitConfig(max_requests=3, window=timedelta(hours=1)))
    raw = state_json(window=[NOW + YEAR] * 3)
    answers, warnings = admissions(raw, [0, 3600, 3601], config)
    assert answers == [  # a slot frees one window plus the 1 s safety margin after its stamp
        (0, False, "RATE_LIMIT_EXCEEDED", 3601),  # a full window, but not for a year
        (3600, False, "RATE_LIMIT_EXCEEDED", 1),
        (3601, True, None, 0),
    ]
    assert warnings == ["sync_state_airdrops: 3 window entries up to 31622400s in the future; set to now"]


def test_small_clock_skew_is_clamped_without_a_warning() -> None:
    raw = state_json(window=[NOW + 0.5], last_failure_at=NOW + 0.5, updated_at=NOW + 0.5)
    answers, warnings = admissions(raw, [0])
    assert answers == [(0, True, None, 0)]
    assert warnings == []


def test_future_updated_at_and_last_failure_at_are_clamped() -> None:
    store = InMemoryStateStore(
        {variable_key("airdrops"): state_json(updated_at=NOW + YEAR, last_failure_at=NOW + YEAR)}
    )
    warnings = Warnings()
    guard = SourceGuard(STATE_CONFIG, store, clock=Clock(), log=warnings)
    assert (guard.state.updated_at, guard.state.breaker.last_failure_at) == (NOW, NOW)
    assert warnings == ["sync_state_airdrops: breaker.last_failure_at 31622400s in the future; set to now"]


def test_a_failure_count_far_above_the_threshold_in_a_closed_breaker_stays_sane() -> None:
    """Requests are still sent; a success resets the count, a failure opens the breaker."""
    from airflow_sync_provider.hooks.outcome import Attempt, BreakerEffect

    raw = state_json(failure_count=10**12)
    store = InMemoryStateStore({variable_key("airdrops"): raw})
    guard = SourceGuard(STATE_CONFIG, store, clock=Clock(), log=Warnings())
    assert guard.admit().allowed
    guard.record(Attempt(None, False, BreakerEffect.SUCCESS, "ok", 200))
    assert guard.state.breaker.failure_count == 0

    store = InMemoryStateStore({variable_key("airdrops"): raw})
    guard = SourceGuard(STATE_CONFIG, store, clock=Clock(), log=Warnings())
    assert guard.admit().allowed
    guard.record(Attempt(SyncErrorKind.HTTP_ERROR, True, BreakerEffect.FAILURE, "503", 503))
    assert (guard.state.breaker.state, stored(store, "airdrops").breaker.state) == (
        BreakerState.OPEN,
        BreakerState.OPEN,
    )


# -- the same answers in a real task -----------------------------------------------------------------

BAD_INPUT_DAG = '''
"""Written by tests/reliability/test_bad_inputs.py: one task per bad connection or stored state."""
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_sync_provider import CircuitBreakerConfig, RateLimitedSyncOperator, SyncConfig

with DAG("rel_bad_inputs", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False):
    for task_id, conn_id in [
        ("no_host", "rel_no_host"),
        ("bad_port", "rel_bad_port"),
        ("key_without_password", "rel_key_nopw"),
        ("future_open", "rel_demo"),
    ]:
        RateLimitedSyncOperator(
            task_id=task_id,
            source=f"rel_{task_id}",
            config=SyncConfig(
                source=f"rel_{task_id}",
                endpoint="/points",
                conn_id=conn_id,
                max_retries=0,
                circuit_breaker=CircuitBreakerConfig(reset_timeout=timedelta(hours=1)),
            ),
        )
'''


def task_log(run: DagTestRun, task_id: str) -> str:
    lines = run.output.splitlines()
    start = next(i for i, line in enumerate(lines) if f"[DAG TEST] starting task_id={task_id} " in line)
    end = next(i for i, line in enumerate(lines) if f"[DAG TEST] end task task_id={task_id} " in line)
    return "\n".join(lines[start : end + 1])


@pytest.mark.airflow
def test_bad_connections_and_a_future_opened_at_in_a_real_task(demo: DemoServer, variables: Any) -> None:
    import os

    (Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "rel_bad_inputs.py").write_text(BAD_INPUT_DAG)
    demo_conn = {"conn_type": "http", "host": "127.0.0.1", "port": demo.port}
    env = {
        "AIRFLOW_CONN_REL_NO_HOST": json.dumps({"conn_type": "http", "port": demo.port}),
        "AIRFLOW_CONN_REL_BAD_PORT": json.dumps({**demo_conn, "port": 70000}),
        "AIRFLOW_CONN_REL_KEY_NOPW": json.dumps(
            {**demo_conn, "extra": json.dumps({"api_key_header": "X-Key"})}
        ),
        "AIRFLOW_CONN_REL_DEMO": json.dumps(demo_conn),
    }
    future = time.time() + YEAR
    variables.set(
        "sync_state_rel_future_open",
        state_json(state="open", failure_count=5, opened_at=future).replace(
            '"airdrops"', '"rel_future_open"'
        ),
    )
    demo.clear_requests()

    run = dags_test("rel_bad_inputs", **env)
    started = time.time()

    assert run.state == "failed", run.output[-4000:]
    states = {t: run.task_state(t) for t in ("no_host", "bad_port", "key_without_password", "future_open")}
    assert states == {
        "no_host": "failed",
        "bad_port": "failed",
        "key_without_password": "failed",
        "future_open": "skipped",
    }, run.output[-4000:]
    messages = {
        "no_host": "CONNECTION_ERROR: connection 'rel_no_host' has no host",
        "bad_port": "CONNECTION_ERROR: connection 'rel_bad_port': port must be an integer in [1, 65535], "
        "got '70000'",
        "key_without_password": "CONNECTION_ERROR: connection 'rel_key_nopw': extra api_key_header is "
        "'X-Key' but the password (the key) is empty",
    }
    for task_id, message in messages.items():
        log = task_log(run, task_id)
        assert message in log, log
        assert "The sync handler of" not in log  # not mistaken for a handler crash
    assert demo.requests() == []

    log = task_log(run, "future_open")
    assert re.search(r"sync_state_rel_future_open: breaker\.opened_at \d+s in the future; set to now", log), (
        log
    )
    assert "CIRCUIT_BREAKER_OPEN" in log
    state = json.loads(variables.get("sync_state_rel_future_open"))
    assert state["breaker"]["state"] == "open"
    assert state["breaker"]["opened_at"] <= started  # rewritten to the sync's clock, no longer a year ahead
    for source in ("rel_no_host", "rel_bad_port", "rel_key_without_password"):
        state = json.loads(variables.get(f"sync_state_{source}"))
        assert (state["window"], state["breaker"]["failure_count"]) == ([], 0)
        assert state["last_result"]["error"] == "CONNECTION_ERROR"
