"""RateLimitedSyncOperator in real Airflow: every scenario is ``airflow dags test`` against a DemoServer.

The DAGs are ``dags/example_sync.py`` (the documented example) and ``dags/operator_scenarios.py``
(one small, fast config per scenario). What a run did is read from three places: the task log in
the ``dags test`` output, the demo API's request log, and the state Variable ``sync_state_<source>``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_sync_provider.demo.catalog import TOTALS, total_for
from airflow_sync_provider.demo.server import DemoServer
from airflow_sync_provider.policy.breaker import BreakerSnapshot
from airflow_sync_provider.state.store import SourceState
from tests.harness.airflow_cli import DagTestRun, dags_test, install_dag
from tests.harness.fixtures import connection_env

pytestmark = pytest.mark.airflow

DAGS = Path(__file__).with_name("dags")
RESULT_FIELDS = {
    "source",
    "success",
    "items_processed",
    "duration_ms",
    "error",
    "error_message",
    "retry_count",
    "started_at",
    "truncated",
    "items_loaded",  # issue 13 (0 / None without load and incremental)
    "destination",
    "bookmark",
}


@pytest.fixture(scope="module", autouse=True)
def operator_dags(airflow_db: None) -> None:
    install_dag(DAGS / "example_sync.py", "operator_example_sync.py")
    install_dag(DAGS / "operator_scenarios.py", "operator_scenarios.py")


@pytest.fixture
def demo() -> Iterator[DemoServer]:
    with DemoServer(port=0) as server:
        yield server


# -- helpers ---------------------------------------------------------------------------------------


def run_dag(dag_id: str, demo: DemoServer, conf: dict[str, Any] | None = None, **env: str) -> DagTestRun:
    run_env: dict[str, Any] = {**connection_env(demo.url), **env}
    return dags_test(dag_id, conf=conf, **run_env)


def task_log(run: DagTestRun, task_id: str) -> str:
    """The output lines of one task (``airflow dags test`` runs tasks one after another)."""
    lines = run.output.splitlines()
    start = next(i for i, line in enumerate(lines) if f"[DAG TEST] starting task_id={task_id} " in line)
    end = next(i for i, line in enumerate(lines) if f"[DAG TEST] end task task_id={task_id} " in line)
    return "\n".join(lines[start : end + 1])


def attempt_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if re.search(r"\| window \d+%.*\(attempt \d+\)", line)]


def read_state(store: Any, source: str) -> dict[str, Any]:
    raw = store.get(f"sync_state_{source}", default_var=None)
    assert raw is not None, f"sync_state_{source} was not written"
    return json.loads(raw)


def xcom_return_value(run: DagTestRun, dag_id: str, task_id: str) -> Any:
    """The task's XCom ``return_value`` in the run ``airflow dags test`` just made."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    match = re.search(rf"DagRun Finished: dag_id={dag_id}, .*?run_id=([^,\s]+)", run.output)
    assert match, run.output[-3000:]
    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_id, run_id=match.group(1), task_id=task_id, key="return_value")
            .one_or_none()
        )
        return None if row is None else row.value


def paths(demo: DemoServer, source: str) -> list[str]:
    return [entry["path"] for entry in demo.requests(source)]


def expect(run: DagTestRun, dag_state: str, **task_states: str) -> None:
    context = run.output[-6000:]
    assert run.state == dag_state, context
    for task_id, state in task_states.items():
        assert run.task_state(task_id) == state, (task_id, context)


# -- scenarios -------------------------------------------------------------------------------------


def test_example_dag_syncs_every_page_and_reports_the_result(
    demo: DemoServer, stored_variables: Any, tmp_path: Path
) -> None:
    """Success: all pages followed, one log line per attempt, the result in XCom, Variable and on_result."""
    result_file = tmp_path / "result.json"
    run = run_dag("example_sync", demo, SYNC_EXAMPLE_RESULT_FILE=str(result_file))

    expect(run, "success", sync="success")
    total = TOTALS["airdrops"]
    assert paths(demo, "airdrops") == [
        "/airdrops?limit=50",
        "/airdrops?cursor=50&limit=50",
        "/airdrops?cursor=100&limit=50",
    ]
    log = task_log(run, "sync")
    attempts = attempt_lines(log)
    assert len(attempts) == 3, attempts
    assert all(re.search(r"\] ok \| breaker .* \| GET /airdrops\S* \(attempt 1\)", line) for line in attempts)
    summary = re.findall(r"✓ airdrops: (\d+) items in \d+ ms", log)
    assert summary == [str(total)]

    last = read_state(stored_variables, "airdrops")["last_result"]
    assert set(last) == RESULT_FIELDS
    assert (last["source"], last["success"], last["items_processed"]) == ("airdrops", True, total)
    assert (last["error"], last["error_message"], last["retry_count"]) == (None, None, 0)
    assert xcom_return_value(run, "example_sync", "sync") == last

    # on_result got the same SyncResult (the example writes it to $SYNC_EXAMPLE_RESULT_FILE)
    reported = json.loads(result_file.read_text(encoding="utf-8"))
    assert reported == last
    assert isinstance(reported["duration_ms"], int) and reported["duration_ms"] >= 0
    assert datetime.fromisoformat(reported["started_at"]).utcoffset() is not None


