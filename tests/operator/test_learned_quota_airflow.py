"""Learned quota shared across DAGs in real Airflow (issue 11): ``airflow dags test`` against a DemoServer.

Run 1 of ``op_quota_a`` is served and learns ``X-RateLimit-Remaining: 0`` with a reset 180 s away; run 2 of
``op_quota_b`` (another DAG, the same source, its state Variable and pool) never saw that header, yet
sends nothing: the reset is beyond its ``max_wait`` (5 s), so it is skipped with ``RATE_LIMIT_EXCEEDED``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from airflow_sync_provider.demo.server import DemoServer
from tests.harness.airflow_cli import install_dag
from tests.operator.test_operator_airflow import (
    attempt_lines,
    expect,
    read_state,
    run_dag,
    task_log,
    xcom_return_value,
)

pytestmark = pytest.mark.airflow

SOURCE = "op_quota"
QUOTA_WINDOW = 180.0  # long enough that run 2 starts before the reset on a loaded machine (68 s seen)


@pytest.fixture(scope="module", autouse=True)
def learned_quota_dags(airflow_db: None) -> None:
    install_dag(Path(__file__).with_name("dags") / "learned_quota.py", "operator_learned_quota.py")


def pool_of(dag_id: str) -> str:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dag_id, task_id="sync").one()
        return str(ti.pool)


def test_a_quota_learned_by_one_dag_stops_another_dag_from_sending(stored_variables: Any) -> None:
    with DemoServer(port=0) as demo:
        demo.set_quota(SOURCE, limit=1, window=QUOTA_WINDOW, family="x-ratelimit")
        run1 = run_dag("op_quota_a", demo)
        expect(run1, "success", sync="success")
        assert [e["status"] for e in demo.requests(SOURCE)] == [200]
        assert "| API 0 left | GET /op_quota (attempt 1)" in attempt_lines(task_log(run1, "sync"))[0]
        learned = read_state(stored_variables, SOURCE)["quota"]
        assert learned["remaining"] == 0
        assert 0 < learned["reset_at"] - learned["observed_at"] <= QUOTA_WINDOW + 1

        demo.clear_requests()
        run2 = run_dag("op_quota_b", demo)
        expect(run2, "success", sync="skipped")
        assert demo.requests(SOURCE) == []  # not one request from op_quota_b
        log2 = task_log(run2, "sync")
        assert attempt_lines(log2) == []
        assert "RATE_LIMIT_EXCEEDED" in log2
        # decided before the reset (a run 2 started after it would have sent), from the learned state only
        refusal = re.search(
            r"the API's quota is spent \(remaining 0\); it resets in ([\d.]+)s, beyond max_wait=5s", log2
        )
        assert refusal, log2[-3000:]
        assert 5 < float(refusal.group(1)) <= QUOTA_WINDOW
        result = xcom_return_value(run2, "op_quota_b", "sync")
        assert (result["error"], result["items_processed"]) == ("RATE_LIMIT_EXCEEDED", 0)
        assert "the API's quota is spent" in result["error_message"]
        assert pool_of("op_quota_a") == pool_of("op_quota_b") == f"sync_{SOURCE}"


def test_a_dag_that_does_not_learn_keeps_what_another_dag_learned(stored_variables: Any) -> None:
    """Issue 17 item 8: ``op_quota_deaf`` (``learn_from_headers: false``) used to write the learned quota
    away with its first slot, and the learning DAG's next run was admitted before the API's reset."""
    with DemoServer(port=0) as demo:
        demo.set_quota(SOURCE, limit=1, window=600, family="x-ratelimit")
        run1 = run_dag("op_quota_a", demo)
        expect(run1, "success", sync="success")
        learned = read_state(stored_variables, SOURCE)["quota"]
        assert learned["remaining"] == 0

        deaf = run_dag("op_quota_deaf", demo)  # it neither reads nor obeys the quota: it sends, gets a 429
        assert [e["status"] for e in demo.requests(SOURCE)][:2] == [200, 429]
        assert xcom_return_value(deaf, "op_quota_deaf", "sync")["error"] == "RATE_LIMITED"
        kept = read_state(stored_variables, SOURCE)["quota"]
        assert kept is not None and kept["reset_at"] == learned["reset_at"]  # kept, not erased

        demo.clear_requests()
        run2 = run_dag("op_quota_a", demo)
        expect(run2, "success", sync="skipped")
        assert demo.requests(SOURCE) == []  # not admitted before the API's reset
        assert "the API's quota is spent" in xcom_return_value(run2, "op_quota_a", "sync")["error_message"]
