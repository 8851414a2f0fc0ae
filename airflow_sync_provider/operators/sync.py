"""``RateLimitedSyncOperator``: one sync of one source, with the task state telling how it went.

- success -> task success; the ``SyncResult`` dict is the XCom return value.
- nothing sent because the breaker is open or the window is full -> skipped (``when_blocked``
  may make it failed); the result is still pushed and passed to ``on_result``.
- retries exhausted, breaker tripped during this sync, non-retryable error -> failed.
Waits longer than ``defer_after`` defer the task (``SyncWaitTrigger``) and resume at the same request.
Every deferral has a timeout (its wait + ``defer_timeout_margin``): a task no triggerer resumes in
time ends as ``TIMEOUT`` (failed) with its result recorded, and frees the pool slot (``deferral``).

Every finished sync sends the six ``sync.*`` metrics (``observability.metrics``); every breaker
transition sends the breaker gauges again and may alert (``observability.alerts``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from types import MappingProxyType
from typing import Any, NoReturn

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_sync_provider import deferral, resource_state
from airflow_sync_provider.config import DEFAULT_SYNC_CONFIGS, SyncConfig
from airflow_sync_provider.exceptions import SyncAbort, SyncConfigError, SyncWaitRequired
from airflow_sync_provider.handlers import Handler, SyncContext, default_handler, items_from_handler_return
from airflow_sync_provider.hooks.guard import SourceGuard, breaker_settings
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.links import SyncDashboardLink
from airflow_sync_provider.load.bookkeeping import kept_for_truncation, settle
from airflow_sync_provider.observability import alerts, metrics
from airflow_sync_provider.observability.alerts import AlertSpec
from airflow_sync_provider.params import apply_params, full_refresh_requested, run_overrides
from airflow_sync_provider.policy import quota, rate_limit
from airflow_sync_provider.policy.breaker import BreakerSnapshot, BreakerState, Transition
from airflow_sync_provider.results import SyncErrorKind, SyncResult, plural
from airflow_sync_provider.state import SourceState
from airflow_sync_provider.sync_run import Checkpoint, SyncRun
from airflow_sync_provider.triggers.wait import SyncWaitTrigger

ResultCallback = Callable[[SyncResult], Any]
BLOCKED_KINDS = frozenset({SyncErrorKind.CIRCUIT_BREAKER_OPEN, SyncErrorKind.RATE_LIMIT_EXCEEDED})


class RateLimitedSyncOperator(BaseOperator):
    """Sync ``source`` through its rate limiter, circuit breaker and bounded retries.

    :param source: the source name; its state lives in the Variable ``sync_state_<source>``.
    :param config: the source's ``SyncConfig``; default ``DEFAULT_SYNC_CONFIGS[source]`` or defaults.
    :param handler: ``handler(ctx: SyncContext) -> int``; default: GET the endpoint, follow pages.
    :param on_result: callable(s) receiving the ``SyncResult`` of every sync, whatever its outcome.
    :param on_breaker_open: notifier(s) or callable(s) alerted when the breaker opens (closed -> open;
        a failed probe that re-opens it does not alert again). See ``observability.alerts``.
    :param on_breaker_close: notifier(s) or callable(s) alerted when a probe closes the breaker.
    :param on_rate_limited: notifier(s) or callable(s) alerted when a sync ends ``RATE_LIMITED`` or
        ``RATE_LIMIT_EXCEEDED``.
    :param resource: one of the source's ``resources`` (its name, the default task id): this task syncs
        that endpoint under the source's window, breaker, quota and pool, with its own bookmark.
    :param defer_timeout_margin: how long a deferred sync may overrun its wait (default 5 minutes)
        before Airflow times the deferral out; the task then ends as ``TIMEOUT`` and frees its slot.
    """

    ui_color = "#e8f4ea"
    operator_extra_links = (SyncDashboardLink(),)
    template_fields: Sequence[str] = ()
    # run-time collaborators (tests replace them per instance). Class defaults, not set in __init__:
    # every attribute set on a BaseOperator goes through its __setattr__, paid per DAG at parse time.
    _clock: Callable[[], float] = time.time
    _sleep: Callable[[float], None] = time.sleep
    _rng: random.Random | None = None
    _context: Mapping[str, Any] = MappingProxyType({})
    _breaker_seen: BreakerSnapshot | None = None

    def __init__(
        self,
        *,
        source: str,
        config: SyncConfig | None = None,
        handler: Handler | None = None,
        on_result: ResultCallback | Iterable[ResultCallback] | None = None,
        on_breaker_open: AlertSpec = None,
        on_breaker_close: AlertSpec = None,
        on_rate_limited: AlertSpec = None,
        defer_timeout_margin: timedelta = deferral.DEFER_TIMEOUT_MARGIN,
        resource: str | None = None,
        **kwargs: Any,
    ) -> None:
        config = config or DEFAULT_SYNC_CONFIGS.get(source) or SyncConfig(source=source)
        if resource is not None and resource not in config.resource_names:
            known = ", ".join(config.resource_names) or "none"
            raise SyncConfigError("resource", resource, f"must be a resource of {source!r} (known: {known})")
        if config.source != source:
            raise ValueError(f"config.source must equal source, got {config.source!r} for source {source!r}")
        if not isinstance(defer_timeout_margin, timedelta) or defer_timeout_margin <= timedelta(0):
            raise ValueError(
                f"defer_timeout_margin must be a positive timedelta, got {defer_timeout_margin!r}"
            )
        if kwargs.get("pool") is None:
            kwargs["pool"] = config.pool
        pool = kwargs["pool"]
        if pool != config.pool:  # the pool is what makes each sync the source's only writer
            raise SyncConfigError(
                "pool",
                pool,
                f"must be {config.pool!r} (or left out): every writer of {source!r}'s state runs in "
                "that 1-slot pool, a sync outside it can overshoot the rate limit",
            )
        kwargs.setdefault("retries", 0)
        kwargs.setdefault("task_id", resource or f"sync_{source}")
        super().__init__(**kwargs)
        self.source = source
        self.config = config
        self.resource = resource
        self.handler = handler
        self.on_result = [on_result] if callable(on_result) else list(on_result or [])
        self.on_breaker_open = alerts.normalize_targets(on_breaker_open, "on_breaker_open")
        self.on_breaker_close = alerts.normalize_targets(on_breaker_close, "on_breaker_close")
        self.on_rate_limited = alerts.normalize_targets(on_rate_limited, "on_rate_limited")
        self.defer_timeout_margin = defer_timeout_margin

    @property
    def _name(self) -> str:
        """``source`` or ``source.resource``, for log lines."""
        return self.source if self.resource is None else f"{self.source}.{self.resource}"

    def _payload(self, result: SyncResult) -> dict[str, Any]:
        """The XCom dict of ``result``; a resource's also names the resource (an optional key)."""
        payload = result.to_dict()
        if self.resource is not None:
            payload["resource"] = self.resource
        return payload

    def _default_handler(self) -> Handler:
        """``default_handler``; a child resource's requests its endpoint once per parent item."""
        if self.resource is not None:
            resource = self.config.resource(self.resource)
            if resource.parent is not None:
                from airflow_sync_provider.parent_child import child_handler

                return child_handler(self.config, resource)
        return default_handler

    @cached_property
    def hook(self) -> RateLimitedSyncHook:
        return RateLimitedSyncHook(conn_id=self.config.conn_id, clock=self._clock)

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        return self._sync(context, checkpoint=None)

    def execute_complete(
        self, context: Mapping[str, Any], event: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after a deferral with the checkpoint the trigger carried back."""
        if not event or event.get("status") != "resume" or not isinstance(event.get("checkpoint"), dict):
            raise AirflowFailException(f"{self.source}: unexpected trigger event {event!r}")
        return self._sync(context, checkpoint=Checkpoint.from_dict(event["checkpoint"]))

    def resume_execution(
        self, next_method: str, next_kwargs: dict[str, Any] | None, context: Mapping[str, Any]
    ) -> Any:
        """Airflow's resume entry point; a timed-out deferral ends the sync as ``TIMEOUT``, recorded."""
        if deferral.is_deferral_timeout(next_method, next_kwargs):
            return self._deferral_timed_out(context)
        return super().resume_execution(next_method, next_kwargs, context)  # type: ignore[arg-type]

    def _deferral_timed_out(self, context: Mapping[str, Any]) -> dict[str, Any]:
        ti = context["ti"]
        try:
            record = ti.xcom_pull(task_ids=ti.task_id, key=deferral.PROGRESS_XCOM)
        except Exception:
            self.log.warning("Could not read the deferral record of %s", self.source, exc_info=True)
            record = None
        checkpoint, error = deferral.timed_out(record, self._clock())
        config, _, _ = self._params(context)
        guard = self.hook.open_guard(
            config, log=self.log, on_transition=self._on_transition, writer=writer_id(context)
        )
        self._context, self._breaker_seen = context, guard.state.breaker
        run = SyncRun(config, self.hook, guard, checkpoint=checkpoint, clock=self._clock, log=self.log)
        return self._finish(context, run, guard, checkpoint.items, error)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: input = the API endpoint, output = the table the items landed in (if ``load``)."""
        from airflow_sync_provider.load.lineage import sync_lineage

        config = self.config if self.resource is None else self.config.for_resource(self.resource)
        return sync_lineage(config, self.hook.url_for(config.endpoint))

    # -- one sync -----------------------------------------------------------------------------------

    def _params(self, context: Mapping[str, Any]) -> tuple[SyncConfig, bool, bool]:
        """The run's config with its trigger params applied, ``dry_run`` and ``full_refresh``."""
        try:
            overrides = run_overrides(context)
            config, dry_run = apply_params(self.config, overrides)
            if self.resource is not None:
                config = config.for_resource(self.resource)
            return config, dry_run, full_refresh_requested(overrides)
        except SyncConfigError as exc:
            raise AirflowFailException(f"{self.source}: invalid trigger params: {exc}") from None

    def _sync(self, context: Mapping[str, Any], checkpoint: Checkpoint | None) -> dict[str, Any]:
        config, dry_run, full_refresh = self._params(context)
        self._context = context
        guard = self.hook.open_guard(
            config, log=self.log, on_transition=self._on_transition, writer=writer_id(context)
        )
        self._breaker_seen = guard.state.breaker
        if dry_run:
            return self._dry_run(context, config, guard)
        run = SyncRun(
            config,
            self.hook,
            guard,
            checkpoint=checkpoint,
            clock=self._clock,
            sleep=self._sleep,
            rng=self._rng,
            log=self.log,
        )
        if checkpoint is not None:
            self.log.info(
                "Resuming the sync of %s after a wait (deferral %d)", self.source, checkpoint.deferrals
            )
        else:
            b = guard.state.breaker
            self.log.info(
                "Syncing %s: breaker %s %d/%d | window %.0f%% of %d | up to %s per request",
                self._name,
                b.state.value,
                b.failure_count,
                config.circuit_breaker.failure_threshold,
                100 * guard.window_usage(),
                config.rate_limit.max_requests,
                plural(config.max_retries, "retry", "retries"),
            )
        handler = self.handler or self._default_handler()
        error: SyncAbort | None = None
        items = 0
        stored = resource_state.bookmark(guard.state, self.resource)
        ctx = SyncContext(run, context, bookmark=None if full_refresh else stored)
        try:
            items = items_from_handler_return(handler(ctx))
            ctx.publish_loads()  # replace: the staged items become the table only now
        except SyncWaitRequired as wait:
            self._defer(context, run, guard, wait)
        except SyncAbort as abort:
            error = abort
            items = run.checkpoint.items
        except Exception as exc:
            self.log.exception("The sync handler of %s raised", self.source)
            error = SyncAbort(SyncErrorKind.HANDLER_ERROR, f"{type(exc).__name__}: {exc}")
            items = run.checkpoint.items
        finally:
            ctx.close()
        return self._finish(context, run, guard, items, error, full_refresh=full_refresh)

    def _finish(
        self,
        context: Mapping[str, Any],
        run: SyncRun,
        guard: SourceGuard,
        items: int,
        error: SyncAbort | None,
        *,
        full_refresh: bool = False,
    ) -> dict[str, Any]:
        """Settle the bookmark (it moves only after a committed load), store and report the result."""
        stored = resource_state.bookmark(guard.state, self.resource)
        result, bookmark = settle(
            run.config,
            run.checkpoint.load,
            stored,
            full_refresh=full_refresh,
            result=run.result(items=items, error=error),
        )
        if result.success and kept_for_truncation(run.config, result):
            self.log.warning(
                "%s: stopped at max_pages, so the bookmark stays at %r (the pages not read may hold older "
                "items; set incremental.order: asc if the source returns items in cursor order)",
                self.source,
                stored,
            )
        if bookmark != stored:
            if stored is None:
                self.log.info("%s: first bookmark %r", self._name, bookmark)
            else:
                self.log.info("%s: bookmark %r -> %r", self._name, stored, bookmark)
            guard.state = resource_state.with_bookmark(guard.state, self.resource, bookmark)
        guard.state = resource_state.with_result(guard.state, self.resource, self._payload(result))
        guard.finish(self._payload(result))
        return self._report(context, result, error, guard)

    def _defer(
        self, context: Mapping[str, Any], run: SyncRun, guard: SourceGuard, wait: SyncWaitRequired
    ) -> NoReturn:
        """Free the worker for a long wait; the trigger carries the checkpoint back."""
        run.checkpoint.deferrals += 1
        guard.flush()
        timeout = deferral.defer_timeout(wait.seconds, self.defer_timeout_margin)
        record = deferral.progress_record(run.checkpoint, wait, timeout)
        try:
            context["ti"].xcom_push(key=deferral.PROGRESS_XCOM, value=record)
        except Exception:  # only a timed-out deferral needs it, and it copes without
            self.log.warning("Could not push the deferral record of %s", self.source, exc_info=True)
        self.log.info(
            "%s: deferring for %.1fs (%s); the worker slot is freed; unless resumed within %.0fs the "
            "sync ends as TIMEOUT",
            self.source,
            wait.seconds,
            wait.reason,
            timeout.total_seconds(),
        )
        self.defer(
            trigger=SyncWaitTrigger(
                resume_at=self._clock() + wait.seconds,
                checkpoint=run.checkpoint.to_dict(),
                reason=wait.reason,
            ),
            method_name="execute_complete",
            timeout=timeout,
        )

    def _dry_run(self, context: Mapping[str, Any], config: SyncConfig, guard: Any) -> dict[str, Any]:
        admission = guard.peek()
        verdict = "a sync would be sent" if admission.allowed else f"blocked: {admission.message}"
        self.log.info("Dry run of %s: %s (nothing sent, state unchanged)", self.source, verdict)
        run = SyncRun(config, self.hook, guard, clock=self._clock, log=self.log)
        error = (
            None if admission.allowed else SyncAbort(admission.kind, admission.message, sent_requests=False)
        )
        result = run.result(items=0, error=error)
        if error is None:
            return result.to_dict()
        context["ti"].xcom_push(key="return_value", value=result.to_dict())
        raise AirflowSkipException(f"dry run: {admission.message}")

    def _report(
        self,
        context: Mapping[str, Any],
        result: SyncResult,
        error: SyncAbort | None,
        guard: SourceGuard | None = None,
    ) -> dict[str, Any]:
        if result.success:
            self.log.info("%s", result.summary())
        else:
            self.log.warning("%s", result.summary())
        if guard is not None:
            self._emit_metrics(result, guard)
            if self.on_rate_limited:
                self._alert_rate_limited(context, result, guard)
        for callback in self.on_result:
            try:
                callback(result)
            except Exception:
                self.log.exception("on_result callback %r raised; the sync result stands", callback)
        payload = self._payload(result)
        if error is None:
            return payload
        context["ti"].xcom_push(key="return_value", value=payload)
        if error.kind in BLOCKED_KINDS and not error.sent_requests and self.config.when_blocked == "skipped":
            raise AirflowSkipException(result.summary())
        raise AirflowFailException(result.summary())

    # -- metrics and alerts ------------------------------------------------------------------------

    def _emit_metrics(self, result: SyncResult, guard: SourceGuard) -> None:
        try:
            learned = guard.learned_quota(self._clock())
            remaining = learned.remaining if learned is not None else None
            metrics.emit_sync(result, guard.state.breaker, guard.window_usage(), api_remaining=remaining)
        except Exception:  # emit_sync already swallows backend errors; this is belt and braces
            self.log.warning("Could not send the metrics of %s", self.source, exc_info=True)

    def _alert_rate_limited(self, context: Mapping[str, Any], result: SyncResult, guard: SourceGuard) -> None:
        """One alert for a learned spent quota beyond ``max_wait`` (by the sync that learned it, not by
        every run it refuses); else one for a sync that ended rate-limited."""
        if guard.learned_long_wait is not None:
            learned = alerts.learned_quota_alert(
                result,
                guard.learned_long_wait,
                guard.state.breaker,
                guard.settings,
                at=self._clock(),
                max_wait=self.config.max_wait / timedelta(seconds=1),
                cap=guard.learned_cap,
                context=context,
            )
            self._send_alert("on_rate_limited", self.on_rate_limited, learned, context)
            return
        if result.error not in alerts.RATE_LIMIT_KINDS:
            return
        if result.error is SyncErrorKind.RATE_LIMIT_EXCEEDED and (result.error_message or "").startswith(
            quota.SPENT
        ):
            self.log.info(
                "%s: refused by a quota learned earlier; alerted when it was learned, not again", self.source
            )
            return
        retry_at = None
        oldest = rate_limit.oldest(guard.state.window)
        if result.error is SyncErrorKind.RATE_LIMIT_EXCEEDED and oldest is not None:
            retry_at = oldest + guard.hold_seconds
        alert = alerts.rate_limited_alert(
            result,
            guard.state.breaker,
            guard.settings,
            at=self._clock(),
            retry_at=retry_at,
            context=context,
        )
        self._send_alert("on_rate_limited", self.on_rate_limited, alert, context)

    def _send_alert(
        self, name: str, targets: list[Any], alert: alerts.BreakerAlert, context: Mapping[str, Any]
    ) -> None:
        sent = alerts.send_alert(targets, alert, context, name=name, logger=self.log)
        (self.log.info if sent == len(targets) else self.log.warning)(
            "%s alert for %s sent to %d of %d target(s): %s",
            name,
            self.source,
            sent,
            len(targets),
            alert.message,
        )

    def _on_transition(self, moved: Transition, state: SourceState) -> None:
        """Called by the guard once per breaker transition (after its log line): gauges and alerts."""
        previous = self._breaker_seen or state.breaker
        self._breaker_seen = state.breaker
        try:
            metrics.emit_breaker(self.source, state.breaker)
        except Exception:
            self.log.warning("Could not send the breaker metrics of %s", self.source, exc_info=True)
        try:
            self._alert_transition(moved, state, previous)
        except Exception:
            self.log.exception("Alerting the breaker transition of %s failed; the sync goes on", self.source)

    def _alert_transition(self, moved: Transition, state: SourceState, previous: BreakerSnapshot) -> None:
        opened = moved.target_state is BreakerState.OPEN and moved.source_state is BreakerState.CLOSED
        closed = moved.target_state is BreakerState.CLOSED
        if opened and self.on_breaker_open:
            alert = alerts.breaker_open_alert(
                self.source,
                state.breaker,
                breaker_settings(self.config),
                at=moved.at,
                reason=moved.reason,
                context=self._context,
            )
            self._send_alert("on_breaker_open", self.on_breaker_open, alert, self._context)
        elif moved.target_state is BreakerState.OPEN and self.on_breaker_open:
            self.log.info("%s: probe failed, breaker open again; no new on_breaker_open alert", self.source)
        elif closed and self.on_breaker_close:
            alert = alerts.breaker_close_alert(
                self.source,
                state.breaker,
                previous,
                breaker_settings(self.config),
                at=moved.at,
                reason=moved.reason,
                context=self._context,
            )
            self._send_alert("on_breaker_close", self.on_breaker_close, alert, self._context)


def writer_id(context: Mapping[str, Any]) -> str | None:
    """``dag_id/run_id`` of the running task: the ``writer`` of its state writes."""
    run = context.get("dag_run")
    dag_id = getattr(run, "dag_id", None)
    run_id = getattr(run, "run_id", None) or context.get("run_id")
    if not run_id:
        return None
    return f"{dag_id}/{run_id}" if dag_id else str(run_id)