def test_breaker_opens_fast_fails_and_closes_after_a_probe_across_runs(
    demo: DemoServer, stored_variables: Any
) -> None:
    """Outage -> failed, breaker open -> skipped with nothing sent -> after reset_timeout a probe closes it.

    The DAG file reads the reset timeout at parse time: runs 1 and 2 use 1 h (so run 2 is certain
    to find the breaker open however slow the machine), run 3 uses 3 s, long elapsed by then.
    """
    source = "op_breaker"
    demo.set_fault("outage", source=source)

    run1 = run_dag("op_breaker", demo, SYNC_TEST_RESET_TIMEOUT="3600")
    expect(run1, "failed", sync="failed")
    assert [e["status"] for e in demo.requests(source)] == [503, 503]  # first try + max_retries=1
    state = read_state(stored_variables, source)
    assert (state["breaker"]["state"], state["breaker"]["failure_count"]) == ("open", 2)
    assert state["last_result"]["error"] == "HTTP_ERROR"
    assert "circuit breaker opened after 2 failures" in state["last_result"]["error_message"]
    log1 = task_log(run1, "sync")
    assert log1.count(f"Circuit breaker of {source}: closed -> open") == 1
    assert len(attempt_lines(log1)) == 2

    demo.clear_requests()
    run2 = run_dag("op_breaker", demo, SYNC_TEST_RESET_TIMEOUT="3600")
    expect(run2, "success", sync="skipped")
    assert demo.requests(source) == []
    log2 = task_log(run2, "sync")
    assert "CIRCUIT_BREAKER_OPEN" in log2
    assert attempt_lines(log2) == []
    state2 = read_state(stored_variables, source)
    assert state2["breaker"] == state["breaker"]
    last2 = state2["last_result"]
    assert (last2["success"], last2["error"]) == (False, "CIRCUIT_BREAKER_OPEN")
    assert xcom_return_value(run2, "op_breaker", "sync") == state2["last_result"]

    demo.clear_faults()
    time.sleep(max(0.0, state["breaker"]["opened_at"] + 3 - time.time()))
    run3 = run_dag("op_breaker", demo, SYNC_TEST_RESET_TIMEOUT="3")
    expect(run3, "success", sync="success")
    assert [e["status"] for e in demo.requests(source)] == [200]  # the probe, and the only page
    log3 = task_log(run3, "sync")
    assert log3.index(f"{source}: open -> half-open") < log3.index(f"{source}: half-open -> closed")
    state3 = read_state(stored_variables, source)
    assert (state3["breaker"]["state"], state3["breaker"]["failure_count"]) == ("closed", 0)
    assert (state3["last_result"]["success"], state3["last_result"]["items_processed"]) == (
        True,
        total_for(source),
    )


def test_retry_after_is_waited_out_before_the_retry(demo: DemoServer, stored_variables: Any) -> None:
    """429 with Retry-After: 2 on the first request: the retry starts >= 2 s after it; the sync succeeds."""
    source = "op_retry_after"
    demo.set_fault("rate_limit", source=source, count=1, retry_after="2")

    run = run_dag("op_retry_after", demo)

    expect(run, "success", sync="success")
    first, second = demo.requests(source)
    assert (first["status"], second["status"]) == (429, 200)
    assert second["start"] - first["end"] >= 2.0
    log = task_log(run, "sync")
    assert "waiting 2.00s before retrying (Retry-After 2s (retry 1))" in log
    assert "deferring" not in log  # 2 s is below defer_after (30 s): slept, not deferred
    assert len(attempt_lines(log)) == 2
    last = read_state(stored_variables, source)["last_result"]
    assert (last["success"], last["retry_count"], last["items_processed"]) == (True, 1, total_for(source))
    # 429 is not a breaker failure
    assert read_state(stored_variables, source)["breaker"]["failure_count"] == 0


def test_deferral_resumes_at_the_same_page(demo: DemoServer, stored_variables: Any) -> None:
    """Page 2 answers 503 + Retry-After 2 (> defer_after 1 s): the task defers and resumes at page 2."""
    source = "op_deferral"
    run = run_dag("op_deferral", demo)

    expect(run, "success", sync="success")
    assert [(e["path"], e["status"]) for e in demo.requests(source)] == [
        ("/op_deferral?limit=10", 200),
        ("/op_deferral?cursor=10&limit=10", 503),
        ("/op_deferral?cursor=10&limit=10", 200),
        ("/op_deferral?cursor=20&limit=10", 200),
    ]
    log = task_log(run, "sync")
    assert log.index(f"{source}: deferring for 2.0s") < log.index(f"Resuming the sync of {source}")
    last = read_state(stored_variables, source)["last_result"]
    assert (last["success"], last["items_processed"], last["retry_count"]) == (True, total_for(source), 1)


