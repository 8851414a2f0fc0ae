"""``RateLimitedSyncOperator``: one sync of one source, with the task state telling how it went.

- success -> task success; the ``SyncResult`` dict is the XCom return value.
- nothing sent because the breaker is open or the window is full -> skipped (``when_blocked``
  may make it failed); the result is still pushed and passed to ``on_result``.
- retries exhausted, breaker tripped during this sync, non-retryable error -> failed.
Waits longer than ``defer_after`` defer the task (``SyncWaitTrigger``) and resume at the same request.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_sync_provider.config import DEFAULT_SYNC_CONFIGS, SyncConfig
from airflow_sync_provider.exceptions import SyncAbort, SyncConfigError, SyncWaitRequired
from airflow_sync_provider.handlers import Handler, SyncContext, default_handler, items_from_handler_return
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.params import apply_params
from airflow_sync_provider.policy.breaker import Transition
from airflow_sync_provider.results import SyncErrorKind, SyncResult
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
    """

    ui_color = "#e8f4ea"
    template_fields: Sequence[str] = ()

    def __init__(
        self,
        *,
        source: str,
        config: SyncConfig | None = None,
        handler: Handler | None = None,
        on_result: ResultCallback | Iterable[ResultCallback] | None = None,
        **kwargs: Any,
    ) -> None:
        config = config or DEFAULT_SYNC_CONFIGS.get(source) or SyncConfig(source=source)
        if config.source != source:
            raise ValueError(f"config.source must equal source, got {config.source!r} for source {source!r}")
        kwargs.setdefault("pool", config.pool)
        kwargs.setdefault("retries", 0)
        kwargs.setdefault("task_id", f"sync_{source}")
        super().__init__(**kwargs)
        self.source = source
        self.config = config
        self.handler = handler
        self.on_result = [on_result] if callable(on_result) else list(on_result or [])
        self._clock: Callable[[], float] = time.time
        self._sleep: Callable[[float], None] = time.sleep
        self._rng: random.Random | None = None

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

    # -- one sync -----------------------------------------------------------------------------------

    def _sync(self, context: Mapping[str, Any], checkpoint: Checkpoint | None) -> dict[str, Any]:
        try:
            config, dry_run = apply_params(self.config, context.get("params"))
        except SyncConfigError as exc:
            raise AirflowFailException(f"{self.source}: invalid trigger params: {exc}") from None
        guard = self.hook.open_guard(config, log=self.log, on_transition=self._on_transition)
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
        handler = self.handler or default_handler
        error: SyncAbort | None = None
        items = 0
        try:
            items = items_from_handler_return(handler(SyncContext(run, context)))
        except SyncWaitRequired as wait:
            run.checkpoint.deferrals += 1
            guard.flush()
            self.log.info(
                "%s: deferring for %.1fs (%s); the worker slot is freed",
                self.source,
                wait.seconds,
                wait.reason,
            )
            self.defer(
                trigger=SyncWaitTrigger(
                    resume_at=self._clock() + wait.seconds,
                    checkpoint=run.checkpoint.to_dict(),
                    reason=wait.reason,
                ),
                method_name="execute_complete",
            )
        except SyncAbort as abort:
            error = abort
            items = run.checkpoint.items
        except Exception as exc:
            self.log.exception("The sync handler of %s raised", self.source)
            error = SyncAbort(SyncErrorKind.HANDLER_ERROR, f"{type(exc).__name__}: {exc}")
            items = run.checkpoint.items
        result = run.result(items=items, error=error)
        guard.finish(result.to_dict())
        return self._report(context, result, error)

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
        (self.log.info if result.success else self.log.warning)("%s", result.summary())
        for callback in self.on_result:
            try:
                callback(result)
            except Exception:
                self.log.exception("on_result callback %r raised; the sync result stands", callback)
        payload = result.to_dict()
        if error is None:
            return payload
        context["ti"].xcom_push(key="return_value", value=payload)
        if error.kind in BLOCKED_KINDS and not error.sent_requests and self.config.when_blocked == "skipped":
            raise AirflowSkipException(result.summary())
        raise AirflowFailException(result.summary())

    def _on_transition(self, moved: Transition, state: SourceState) -> None:
        """Called once per breaker transition (log line here; metrics and alerts hook in here)."""
