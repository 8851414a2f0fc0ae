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

This module orchestrates; its parts live beside it: ``run_params`` (the run's config and params),
``deferring`` (deferral and its timeout), ``settling`` (bookmark and stored result), ``signals``
(metrics and alerts).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any, NoReturn

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_sync_provider.config import DEFAULT_SYNC_CONFIGS, SyncConfig
from airflow_sync_provider.exceptions import SyncAbort, SyncConfigError, SyncWaitRequired
from airflow_sync_provider.hooks.guard import SourceGuard
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.observability import alerts
from airflow_sync_provider.observability.alerts import AlertSpec
from airflow_sync_provider.operators import deferring, settling
from airflow_sync_provider.operators.links import SyncDashboardLink
from airflow_sync_provider.operators.run_params import read_run_params, writer_id
from airflow_sync_provider.operators.signals import SyncSignals
from airflow_sync_provider.results import SyncErrorKind, SyncResult, plural
from airflow_sync_provider.run import deferral
from airflow_sync_provider.run.handlers import (
    Handler,
    SyncContext,
    default_handler,
    items_from_handler_return,
)
from airflow_sync_provider.run.sync_run import Checkpoint, SyncRun
from airflow_sync_provider.state import resources as resource_state
from airflow_sync_provider.state.store import SourceState

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

    def _default_handler(self) -> Handler:
        """``default_handler``; a child resource's requests its endpoint once per parent item."""
        if self.resource is not None:
            resource = self.config.resource(self.resource)
            if resource.parent is not None:
                from airflow_sync_provider.run.parent_child import child_handler

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
        """The sync ends as ``TIMEOUT`` with the progress its deferral recorded (the path of every sync,
        without calling the handler)."""
        checkpoint, error = deferring.timed_out(context, self.source, now=self._clock(), log=self.log)
        return self._sync(context, checkpoint=checkpoint, ended=error)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: input = the API endpoint, output = the table the items landed in (if ``load``)."""
        from airflow_sync_provider.load.lineage import sync_lineage

        config = self.config if self.resource is None else self.config.for_resource(self.resource)
        return sync_lineage(config, self.hook.url_for(config.endpoint))

    # -- one sync -----------------------------------------------------------------------------------

    def _sync(
        self, context: Mapping[str, Any], checkpoint: Checkpoint | None, ended: SyncAbort | None = None
    ) -> dict[str, Any]:
        """One sync: open the source's state, run the handler (unless ``ended`` already says how the
        sync ended), settle the bookmark, store and report the result."""
        params = read_run_params(self.config, self.resource, context)
        signals = SyncSignals(
            self.config,
            self.on_breaker_open,
            self.on_breaker_close,
            self.on_rate_limited,
            context=context,
            clock=self._clock,
            log=self.log,
        )
        guard = self.hook.open_guard(
            params.config, log=self.log, on_transition=signals.on_transition, writer=writer_id(context)
        )
        if params.dry_run and ended is None:
            return self._dry_run(context, params.config, guard)
        run = SyncRun(
            params.config,
            self.hook,
            guard,
            checkpoint=checkpoint,
            clock=self._clock,
            sleep=self._sleep,
            rng=self._rng,
            log=self.log,
        )
        error: SyncAbort | None
        # The state is read at the first request (or at the end), not before: that read starts the log.
        starting = ended is None and checkpoint is None
        guard.on_first_read = lambda state: self._started(signals, run, guard, state, log_start=starting)
        if ended is not None:
            items, error = run.checkpoint.items, ended
        else:
            if checkpoint is not None:
                deferrals = run.checkpoint.deferrals
                self.log.info("Resuming the sync of %s after a wait (deferral %d)", self.source, deferrals)
            items, error = self._handle(context, run, guard, full_refresh=params.full_refresh)
        result = settling.settle_run(
            run,
            guard,
            items,
            error,
            resource=self.resource,
            full_refresh=params.full_refresh,
            log=self.log,
        )
        signals.after_sync(result, guard)
        return self._report(context, result, error)

    def _started(
        self, signals: SyncSignals, run: SyncRun, guard: SourceGuard, state: SourceState, *, log_start: bool
    ) -> None:
        """The source's state was just read: the breaker as the sync found it, and the start line."""
        signals.breaker_seen = state.breaker
        if not log_start:
            return
        b, config = state.breaker, run.config
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

    def _handle(
        self, context: Mapping[str, Any], run: SyncRun, guard: SourceGuard, *, full_refresh: bool
    ) -> tuple[int, SyncAbort | None]:
        """Run the handler: the items it processed and how it ended (a long wait defers the task)."""
        handler = self.handler or self._default_handler()

        def stored() -> Any:
            return resource_state.bookmark(guard.state, self.resource)

        ctx = SyncContext(run, context, stored_bookmark=None if full_refresh else stored)
        try:
            items = items_from_handler_return(handler(ctx))
            ctx.publish_loads()  # replace: the staged items become the table only now
            return items, None
        except SyncWaitRequired as wait:
            self._defer(context, run, guard, wait)
        except SyncAbort as abort:
            return run.checkpoint.items, abort
        except Exception as exc:
            self.log.exception("The sync handler of %s raised", self.source)
            error = SyncAbort(SyncErrorKind.HANDLER_ERROR, f"{type(exc).__name__}: {exc}")
            return run.checkpoint.items, error
        finally:
            ctx.close()

    def _defer(
        self, context: Mapping[str, Any], run: SyncRun, guard: SourceGuard, wait: SyncWaitRequired
    ) -> NoReturn:
        """Free the worker for a long wait; the trigger carries the checkpoint back."""
        trigger, timeout = deferring.prepare_deferral(
            context, run, guard, wait, margin=self.defer_timeout_margin, now=self._clock(), log=self.log
        )
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timeout)

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
        self, context: Mapping[str, Any], result: SyncResult, error: SyncAbort | None
    ) -> dict[str, Any]:
        """Log the result, call ``on_result``, and turn the outcome into the task's state."""
        if result.success:
            self.log.info("%s", result.summary())
        else:
            self.log.warning("%s", result.summary())
        for callback in self.on_result:
            try:
                callback(result)
            except Exception:
                self.log.exception("on_result callback %r raised; the sync result stands", callback)
        payload = settling.payload(result, self.resource)
        if error is None:
            return payload
        context["ti"].xcom_push(key="return_value", value=payload)
        if error.kind in BLOCKED_KINDS and not error.sent_requests and self.config.when_blocked == "skipped":
            raise AirflowSkipException(result.summary())
        raise AirflowFailException(result.summary())
