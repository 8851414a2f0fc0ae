"""``build_sync_dags``: one DAG per source, from configs. A thin composer; no I/O at parse time.

Use it from any DAG file::

    from airflow_sync_provider import build_sync_dags
    globals().update(build_sync_dags())
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, Param
from airflow.sdk.definitions.param import ParamsDict

from airflow_sync_provider.authoring.asset_schedule import describe_triggers, sync_schedule
from airflow_sync_provider.authoring.review import Notifiers, add_review, collect_submissions
from airflow_sync_provider.config import DEFAULT_SYNC_CONFIGS, SyncConfig
from airflow_sync_provider.config.durations import format_duration
from airflow_sync_provider.observability.alerts import AlertSpec
from airflow_sync_provider.operators.sync import RateLimitedSyncOperator, ResultCallback
from airflow_sync_provider.run.handlers import Handler

START_DATE = pendulum.datetime(2024, 1, 1, tz="UTC")
SYNC_TASK_ID = "sync"


def build_sync_dags(
    configs: Mapping[str, SyncConfig] | Iterable[SyncConfig] | None = None,
    *,
    handler: Handler | Mapping[str, Handler] | None = None,
    on_result: ResultCallback | Iterable[ResultCallback] | None = None,
    default_args: Mapping[str, Any] | None = None,
    dag_id_prefix: str = "sync_",
    tags: Iterable[str] = (),
    operator_kwargs: Mapping[str, Any] | None = None,
    assets: Mapping[str, Asset] | None = None,
    review_notifiers: Notifiers = None,
    on_breaker_open: AlertSpec | Mapping[str, AlertSpec] = None,
    on_breaker_close: AlertSpec | Mapping[str, AlertSpec] = None,
    on_rate_limited: AlertSpec | Mapping[str, AlertSpec] = None,
    trigger_params: bool = True,
) -> dict[str, DAG]:
    """One DAG per source, keyed by dag id ``f"{dag_id_prefix}{source}"``.

    :param configs: ``SyncConfig``s (a mapping or an iterable); ``None`` means ``DEFAULT_SYNC_CONFIGS``.
    :param handler: one handler for every source, or a mapping of source -> handler.
    :param on_result: callable(s) receiving every ``SyncResult``.
    :param default_args: merged into each DAG's default args (sync tasks keep ``retries=0`` unless set).
    :param dag_id_prefix: prefix of every dag id.
    :param tags: extra DAG tags.
    :param operator_kwargs: extra keyword arguments for every ``RateLimitedSyncOperator``.
    :param assets: ready ``Asset`` objects by name for ``trigger_assets`` (e.g. with an ``AssetWatcher``);
        names not given become plain ``Asset(name)``.
    :param review_notifiers: notifier(s) called when a review (``review: true`` sources) starts waiting.
    :param on_breaker_open: alert target(s) (Airflow notifiers or callables) for a breaker that opens;
        one value for every source, or a mapping of source -> value (sources not in it get none).
    :param on_breaker_close: the same, for a breaker that a successful probe closes.
    :param on_rate_limited: the same, for a sync that ends ``RATE_LIMITED`` / ``RATE_LIMIT_EXCEEDED``.
    :param trigger_params: declare the manual-trigger params (dry run, tighter limits) in the trigger
        form (default). They cost little at parse time (see ``sync_params``); with ``False`` the same
        keys still work in a run's conf (``apply_params`` checks them, tighten-only) but the form shows
        none.
    """
    if configs is None:
        configs = DEFAULT_SYNC_CONFIGS
    items = config_list(configs)
    seen: set[str] = set()
    dags: dict[str, DAG] = {}
    _check_alert_sources(
        {getattr(c, "source", None) for c in items},
        on_breaker_open=on_breaker_open,
        on_breaker_close=on_breaker_close,
        on_rate_limited=on_rate_limited,
    )
    for config in items:
        if not isinstance(config, SyncConfig):
            raise TypeError(f"configs must hold SyncConfig objects, got {type(config).__name__}")
        if config.source in seen:
            raise ValueError(f"source {config.source!r} appears twice in configs")
        seen.add(config.source)
        source_handler = handler.get(config.source) if isinstance(handler, Mapping) else handler
        source_alerts = {
            name: _per_source(spec, config.source)
            for name, spec in (
                ("on_breaker_open", on_breaker_open),
                ("on_breaker_close", on_breaker_close),
                ("on_rate_limited", on_rate_limited),
            )
        }
        dag = _build_dag(
            config,
            handler=source_handler,
            on_result=on_result,
            default_args=default_args,
            dag_id=f"{dag_id_prefix}{config.source}",
            tags=tags,
            assets=assets,
            review_notifiers=review_notifiers,
            trigger_params=trigger_params,
            operator_kwargs={
                **(operator_kwargs or {}),
                **{name: spec for name, spec in source_alerts.items() if spec is not None},
            },
        )
        dags[dag.dag_id] = dag
    return dags


def config_list(configs: Mapping[str, SyncConfig] | Iterable[SyncConfig]) -> list[SyncConfig]:
    """``configs`` as a list; a mapping must be keyed by each config's source."""
    if not isinstance(configs, Mapping):
        return list(configs)
    for key, config in configs.items():
        if isinstance(config, SyncConfig) and key != config.source:
            raise ValueError(f"configs[{key!r}] holds the config of source {config.source!r}")
    return list(configs.values())


