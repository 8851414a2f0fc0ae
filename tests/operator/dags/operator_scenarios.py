"""DAGs for the operator tests (``tests/operator/test_operator_airflow.py``): small, fast configs.

One source per scenario, so no two scenarios share a state Variable. The API is the connection
``sync_default`` (the tests point it at a ``DemoServer``). ``$SYNC_TEST_RESET_TIMEOUT`` (seconds)
sets the breaker scenario's reset timeout at parse time, so one run can see the breaker still open
and a later one can see its timeout elapsed without waiting out a long timer.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import pendulum
import requests
from airflow.sdk import DAG, Variable

from airflow_sync_provider import (
    BackoffConfig,
    CircuitBreakerConfig,
    RateLimitConfig,
    RateLimitedSyncHook,
    RateLimitedSyncOperator,
    SyncConfig,
    build_sync_dags,
)
from airflow_sync_provider.run.handlers import SyncContext
from airflow_sync_provider.state.store import VariableStateStore

log = logging.getLogger(__name__)
START = pendulum.datetime(2024, 1, 1, tz="UTC")


def config(source: str, **changes: Any) -> SyncConfig:
    """Fast settings: 1 retry, 50 ms backoff, breaker at 2 failures, no deferral below 30 s."""
    return SyncConfig(
        source=source,
        schedule=None,
        backoff=BackoffConfig(initial_delay=timedelta(milliseconds=50), max_delay=timedelta(seconds=1)),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=2, reset_timeout=timedelta(seconds=3)),
        timeout=timedelta(seconds=5),
        max_retries=1,
        defer_after=timedelta(seconds=30),
    ).replace(**changes)


def dag(dag_id: str) -> DAG:
    return DAG(dag_id=dag_id, schedule=None, start_date=START, catchup=False, max_active_runs=1)


# -- breaker across runs ---------------------------------------------------------------------------

RESET_TIMEOUT = timedelta(seconds=float(os.environ.get("SYNC_TEST_RESET_TIMEOUT", "3600")))

with dag("op_breaker"):
    RateLimitedSyncOperator(
        task_id="sync",
        source="op_breaker",
        config=config(
            "op_breaker",
            circuit_breaker=CircuitBreakerConfig(failure_threshold=2, reset_timeout=RESET_TIMEOUT),
        ),
    )

# -- Retry-After, slept through (below defer_after) ------------------------------------------------

with dag("op_retry_after"):
    RateLimitedSyncOperator(task_id="sync", source="op_retry_after", config=config("op_retry_after"))


# -- a deferral in the middle of the pages ---------------------------------------------------------


def fault_after_first_page(ctx: SyncContext) -> int:
    """Read pages of 10; after page 1, make the demo API answer the next request 503 + Retry-After 2."""
    for page in ctx.pages(limit=10):
        if page.number == 1 and not ctx.checkpoint.handler_data.get("fault_set"):
            parts = urlsplit(str(page.response.url))
            origin = f"{parts.scheme}://{parts.netloc}"
            fault = {"mode": "outage", "source": ctx.source, "count": 1, "retry_after": "2"}
            requests.post(f"{origin}/_admin/faults", json=fault, timeout=5).raise_for_status()
            ctx.checkpoint.handler_data["fault_set"] = True
    return ctx.checkpoint.items


with dag("op_deferral"):
    RateLimitedSyncOperator(
        task_id="sync",
        source="op_deferral",
        config=config("op_deferral", defer_after=timedelta(seconds=1)),
        handler=fault_after_first_page,
    )


# -- one request per item inside pages(), a deferral while a page is processed ------------------------


def one_request_per_item(ctx: SyncContext) -> int:
    """Pages of ``conf["limit"]`` (default 10); one detail request per item, items done kept in
    ``handler_data``. The item named by ``conf["throttle"]`` makes the demo API answer its detail request
    429 + Retry-After 2 (> defer_after 1 s), once: the task defers while that page is in hand."""
    conf = ctx.context["dag_run"].conf or {}
    data = ctx.checkpoint.handler_data
    done: list[str] = data.setdefault("done", [])
    for page in ctx.pages(limit=conf.get("limit", 10)):
        log.info("page %d of %s (%d items)%s", page.number, ctx.source, len(page.items), redelivered(page))
        for item in page.items:
            if item["id"] in done:
                continue
            if item["id"] == conf.get("throttle") and not data.get("throttled"):
                parts = urlsplit(str(page.response.url))
                fault = {
                    "mode": "rate_limit",
                    "source": f"{ctx.source}_detail",
                    "count": 1,
                    "retry_after": "2",
                }
                requests.post(
                    f"{parts.scheme}://{parts.netloc}/_admin/faults", json=fault, timeout=5
                ).raise_for_status()
                data["throttled"] = True
            ctx.request("GET", f"/{ctx.source}_detail", id=item["id"])
            done.append(item["id"])
    return ctx.checkpoint.items


def redelivered(page: Any) -> str:
    return ", delivered again after the resume" if page.redelivered else ""


with dag("op_pages"):
    RateLimitedSyncOperator(
        task_id="sync",
        source="op_pages",
        config=config(
            "op_pages",
            defer_after=timedelta(seconds=1),
            rate_limit=RateLimitConfig(max_requests=200, window=timedelta(hours=1)),
        ),
        handler=one_request_per_item,
    )


# -- window exhaustion across runs, with every Variable call logged ---------------------------------


class CountingVariable:
    """``airflow.sdk.Variable`` with a log line per call, so the tests can count them."""

    @staticmethod
    def get(key: str, default: Any = None) -> Any:
        log.info("state Variable call: get %s", key)
        return Variable.get(key, default)

    @staticmethod
    def set(key: str, value: Any, description: str | None = None) -> None:
        log.info("state Variable call: set %s", key)
        Variable.set(key, value, description=description)


class CountingSyncOperator(RateLimitedSyncOperator):
    @cached_property
    def hook(self) -> RateLimitedSyncHook:
        store = VariableStateStore(variable_api=CountingVariable)
        return RateLimitedSyncHook(conn_id=self.config.conn_id, store=store, clock=self._clock)


with dag("op_window"):
    CountingSyncOperator(
        task_id="sync",
        source="op_window",
        config=config("op_window", rate_limit=RateLimitConfig(max_requests=2, window=timedelta(hours=1))),
    )

# -- timeout and 404 (two tasks, one run) ----------------------------------------------------------

with dag("op_failures"):
    RateLimitedSyncOperator(
        task_id="timeout",
        source="op_timeout",
        config=config(
            "op_timeout",
            timeout=timedelta(milliseconds=500),
            circuit_breaker=CircuitBreakerConfig(failure_threshold=5, reset_timeout=timedelta(seconds=3)),
        ),
    )
    RateLimitedSyncOperator(task_id="not_found", source="op_not_found", config=config("op_not_found"))

# -- corrupt and future state (two tasks, one run) -------------------------------------------------

with dag("op_state"):
    RateLimitedSyncOperator(task_id="corrupt", source="op_corrupt", config=config("op_corrupt"))
    RateLimitedSyncOperator(task_id="future", source="op_future", config=config("op_future"))

# -- trigger params (the factory's DAG: its Params and the operator's apply_params) -----------------

globals().update(
    build_sync_dags(
        [config("op_params", rate_limit=RateLimitConfig(max_requests=5, window=timedelta(hours=1)))],
        dag_id_prefix="",
    )
)
