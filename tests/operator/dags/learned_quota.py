"""DAGs for ``tests/operator/test_learned_quota_airflow.py``: DAGs syncing one source (``op_quota``),
so they share its state Variable and its pool ``sync_op_quota``. ``max_wait`` is 5 s: a learned reset
further away than that skips the task instead of waiting. ``op_quota_deaf`` does not learn from headers."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_sync_provider import BackoffConfig, RateLimitConfig, RateLimitedSyncOperator, SyncConfig

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

DEAF = CONFIG.replace(rate_limit=RateLimitConfig(learn_from_headers=False))

for dag_id, config in (("op_quota_a", CONFIG), ("op_quota_b", CONFIG), ("op_quota_deaf", DEAF)):
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
    ):
        RateLimitedSyncOperator(task_id="sync", source=SOURCE, config=config)