@pytest.mark.parametrize(
    ("limit", "throttle", "page_in_hand"),
    [(10, "op_pages-0015", 2), (10, "op_pages-0025", 3), (50, "op_pages-0015", 1)],
    ids=["mid-sync", "last-page", "one-page-source"],
)
def test_a_deferral_while_a_page_is_processed_delivers_that_page_again(
    demo: DemoServer, stored_variables: Any, limit: int, throttle: str, page_in_hand: int
) -> None:
    """One detail request per item; a 429 + Retry-After 2 on one of them defers the task mid-page.

    After the resume the page in hand comes again (the handler skips the items it did), finished
    pages are not read again, the last page ends the sync, and every item's request succeeds once.
    """
    source = "op_pages"
    run = run_dag("op_pages", demo, conf={"limit": limit, "throttle": throttle})

    expect(run, "success", sync="success")
    total = total_for(source)
    page_paths = [
        f"/{source}?limit={limit}" if start == 0 else f"/{source}?cursor={start}&limit={limit}"
        for start in range(0, total, limit)
    ]
    hand = page_paths[page_in_hand - 1]
    expected = [*page_paths[:page_in_hand], hand, *page_paths[page_in_hand:]]
    assert paths(demo, source) == expected
    details = [(e["path"].split("id=")[1], e["status"]) for e in demo.requests(f"{source}_detail")]
    ok = [item for item, status in details if status == 200]
    assert sorted(ok) == [f"{source}-{i:04d}" for i in range(1, total + 1)]  # each item once
    assert [d for d in details if d[1] != 200] == [(throttle, 429)]
    log = task_log(run, "sync")
    assert log.index(f"{source}: deferring for 2.0s") < log.index(f"Resuming the sync of {source}")
    assert (
        f"page {page_in_hand} of {source} ({min(limit, total)} items), delivered again after the resume"
        in log
    )
    assert log.count("delivered again") == 1
    last = read_state(stored_variables, source)["last_result"]
    assert (last["success"], last["items_processed"], last["retry_count"]) == (True, total, 1)
    assert last["truncated"] is False


def test_reaching_max_pages_is_a_visibly_truncated_success(demo: DemoServer, stored_variables: Any) -> None:
    """``max_pages`` 2 of 3 (the run's conf): success, 100 items, truncated in the log, XCom and Variable."""
    run = run_dag("example_sync", demo, conf={"max_pages": 2})

    expect(run, "success", sync="success")
    assert paths(demo, "airdrops") == ["/airdrops?limit=50", "/airdrops?cursor=50&limit=50"]
    log = task_log(run, "sync")
    assert re.search(r"✓ airdrops: 100 items in \d+ ms \(truncated at max_pages\)", log), log[-3000:]
    assert "airdrops: stopped at max_pages=2 pages; the source has more" in log
    last = read_state(stored_variables, "airdrops")["last_result"]
    assert (last["success"], last["items_processed"], last["truncated"], last["error"]) == (
        True,
        100,
        True,
        None,
    )
    assert xcom_return_value(run, "example_sync", "sync") == last


def test_window_exhaustion_across_runs(demo: DemoServer, stored_variables: Any) -> None:
    """2 requests per hour, one page per sync: runs 1 and 2 succeed, run 3 is skipped without a request.

    Run 1 also counts the state Variable calls of a one-page sync (the DAG logs each one).
    """
    source = "op_window"
    run1 = run_dag("op_window", demo)
    expect(run1, "success", sync="success")
    calls = re.findall(r"state Variable call: (get|set) sync_state_op_window", task_log(run1, "sync"))
    # the read at the first request's admission and its slot's write (before the request); the result's
    # write re-reads first, so a foreign write since our last write is merged, not overwritten
    assert calls == ["get", "set", "get", "set"]
    state = read_state(stored_variables, source)
    assert state["writer"].startswith("op_window/")  # the writer's dag_id/run_id

    run2 = run_dag("op_window", demo)
    expect(run2, "success", sync="success")
    assert len(demo.requests(source)) == 2

    demo.clear_requests()
    run3 = run_dag("op_window", demo)
    expect(run3, "success", sync="skipped")
    assert demo.requests(source) == []
    log3 = task_log(run3, "sync")
    assert "RATE_LIMIT_EXCEEDED" in log3
    assert attempt_lines(log3) == []
    state = read_state(stored_variables, source)
    assert len(state["window"]) == 2
    assert (state["last_result"]["success"], state["last_result"]["error"]) == (False, "RATE_LIMIT_EXCEEDED")
    assert state["breaker"]["state"] == "closed"