def _check_alert_sources(sources: set[Any], **specs: Any) -> None:
    """A per-source alert mapping naming a source that is not configured is a typo: refuse it."""
    for name, spec in specs.items():
        if isinstance(spec, Mapping):
            unknown = sorted(set(spec) - sources)
            if unknown:
                raise ValueError(f"{name} names sources that are not configured: {unknown}")


def _per_source(spec: AlertSpec | Mapping[str, AlertSpec], source: str) -> AlertSpec:
    """One alert spec for every source, or a mapping of source -> spec."""
    return spec.get(source) if isinstance(spec, Mapping) else spec


def _build_dag(
    config: SyncConfig,
    *,
    handler: Handler | None,
    on_result: Any,
    default_args: Mapping[str, Any] | None,
    dag_id: str,
    tags: Iterable[str],
    operator_kwargs: Mapping[str, Any],
    assets: Mapping[str, Asset] | None = None,
    review_notifiers: Notifiers = None,
    trigger_params: bool = True,
) -> DAG:
    args = {"owner": "sync", "retries": 0, **(default_args or {})}
    with DAG(
        dag_id=dag_id,
        schedule=sync_schedule(config, assets),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=args,
        tags=sorted({"sync", f"source:{config.source}", *tags}),
        doc_md=describe_source(config),
        description=f"Rate-limited sync of {config.source} ({config.rate_limit.max_requests} requests per "
        f"{format_duration(config.rate_limit.window)})",
    ) as dag:
        if config.resources:
            _resource_tasks(config, handler, on_result, {"retries": args["retries"], **operator_kwargs})
        else:
            sync = RateLimitedSyncOperator(
                task_id=SYNC_TASK_ID,
                source=config.source,
                config=config,
                handler=handler or (collect_submissions if config.review else None),
                on_result=on_result,
                # explicit, so that default_args' retries reach the task (the operator defaults to 0)
                **{"retries": args["retries"], **operator_kwargs},
            )
        if config.review:
            add_review(sync, source=config.source, timeout=config.review_timeout, notifiers=review_notifiers)
    if trigger_params:
        # Added after the tasks, as Airflow's own ``dag.param()`` does: DAG(params=...) would re-check
        # every schema against its meta-schema and deep-copy the form into each task, per DAG. The run's
        # params still merge dag.params first (``process_params``), validated against these schemas.
        dag.params.update(sync_params(config))
    return dag


def _resource_tasks(
    config: SyncConfig, handler: Handler | None, on_result: Any, operator_kwargs: Mapping[str, Any]
) -> None:
    """One task per resource (task id = its name), all in the source's pool; a parent runs before its
    children (each child reads the parent's items itself, through the same window)."""
    tasks = {
        r.name: RateLimitedSyncOperator(
            task_id=r.name,
            source=config.source,
            config=config,
            resource=r.name,
            handler=handler,
            on_result=on_result,
            **operator_kwargs,
        )
        for r in config.resources
    }
    for r in config.resources:
        if r.parent is not None:
            tasks[r.parent] >> tasks[r.name]


# Draft 7: the form's schemas need nothing newer, and a trigger's conf is validated against them by the
# api-server and again in the task (``process_params``), where the default 2020-12 meta-schema costs ~3x more.
DRAFT_7: dict[str, Any] = {"$schema": "http://json-schema.org/draft-07/schema#"}

FormSpec = tuple[tuple[str, Any, str, dict[str, Any]], ...]


def sync_params(config: SyncConfig) -> dict[str, Param]:
    """Manual-trigger params. Overrides can only tighten limits; none can change where requests go.

    Fresh ``Param`` objects per DAG (a run's params mutate them), from specs checked once per distinct set
    of limits: the check Airflow makes when a scheduled DAG declares params (valid defaults). An
    incremental source also gets ``full_refresh``.
    """
    incremental = config.incremental.param if config.incremental is not None else None
    for name in config.resource_names:  # a resource's own incremental section offers full_refresh too
        own = config.for_resource(name).incremental
        incremental = incremental or (own.param if own is not None else None)
    specs = _form_specs(config.rate_limit.max_requests, config.max_retries, config.max_pages, incremental)
    return {name: Param(default, description, **dict(schema)) for name, default, description, schema in specs}


