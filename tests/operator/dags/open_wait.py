"""DAG for ``tests/operator/test_open_wait_airflow.py``: a breaker whose open wait doubles after each
failed probe (1 h, then 2 h, up to 4 h). The test moves ``opened_at`` in the state Variable back instead
of waiting out the hours."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_sync_provider import BackoffConfig, CircuitBreakerConfig, RateLimitedSyncOperator, SyncConfig

RESET_TIMEOUT = timedelta(hours=1)

with DAG(
    dag_id="op_open_wait",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
):
    RateLimitedSyncOperator(
        task_id="sync",
        source="op_open_wait",
        config=SyncConfig(
            source="op_open_wait",
            schedule=None,
            backoff=BackoffConfig(initial_delay=timedelta(milliseconds=50), max_delay=timedelta(seconds=1)),
            circuit_breaker=CircuitBreakerConfig(
                failure_threshold=2,
                reset_timeout=RESET_TIMEOUT,
                reset_multiplier=2.0,
                max_reset_timeout=timedelta(hours=4),
            ),
            timeout=timedelta(seconds=5),
            max_retries=1,
            defer_after=timedelta(seconds=30),
        ),
    )
