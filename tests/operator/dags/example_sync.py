"""Example: one source synced by ``RateLimitedSyncOperator`` with a custom handler and ``on_result``.

The handler receives a ``SyncContext``: ``ctx.pages()`` follows the source's pagination, and every
page is one request through the source's rate limiter and circuit breaker, retried on its own.
Whatever the handler keeps in ``ctx.checkpoint.handler_data`` survives a deferral (a long
``Retry-After``): the handler is called again, ``ctx.pages()`` continues at the page it stopped at and
delivers that page again if the handler had it already (so count per page, not with a running total).

``on_result`` gets the ``SyncResult`` of every sync, success or not (alerting, metrics, a report).
Here it writes the result as JSON to the file named by ``$SYNC_EXAMPLE_RESULT_FILE``, when set.

The API is the Airflow connection ``sync_default`` (type ``http``), e.g. for the demo API::

    export AIRFLOW_CONN_SYNC_DEFAULT='{"conn_type": "http", "host": "127.0.0.1", "port": 8000}'
    airflow dags test example_sync
"""

from __future__ import annotations

import json
import logging
import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_sync_provider import (
    BackoffConfig,
    CircuitBreakerConfig,
    RateLimitConfig,
    RateLimitedSyncOperator,
    SyncConfig,
    SyncResult,
)
from airflow_sync_provider.run.handlers import SyncContext

log = logging.getLogger(__name__)

CONFIG = SyncConfig(
    source="airdrops",
    schedule="0 * * * *",
    rate_limit=RateLimitConfig(max_requests=60, window=timedelta(hours=1)),
    backoff=BackoffConfig(initial_delay=timedelta(seconds=1), max_delay=timedelta(seconds=60)),
    circuit_breaker=CircuitBreakerConfig(failure_threshold=5, reset_timeout=timedelta(minutes=5)),
    timeout=timedelta(seconds=10),
    max_retries=3,
)


def sync_airdrops(ctx: SyncContext) -> int:
    """Read every page of airdrops; count the items and the valuable ones (reward of $1000 or more)."""
    valuable = ctx.checkpoint.handler_data.setdefault("valuable", {})  # kept across a deferral
    for page in ctx.pages(limit=50):
        # keyed by page number: a page delivered again after a deferral replaces its count
        valuable[str(page.number)] = sum(1 for item in page.items if item.get("reward_usd", 0) >= 1000)
    log.info("%s: %d valuable airdrops", ctx.source, sum(valuable.values()))
    return ctx.checkpoint.items  # the items of every finished page, including pages before a deferral


def report(result: SyncResult) -> None:
    """Called with every sync's result; writes it to ``$SYNC_EXAMPLE_RESULT_FILE`` when that is set."""
    target = os.environ.get("SYNC_EXAMPLE_RESULT_FILE")
    if target:
        Path(target).write_text(json.dumps(result.to_dict()), encoding="utf-8")


with DAG(
    dag_id="example_sync",
    schedule=CONFIG.schedule,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # with the pool sync_<source> (1 slot): one writer of the source's state
    tags=["sync", "example"],
) as dag:
    RateLimitedSyncOperator(
        task_id="sync",
        source=CONFIG.source,
        config=CONFIG,
        handler=sync_airdrops,
        on_result=report,
    )