def test_timeout_and_not_found_fail_the_task(demo: DemoServer, stored_variables: Any) -> None:
    """A slow API fails with TIMEOUT after max_retries retries; a 404 fails at once and spares the breaker."""
    demo.set_fault("slow", source="op_timeout", delay=2.0)  # timeout is 0.5 s
    demo.set_fault("not_found", source="op_not_found")
    seeded = SourceState("op_not_found", breaker=BreakerSnapshot(failure_count=1, last_error="earlier 503"))
    stored_variables.set("sync_state_op_not_found", seeded.to_json())

    run = run_dag("op_failures", demo)

    expect(run, "failed", timeout="failed", not_found="failed")

    assert len(demo.requests("op_timeout")) == 2  # first try + max_retries=1
    timeout_log = task_log(run, "timeout")
    assert "✗ op_timeout: TIMEOUT: " in timeout_log
    assert len(attempt_lines(timeout_log)) == 2
    last = read_state(stored_variables, "op_timeout")["last_result"]
    assert (last["error"], last["retry_count"], last["success"]) == ("TIMEOUT", 1, False)
    assert "gave up after 1 retry" in last["error_message"]

    assert [e["status"] for e in demo.requests("op_not_found")] == [404]
    not_found_log = task_log(run, "not_found")
    assert "✗ op_not_found: HTTP_ERROR: GET " in not_found_log
    state = read_state(stored_variables, "op_not_found")
    assert (state["last_result"]["error"], state["last_result"]["retry_count"]) == ("HTTP_ERROR", 0)
    assert (state["breaker"]["state"], state["breaker"]["failure_count"]) == ("closed", 1)


def test_corrupt_state_is_replaced_and_a_newer_schema_is_refused(
    demo: DemoServer, stored_variables: Any
) -> None:
    """``not json{``: warned, fresh state, sync succeeds. schema_version 99: failed, Variable untouched."""
    future = json.dumps({"schema_version": 99, "source": "op_future", "breaker": {"state": "weird"}})
    stored_variables.set("sync_state_op_corrupt", "not json{")
    stored_variables.set("sync_state_op_future", future)

    run = run_dag("op_state", demo)

    expect(run, "failed", corrupt="success", future="failed")

    corrupt_log = task_log(run, "corrupt")
    warnings = [
        line for line in corrupt_log.splitlines() if "[warning" in line and "sync_state_op_corrupt" in line
    ]
    assert len(warnings) == 1 and "is not valid JSON" in warnings[0], warnings
    state = read_state(stored_variables, "op_corrupt")
    assert state["schema_version"] == 1 and state["source"] == "op_corrupt"
    raw = stored_variables.get("sync_state_op_corrupt")
    assert len(SourceState.from_json(raw, "op_corrupt", on_warning=pytest.fail).window) == 1
    assert (state["last_result"]["success"], state["last_result"]["items_processed"]) == (
        True,
        total_for("op_corrupt"),
    )

    future_log = task_log(run, "future")
    assert "sync_state_op_future has schema_version 99, newer than this provider understands" in future_log
    assert stored_variables.get("sync_state_op_future") == future
    assert demo.requests("op_future") == []


def test_params_dry_run_and_a_loosening_override(demo: DemoServer, stored_variables: Any) -> None:
    """dry_run sends and writes nothing; max_requests above the limit is refused by Airflow's Params."""
    source = "op_params"
    seeded = SourceState(source, window=(time.time() - 60,)).to_json()
    stored_variables.set(f"sync_state_{source}", seeded)

    dry = run_dag("op_params", demo, conf={"dry_run": True})
    expect(dry, "success", sync="success")
    assert demo.requests(source) == []
    dry_log = task_log(dry, "sync")
    assert f"Dry run of {source}: a sync would be sent (nothing sent, state unchanged)" in dry_log
    assert stored_variables.get(f"sync_state_{source}") == seeded
    assert xcom_return_value(dry, "op_params", "sync")["items_processed"] == 0

    # The factory's DAG declares max_requests as Param(maximum=<configured limit>): Airflow refuses the
    # run when it is created, before any task starts (apply_params would refuse it too, in the task).
    loose = run_dag("op_params", demo, conf={"max_requests": 50})
    assert loose.returncode != 0
    refusal = (
        "ParamValidationError: Invalid input for param max_requests: 50 is greater than the maximum of 5"
    )
    assert refusal in loose.output
    assert "[DAG TEST] starting" not in loose.output
    assert demo.requests(source) == []
    assert stored_variables.get(f"sync_state_{source}") == seeded
