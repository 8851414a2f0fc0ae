"""The growing open wait in real Airflow: ``airflow dags test`` runs against a DemoServer, the state in
the real Variable store. Hours pass by moving ``breaker.opened_at`` back in the Variable between runs.

open -> probe fails -> a run 1.5x reset_timeout later sends nothing (a constant wait would have probed)
-> a run 2x reset_timeout later probes, succeeds, and the wait starts over.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_sync_provider.demo.server import DemoServer
from tests.harness.airflow_cli import install_dag
from tests.operator.test_operator_airflow import attempt_lines, expect, read_state, run_dag, task_log

pytestmark = pytest.mark.airflow

SOURCE = "op_open_wait"
HOUR = 3600.0


@pytest.fixture(scope="module", autouse=True)
def open_wait_dag(private_airflow_home: Path) -> None:
    install_dag(Path(__file__).with_name("dags") / "open_wait.py", "operator_open_wait.py")


def opened_ago(stored_variables: Any, seconds: float) -> dict[str, Any]:
    """Rewrite the stored state as if the breaker had opened ``seconds`` ago."""
    state = read_state(stored_variables, SOURCE)
    state["breaker"]["opened_at"] = time.time() - seconds
    stored_variables.set(f"sync_state_{SOURCE}", json.dumps(state))
    return state


def test_a_failed_probe_doubles_the_wait_before_the_next_one(stored_variables: Any) -> None:
    with DemoServer(port=0) as demo:
        demo.set_fault("outage", source=SOURCE)
        run1 = run_dag("op_open_wait", demo)
        expect(run1, "failed", sync="failed")
        breaker = read_state(stored_variables, SOURCE)["breaker"]
        assert (breaker["state"], breaker["failure_count"], breaker["failed_probes"]) == ("open", 2, 0)

        opened_ago(stored_variables, HOUR + 1)  # the first wait is reset_timeout (1 h)
        demo.clear_requests()
        run2 = run_dag("op_open_wait", demo)
        expect(run2, "failed", sync="failed")
        assert [e["status"] for e in demo.requests(SOURCE)] == [503]  # one probe, no retry
        assert f"{SOURCE}: half-open -> open" in task_log(run2, "sync")
        breaker = read_state(stored_variables, SOURCE)["breaker"]
        assert (breaker["state"], breaker["failed_probes"]) == ("open", 1)
        assert time.time() - breaker["opened_at"] < 600  # reopened by the probe, just now

        opened_ago(stored_variables, 1.5 * HOUR)  # past reset_timeout, short of 2 x reset_timeout
        demo.clear_faults()
        demo.clear_requests()
        run3 = run_dag("op_open_wait", demo)
        expect(run3, "success", sync="skipped")
        assert demo.requests(SOURCE) == []
        log3 = task_log(run3, "sync")
        assert "CIRCUIT_BREAKER_OPEN" in log3 and attempt_lines(log3) == []
        assert read_state(stored_variables, SOURCE)["breaker"]["failed_probes"] == 1

        opened_ago(stored_variables, 2 * HOUR + 1)
        run4 = run_dag("op_open_wait", demo)
        expect(run4, "success", sync="success")
        assert [e["status"] for e in demo.requests(SOURCE)] == [200]  # the probe, and the only page
        log4 = task_log(run4, "sync")
        assert log4.index(f"{SOURCE}: open -> half-open") < log4.index(f"{SOURCE}: half-open -> closed")
        breaker = read_state(stored_variables, SOURCE)["breaker"]
        assert (breaker["state"], breaker["failure_count"], breaker["failed_probes"]) == ("closed", 0, 0)
