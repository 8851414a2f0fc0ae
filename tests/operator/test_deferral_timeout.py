"""The operator's deferral timeout, in process: the ``defer()`` call and the timed-out resume.

Airflow's side (the scheduler timing the deferral out and running the task again with
``next_method="__fail__"``) is exercised for real in ``tests/e2e/test_deferral_timeout_e2e.py``; here
the operator runs on a fake clock against a loopback API with an in-memory state store, and a fake
task instance records XComs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason
from airflow.sdk.exceptions import AirflowFailException, TaskDeferralError, TaskDeferred

from airflow_sync_provider import RateLimitedSyncOperator
from airflow_sync_provider.run.deferral import DEFER_TIMEOUT_MARGIN, PROGRESS_XCOM
from airflow_sync_provider.state.store import InMemoryStateStore
from airflow_sync_provider.triggers.wait import SyncWaitTrigger
from tests.hook import T0, FakeClock, Reply, ScriptedServer, connect, fast_config, make_hook, stored

SECOND = timedelta(seconds=1)


class FakeTI:
    task_id = "sync"

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = json.loads(json.dumps(value))  # XCom values travel as JSON

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value") -> Any:
        assert task_ids == self.task_id
        return self.xcoms.get(key)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    """Page 1 (cursor to page 2), then 429 with Retry-After: 120 for page 2."""
    replies = [
        Reply.page([{"id": 1}, {"id": 2}], "2"),
        Reply(status=429, body=b"{}", headers={"Retry-After": "120"}),
    ]
    with ScriptedServer(replies) as server:
        connect(monkeypatch, server.url)
        yield server


def operator(store: InMemoryStateStore, clock: FakeClock, **kwargs: Any) -> RateLimitedSyncOperator:
    op = RateLimitedSyncOperator(
        source="sponsored", config=fast_config(defer_after=5 * SECOND), task_id="sync", **kwargs
    )
    op._clock = clock
    op.hook = make_hook(clock, store)  # type: ignore[misc]
    return op


def defer(op: RateLimitedSyncOperator, context: dict[str, Any]) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    return deferred.value


def test_every_deferral_has_a_timeout_of_its_wait_plus_the_margin(api: ScriptedServer) -> None:
    clock, store, ti = FakeClock(), InMemoryStateStore(), FakeTI()
    deferred = defer(operator(store, clock), {"ti": ti, "params": {}})

    assert deferred.timeout == 120 * SECOND + DEFER_TIMEOUT_MARGIN
    assert isinstance(deferred.trigger, SyncWaitTrigger) and deferred.trigger.resume_at == T0 + 120
    record = ti.xcoms[PROGRESS_XCOM]
    assert (record["wait"], record["timeout"], record["items"], record["retry_count"]) == (120, 420, 2, 1)
    assert "http" not in json.dumps(record)  # counters only: no URL (which may carry a key) in XCom

    margin = operator(InMemoryStateStore(), FakeClock(), defer_timeout_margin=10 * SECOND)
    assert defer(margin, {"ti": FakeTI(), "params": {}}).timeout == 130 * SECOND


def test_a_timed_out_deferral_ends_as_timeout_with_its_result_recorded(
    api: ScriptedServer, capfd: pytest.CaptureFixture[str]
) -> None:
    clock, store, ti = FakeClock(), InMemoryStateStore(), FakeTI()
    context = {"ti": ti, "params": {}}
    defer(operator(store, clock), context)
    sent = len(api.log)

    # the scheduler timed the deferral out: Airflow runs the task again with next_method "__fail__"
    clock.advance(420)
    timed_out = {"error": TriggerFailureReason.TRIGGER_TIMEOUT.value}
    with pytest.raises(AirflowFailException, match="TIMEOUT"):
        operator(store, clock).resume_execution(TRIGGER_FAIL_REPR, timed_out, context)

    assert len(api.log) == sent  # nothing sent after the timeout
    result = ti.xcoms["return_value"]
    assert (result["success"], result["error"], result["items_processed"], result["retry_count"]) == (
        False,
        "TIMEOUT",
        2,
        1,
    )
    assert result["duration_ms"] == 420_000 and result["started_at"].startswith("2027-01-15T08:00:00")
    message = (
        "the wait of 120s (Retry-After 120s (retry 1)) did not end within the deferral timeout of 420s: "
        "no triggerer resumed the task (is the triggerer running?); the sync stopped after 2 items"
    )
    assert result["error_message"].startswith(message)
    assert stored(store, "sponsored").last_result == result  # the state Variable has it too
    assert "✗ sponsored: TIMEOUT: the wait of 120s" in capfd.readouterr().out


def test_a_timed_out_deferral_without_its_record_still_ends_as_timeout(api: ScriptedServer) -> None:
    clock, store, ti = FakeClock(), InMemoryStateStore(), FakeTI()
    timed_out = {"error": TriggerFailureReason.TRIGGER_TIMEOUT.value}
    with pytest.raises(AirflowFailException, match="TIMEOUT"):
        operator(store, clock).resume_execution(TRIGGER_FAIL_REPR, timed_out, {"ti": ti, "params": {}})
    result = ti.xcoms["return_value"]
    assert (result["error"], result["items_processed"]) == ("TIMEOUT", 0)
    assert result["error_message"].startswith("the deferral timed out (no progress record found)")
    assert stored(store, "sponsored").last_result == result


def test_other_trigger_failures_still_fail_as_airflow_does(api: ScriptedServer) -> None:
    op = operator(InMemoryStateStore(), FakeClock())
    failure = {"error": TriggerFailureReason.TRIGGER_FAILURE.value}
    with pytest.raises(TaskDeferralError):
        op.resume_execution(TRIGGER_FAIL_REPR, failure, {"ti": FakeTI(), "params": {}})


@pytest.mark.parametrize("margin", [timedelta(0), -SECOND, 30])
def test_a_bad_margin_is_refused_by_name(margin: Any) -> None:
    with pytest.raises(
        ValueError, match=re.escape(f"defer_timeout_margin must be a positive timedelta, got {margin!r}")
    ):
        RateLimitedSyncOperator(source="sponsored", defer_timeout_margin=margin)
