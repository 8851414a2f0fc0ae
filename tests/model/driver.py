"""Real syncs for the model: ``RateLimitedSyncOperator`` on a fake clock, with deferral, resume and crashes.

Each sync runs through the operator's own ``execute`` / ``execute_complete`` (no copy of its logic): a
``TaskDeferred`` is caught and its trigger's checkpoint handed back on resume, as the triggerer does.
A crash (``Crash``, a ``BaseException``) can be planned at a request's arrival (slot taken, nothing on
the wire yet / request on the wire, no answer recorded), at the guard's ``record`` (before it or right
after it) or instead of its ``finish``; the sync is then dropped with whatever its guard had saved.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, TaskDeferred

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.operators.sync import RateLimitedSyncOperator
from airflow_sync_provider.policy.breaker import Transition
from airflow_sync_provider.run.handlers import SyncContext, default_handler
from tests.model.scripted_api import Crash, FakeClock, ScriptedApi, Wire

LOG = logging.getLogger("tests.model")
HANDLERS = ("default", "pages", "per_item", "two_loops")
COLLECTIONS = {
    "default": ("items",),
    "pages": ("items",),
    "per_item": ("items",),
    "two_loops": ("users", "orders"),
}


@dataclass(frozen=True)
class CrashPlan:
    """Where the worker dies: ``at`` one of before_wire/after_wire/record/after_record/finish; ``n``:
    which one."""

    at: str
    n: int = 1


@dataclass
class Sync:
    """One sync (one task instance): its first run and every resume."""

    id: int
    dag: str
    handler: str
    config: SyncConfig
    params: dict[str, Any]
    status: str = "new"
    """new, deferred, done, crashed."""
    resume_at: float | None = None
    checkpoint: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    seen: list[str] = field(default_factory=list)
    """Items that reached the handler (per_item: items it finished), in order, across resumes."""
    pushed: dict[str, Any] | None = None

    @property
    def limit(self) -> int:
        return int(self.params.get("max_requests") or self.config.rate_limit.max_requests)

    @property
    def max_pages(self) -> int:
        return int(self.params.get("max_pages") or self.config.max_pages)


def make_handler(sync: Sync) -> Callable[[SyncContext], Any]:
    """The handler of ``sync.handler``; what reaches it is recorded in ``sync.seen``."""
    if sync.handler == "default":
        return default_handler

    if sync.handler == "pages":

        def pages(ctx: SyncContext) -> int:
            for page in ctx.pages():
                sync.seen.extend(page.items)
            return len(set(sync.seen))

        return pages

    if sync.handler == "per_item":

        def per_item(ctx: SyncContext) -> int:
            # the README's pattern: progress kept in handler_data, de-duplicated by item id
            done: list[str] = ctx.checkpoint.handler_data.setdefault("done", [])
            for page in ctx.pages():
                for item in page.items:
                    if item in done:
                        continue
                    ctx.request("GET", f"/detail/{item}")
                    done.append(item)
                    sync.seen.append(item)
            return len(done)

        return per_item

    def two_loops(ctx: SyncContext) -> int:
        for page in ctx.pages("/users"):
            sync.seen.extend(page.items)
        for page in ctx.pages("/orders"):
            sync.seen.extend(page.items)
        return len(set(sync.seen))

    return two_loops


class _TaskInstance:
    def __init__(self, sync: Sync) -> None:
        self.sync = sync

    def xcom_push(self, key: str, value: Any) -> None:
        self.sync.pushed = value


class Driver:
    """Runs syncs of one source against one ``ScriptedApi`` through one hook (one worker's view)."""

    def __init__(self, hook: RateLimitedSyncHook, api: ScriptedApi, clock: FakeClock) -> None:
        self.hook = hook
        self.api = api
        self.clock = clock
        self.transitions: list[tuple[Transition, int]] = []
        """Every breaker transition (via ``on_transition``) with the API log's length at that moment."""
        self.guards: list[Any] = []
        self._plan: CrashPlan | None = None
        self._counts: dict[str, int] = {}
        self.on_arrival: Callable[[Wire], None] | None = None
        """Called at each request's arrival at the API (before any crash there)."""
        original = hook.open_guard

        def open_guard(config: SyncConfig, **kwargs: Any) -> Any:
            chained = kwargs.get("on_transition")

            def on_transition(moved: Transition, state: Any) -> None:
                self.transitions.append((moved, len(self.api.log)))
                if chained is not None:
                    chained(moved, state)

            kwargs["on_transition"] = on_transition
            guard = original(config, **kwargs)
            self._arm(guard)
            self.guards.append(guard)
            return guard

        hook.open_guard = open_guard  # type: ignore[method-assign]
        api.on_wire = self._on_wire

    # -- crash points ---------------------------------------------------------------------------------

    def _hit(self, at: str) -> None:
        self._counts[at] = self._counts.get(at, 0) + 1
        plan = self._plan
        if plan is not None and plan.at == at and self._counts[at] == plan.n:
            self._plan = None
            raise Crash(at)

    def _on_wire(self, phase: str, wire: Wire | None) -> None:
        if wire is not None and self.on_arrival is not None:
            self.on_arrival(wire)
        self._hit("before_wire" if phase == "before" else "after_wire")

    def _arm(self, guard: Any) -> None:
        record, finish = guard.record, guard.finish

        def crashing_record(*args: Any, **kwargs: Any) -> Any:
            self._hit("record")
            recorded = record(*args, **kwargs)
            self._hit("after_record")  # the response is recorded (and whatever that wrote); then death
            return recorded

        def crashing_finish(*args: Any, **kwargs: Any) -> Any:
            self._hit("finish")
            return finish(*args, **kwargs)

        guard.record, guard.finish = crashing_record, crashing_finish

    # -- one run of a sync (first run or resume) ----------------------------------------------------

    def run(self, sync: Sync, crash: CrashPlan | None = None) -> None:
        """Run ``sync`` until it finishes, defers or crashes; updates ``sync.status``."""
        op = RateLimitedSyncOperator(
            source=sync.config.source, config=sync.config, handler=make_handler(sync), task_id=f"s{sync.id}"
        )
        op.__dict__["hook"] = self.hook  # the cached_property, with the scripted transport mounted
        op._clock, op._sleep = self.clock, self.clock.advance
        context: dict[str, Any] = {"params": dict(sync.params), "ti": _TaskInstance(sync)}
        self._plan, self._counts = crash, {}
        self.api.sender = (sync.id, sync.limit)
        try:
            if sync.checkpoint is None:
                returned = op.execute(context)
            else:
                event = {"status": "resume", "checkpoint": sync.checkpoint}
                returned = op.execute_complete(context, event=event)
            sync.result, sync.status = returned, "done"
        except TaskDeferred as deferred:
            kwargs = deferred.trigger.serialize()[1]
            # the trigger's kwargs travel through the metadata DB as JSON
            sync.checkpoint = json.loads(json.dumps(kwargs["checkpoint"]))
            sync.resume_at, sync.status = float(kwargs["resume_at"]), "deferred"
        except (AirflowFailException, AirflowSkipException):
            sync.result, sync.status = sync.pushed, "done"
        except Crash:
            sync.status = "crashed"
        finally:
            self._plan = None
            self.api.sender = (-1, 0)
