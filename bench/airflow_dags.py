"""DAGs the benchmarks run in a throwaway Airflow (copied into its dags folder by bench/deployment.py).

Every request goes to the demo API through the connection ``sync_default`` (set by the deployment).

- ``bench_outage``, ``bench_defer_ours``: factory DAGs (seed defaults, manual trigger only).
- ``bench_defer_sleeping``: what users write without the provider: ``HttpHook`` with a tenacity
  retry that honours ``Retry-After`` by sleeping in the worker.
- ``bench_overhead``: one task that times syncs of 1 and 20 pages with our operator (counting the
  Variable calls its state store makes through the Execution API) against the same GETs through a
  plain ``requests.Session``, alternately; the numbers are its XCom return value.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from functools import cached_property
from typing import Any

import pendulum
import requests
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, task

from airflow_sync_provider import RateLimitedSyncHook, RateLimitedSyncOperator, SyncConfig, build_sync_dags
from airflow_sync_provider.config import RateLimitConfig
from airflow_sync_provider.state.store import VariableStateStore

START = pendulum.datetime(2026, 1, 1, tz="UTC")
RETRY_STATUSES = (429, 500, 502, 503, 504)

globals().update(
    build_sync_dags(
        [SyncConfig(source="outage", schedule=None), SyncConfig(source="defer_ours", schedule=None)],
        dag_id_prefix="bench_",
    )
)


# -- the sleeping alternative ----------------------------------------------------------------------


def sleeping_sync() -> int:
    """Paginated GET with HttpHook + tenacity; a 429/5xx waits its Retry-After with time.sleep."""
    import tenacity
    from airflow.providers.http.hooks.http import HttpHook

    def retry_after(state: tenacity.RetryCallState) -> float:
        response = state.outcome.result() if state.outcome else None
        value = response.headers.get("Retry-After", "") if response is not None else ""
        return float(value) if value.isdigit() else 2.0**state.attempt_number

    retry_args = {
        "retry": tenacity.retry_if_result(lambda response: response.status_code in RETRY_STATUSES),
        "wait": retry_after,
        "stop": tenacity.stop_after_attempt(4),
    }
    hook = HttpHook(method="GET", http_conn_id="sync_default")
    items, cursor = 0, None
    while True:
        response = hook.run_with_advanced_retry(
            _retry_args=retry_args,
            endpoint="/defer_sleeping",
            data={"cursor": cursor} if cursor else None,
            extra_options={"check_response": False},
        )
        response.raise_for_status()
        body = response.json()
        items += len(body["items"])
        cursor = body.get("next_cursor")
        if not cursor:
            return items


with DAG(dag_id="bench_defer_sleeping", schedule=None, start_date=START, catchup=False, max_active_runs=1):
    PythonOperator(task_id="sync", python_callable=sleeping_sync)


# -- overhead ----------------------------------------------------------------------------------------


class CountingVariables:
    """The Task SDK's ``Variable`` with every call counted and timed."""

    def __init__(self) -> None:
        from airflow.sdk import Variable

        self._variable = Variable
        self.gets = 0
        self.sets = 0
        self.seconds = 0.0

    def get(self, key: str, default: Any = None) -> Any:
        started = time.perf_counter()
        try:
            return self._variable.get(key, default)
        finally:
            self.gets += 1
            self.seconds += time.perf_counter() - started

    def set(self, key: str, value: Any, description: str | None = None) -> None:
        started = time.perf_counter()
        try:
            self._variable.set(key, value, description=description)
        finally:
            self.sets += 1
            self.seconds += time.perf_counter() - started