@functools.lru_cache(maxsize=4096)
def _form_specs(max_requests: int, max_retries: int, max_pages: int, incremental: str | None) -> FormSpec:
    def optional_int(minimum: int, maximum: int, title: str) -> dict[str, Any]:
        return {
            "type": ["null", "integer"],
            "minimum": minimum,
            "maximum": maximum,
            "title": title,
            **DRAFT_7,
        }

    refresh: FormSpec = ()
    if incremental is not None:
        refresh = (
            (
                "full_refresh",
                False,
                "Ignore the incremental bookmark this run: fetch everything again "
                f"(from incremental.initial_value) and reset the bookmark. Param {incremental!r}.",
                {"type": "boolean", "title": "Full refresh", **DRAFT_7},
            ),
        )
    specs: FormSpec = (
        *refresh,
        (
            "dry_run",
            False,
            "Check the breaker and the rate-limit window, send nothing.",
            {"type": "boolean", "title": "Dry run", **DRAFT_7},
        ),
        (
            "max_requests",
            None,
            "This run only: at most this many requests in the window "
            f"(the configured limit is {max_requests}).",
            optional_int(1, max_requests, "Tighter window limit"),
        ),
        (
            "max_retries",
            None,
            f"This run only: retries per request (configured: {max_retries}).",
            optional_int(0, max_retries, "Fewer retries"),
        ),
        (
            "max_pages",
            None,
            f"This run only: stop after this many pages (configured: {max_pages}).",
            optional_int(1, max_pages, "Fewer pages"),
        ),
    )
    ParamsDict({name: Param(d, desc, **dict(schema)) for name, d, desc, schema in specs}).validate()
    return specs


def describe_source(config: SyncConfig) -> str:
    """The DAG's ``doc_md``: the source's limits and how to read its state."""
    rl, bo, cb = config.rate_limit, config.backoff, config.circuit_breaker
    schedule = format_duration(config.schedule) if isinstance(config.schedule, timedelta) else config.schedule
    return f"""\
### Sync `{config.source}`

{_endpoints_doc(config)} on connection `{config.conn_id}`, every page through the source's rate limiter
and circuit breaker. Schedule: `{schedule}`.{describe_triggers(config)}{_review_doc(config)}

| limit | value |
|---|---|
| rate limit | {rl.max_requests} requests per {format_duration(rl.window)} (sliding window) |
| retries per request | {config.max_retries}, backoff {format_duration(bo.initial_delay)} x{bo.multiplier:g} \
up to {format_duration(bo.max_delay)}, jitter {bo.strategy} {bo.jitter_factor:g} |
| circuit breaker | opens after {cb.failure_threshold} consecutive failures, probes after \
{format_duration(cb.reset_timeout)} ({cb.half_open_max_attempts} probe) |
| timeout / longest wait | {format_duration(config.timeout)} per request / \
{format_duration(config.max_wait)} |

**State**: Admin -> Variables -> `{config.variable_key}` (JSON: `breaker.state`, `breaker.failure_count`,
`window`, `last_result`), or `python -m airflow_sync_provider states`. **Reset** a stuck breaker with the
`sync_admin` DAG (action `reset_breaker`, source `{config.source}`).

**Task states**: success = synced; skipped = nothing sent (breaker open or window full); failed =
retries exhausted, breaker tripped, or a non-retryable error. The XCom `return_value` is the SyncResult.
Runs use the pool `{config.pool}` (1 slot): run `python -m airflow_sync_provider setup` once.
"""


def _endpoints_doc(config: SyncConfig) -> str:
    """``GET `/path``` or, with resources, one task per endpoint under the one limit."""
    if not config.resources:
        return f"{config.method} `{config.endpoint}`"
    listed = ", ".join(
        f"`{r.name}` ({config.for_resource(r.name).method} `{r.endpoint.path}`)" for r in config.resources
    )
    return f"Resources (one task each, one window for all): {listed},"


def _review_doc(config: SyncConfig) -> str:
    if not config.review:
        return ""
    return f"""

**Review**: task `review` waits for an administrator (Browse -> Required Actions, or REST
`PATCH .../taskInstances/review/-1/hitlDetails`). Approve publishes the fetched submissions (XCom
`published`, asset `{config.source}_published`); Reject, or no answer within
{format_duration(config.review_timeout)}, publishes none and records them in XCom `rejected`."""
