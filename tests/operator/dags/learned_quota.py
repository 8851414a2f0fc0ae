"""DAGs for ``tests/operator/test_learned_quota_airflow.py``: two DAGs syncing one source (``op_quota``),
so they share its state Variable and its pool ``sync_op_quota``. ``max_wait`` is 5 s: a learned reset
further away than that skips the task instead of waiting."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_sync_provider import BackoffConfig, RateLimitedSyncOperator, SyncConfig

SOURCE = "op_quota"
CONFIG = SyncConfig(
    source=SOURCE,
    schedule=None,
    backoff=BackoffConfig(initial_delay=timedelta(milliseconds=50), max_delay=timedelta(seconds=1)),
    timeout=timedelta(seconds=5),
    max_retries=1,
    max_wait=timedelta(seconds=5),
    defer_after=timedelta(seconds=30),
)

for dag_id in ("op_quota_a", "op_quota_b"):
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
    ):
        RateLimitedSyncOperator(task_id="sync", source=SOURCE, config=CONFIG)