class CountingSyncOperator(RateLimitedSyncOperator):
    """Our operator, unchanged, except that its state store's Variable API is ``CountingVariables``."""

    def __init__(self, *, variables: CountingVariables, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.variables = variables

    @cached_property
    def hook(self) -> RateLimitedSyncHook:
        store = VariableStateStore(variable_api=self.variables)
        return RateLimitedSyncHook(conn_id=self.config.conn_id, store=store, clock=self._clock)


def plain_sync(url: str) -> int:
    """The same GETs through a plain requests.Session (follows Link rel=next)."""
    pages = 0
    with requests.Session() as session:
        next_url: str | None = url
        while next_url:
            response = session.get(next_url, timeout=30)
            response.raise_for_status()
            response.json()
            pages += 1
            next_url = response.links.get("next", {}).get("url")
    return pages


@task(task_id="measure")
def measure(**context: Any) -> dict[str, Any]:
    from airflow.sdk.bases.operator import ExecutorSafeguard

    ExecutorSafeguard.test_mode = True  # we call execute() of inner operators on purpose
    reps = int(os.environ.get("BENCH_OVERHEAD_REPS", "5"))
    base_url = os.environ["BENCH_DEMO_URL"]
    out: dict[str, Any] = {}
    for pages, endpoint in ((1, "/airdrops?limit=120"), (20, "/airdrops?limit=6")):
        config = SyncConfig(
            source=f"overhead_p{pages}",
            endpoint=endpoint,
            schedule=None,
            rate_limit=RateLimitConfig(max_requests=10_000, window=timedelta(hours=1)),
        )
        rows = []
        for rep in range(reps + 1):  # rep 0 warms up both sides
            variables = CountingVariables()
            op = CountingSyncOperator(
                task_id=f"inner_{pages}_{rep}", source=config.source, config=config, variables=variables
            )
            started = time.perf_counter()
            result = op.execute(context)
            ours = time.perf_counter() - started
            started = time.perf_counter()
            plain_pages = plain_sync(base_url + endpoint)
            plain = time.perf_counter() - started
            if rep == 0:
                continue
            if not result["success"] or plain_pages != pages:
                raise RuntimeError(f"unexpected sync: {result}, plain pages {plain_pages}")
            rows.append(
                {
                    "ours_ms": ours * 1000,
                    "plain_ms": plain * 1000,
                    "variable_gets": variables.gets,
                    "variable_sets": variables.sets,
                    "variable_ms": variables.seconds * 1000,
                }
            )
        out[str(pages)] = rows
    out["by_limit"] = by_limit(context, reps, base_url)
    return out


def by_limit(context: Any, reps: int, base_url: str) -> dict[str, dict[str, list[dict[str, float]]]]:
    """1- and 20-page syncs of a source whose window already holds ``limit - 21`` requests of the last
    55 min (seeded in the form the sync itself would write), at limits 60 and 10,000, and at 10,000
    with the exact log forced (``LOG_MAX`` raised: the state before buckets); alternately."""
    from airflow.sdk import Variable

    from airflow_sync_provider.hooks.guard import hold_seconds
    from airflow_sync_provider.policy import rate_limit
    from airflow_sync_provider.state.store import SourceState, variable_key

    variants = {"60": (60, False), "10000": (10_000, False), "10000_exact_log": (10_000, True)}
    out: dict[str, dict[str, list[dict[str, float]]]] = {v: {"1": [], "20": []} for v in variants}
    default_log_max = rate_limit.LOG_MAX
    for rep in range(reps + 1):  # rep 0 warms up
        for variant, (limit, exact_log) in variants.items():
            for pages, endpoint in ((1, "/airdrops?limit=120"), (20, "/airdrops?limit=6")):
                source = f"overhead_l{variant}_p{pages}"
                config = SyncConfig(
                    source=source,
                    endpoint=endpoint,
                    schedule=None,
                    rate_limit=RateLimitConfig(max_requests=limit, window=timedelta(hours=1)),
                )
                rate_limit.LOG_MAX = 10**9 if exact_log else default_log_max
                try:
                    now, n = time.time(), limit - 21
                    seed = tuple(now - 3300.0 + i * 3300.0 / n for i in range(n))
                    window = rate_limit.fit(seed, now, max_requests=limit, window=hold_seconds(config))
                    Variable.set(variable_key(source), SourceState(source, window=window).to_json())
                    variables = CountingVariables()
                    op = CountingSyncOperator(
                        task_id=f"inner_l{variant}_{pages}_{rep}",
                        source=source,
                        config=config,
                        variables=variables,
                    )
                    started = time.perf_counter()
                    result = op.execute(context)
                    ours = time.perf_counter() - started
                finally:
                    rate_limit.LOG_MAX = default_log_max
                if not result["success"] or result.get("pages", pages) != pages:
                    raise RuntimeError(f"unexpected sync at limit {variant}: {result}")
                if rep == 0:
                    continue
                out[variant][str(pages)].append(
                    {
                        "ours_ms": ours * 1000,
                        "variable_gets": variables.gets,
                        "variable_sets": variables.sets,
                        "variable_ms": variables.seconds * 1000,
                        "state_bytes": len(Variable.get(variable_key(source)).encode()),
                    }
                )
    return out


with DAG(dag_id="bench_overhead", schedule=None, start_date=START, catchup=False, max_active_runs=1):
    measure()
