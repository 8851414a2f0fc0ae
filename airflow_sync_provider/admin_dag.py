"""``sync_admin``: a manual DAG to show every source's state or reset one source's breaker.

The reset of source X runs as task ``reset_breaker_X`` in pool ``sync_X`` (1 slot, deferred tasks
included), the pool every sync of X runs in, so a reset can never interleave with a running sync
and be overwritten by it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_sync_provider.authoring.admin_names import (
    ACTIONS,
    ADMIN_DAG_ID,
    RESET_ACTION,
    SHOW_ACTION,
    reset_task_id,
)
from airflow_sync_provider.authoring.dag_factory import START_DATE, config_list
from airflow_sync_provider.config import DEFAULT_SYNC_CONFIGS, SyncConfig

SHOW_TASK_ID = SHOW_ACTION


def build_admin_dag(
    configs: Mapping[str, SyncConfig] | Iterable[SyncConfig] | None = None, *, dag_id: str = ADMIN_DAG_ID
) -> DAG:
    """The admin DAG for ``configs`` (default ``DEFAULT_SYNC_CONFIGS``)."""
    if configs is None:
        configs = DEFAULT_SYNC_CONFIGS
    by_source = {c.source: c for c in config_list(configs)}
    sources = sorted(by_source)
    if not sources:
        raise ValueError("build_admin_dag needs at least one source")
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        tags=["sync", "admin"],
        doc_md=__doc__,
        params={
            "source": Param(sources[0], type="string", enum=sources, title="Source"),
            "action": Param("show_states", type="string", enum=list(ACTIONS), title="Action"),
        },
        description="Show sync states or reset a source's circuit breaker",
    ) as dag:

        @task.branch(task_id="route")
        def route(params: dict[str, Any] | None = None) -> str:
            params = params or {}
            if params.get("action") == RESET_ACTION:
                return reset_task_id(str(params["source"]))
            return SHOW_TASK_ID

        @task(task_id=SHOW_TASK_ID)
        def show_states() -> dict[str, Any]:
            from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
            from airflow_sync_provider.state.table import format_states

            states = RateLimitedSyncHook(configs=by_source).get_all_states()
            print(format_states(states.values()))
            return states

        routed = route()
        routed >> show_states()
        for source in sources:
            routed >> task(task_id=reset_task_id(source), pool=by_source[source].pool)(_reset)(source)
    return dag


def _reset(source: str) -> dict[str, Any]:
    """Reset ``source``'s breaker (runs in the source's pool)."""
    from airflow.sdk import get_current_context

    from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
    from airflow_sync_provider.operators.run_params import writer_id
    from airflow_sync_provider.state.table import format_states

    hook = RateLimitedSyncHook()
    before = hook.get_circuit_breaker_state(source)
    after = hook.reset_circuit_breaker(source, writer=writer_id(get_current_context()))
    print(f"Reset the breaker of {source}: {before['state']} ({before['failure_count']} failures) -> closed")
    print(format_states([after]))
    return after
