"""Outage simulation: requests that reach a dead API, and how fast each side recovers (one outage).

Ours: the real ``RateLimitedSyncOperator`` (e.g. the seed defaults of ``airdrops``: 3 retries per
request, breaker at 5 consecutive failures, 5 min first open wait) runs once per schedule interval,
each run 1-15 s late, against a simulated clock. Only the network is fake: ``SimHook`` (a
``RateLimitedSyncHook``) answers every request from a simulated API instead of a socket; breaker,
window, retries, waits, deferrals and task states are the provider's own code, with an
``InMemoryStateStore``.

Plain Airflow: a task on the same schedule that GETs the API once per try, ``retries=5``,
``retry_exponential_backoff=2.0`` (doubling), ``retry_delay`` at its default 300 s, no
``max_retry_delay``, DAG with ``max_active_runs=1`` and ``catchup=False``. Retry times come from
Airflow's own ``TaskInstance.next_retry_datetime`` (delay ``ceil(300 * 2**(try-1))`` plus Airflow's
deterministic hash jitter in ``[d, 2d)``). A failing run holds the DAG for hours; when it ends the
scheduler creates the latest due run at once (the newest interval boundary: ``catchup=False``).

``scenario`` simulates one outage for several variants; ``bench/outage_matrix.py`` sweeps schedules,
outage lengths, start offsets and calendar days (Airflow's jitter hashes the logical date).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import types
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from airflow_sync_provider.config import DEFAULT_SYNC_CONFIGS, SyncConfig
from airflow_sync_provider.hooks import outcome
from airflow_sync_provider.hooks.outcome import Attempt
from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
from airflow_sync_provider.operators.sync import RateLimitedSyncOperator
from airflow_sync_provider.state.store import InMemoryStateStore, StateStore
from bench.measure import rounded

HOUR = 3600.0
SEED_CONFIG = DEFAULT_SYNC_CONFIGS["airdrops"]
PLAIN_RETRIES = 5
PLAIN_MULTIPLIER = 2.0
PLAIN_RETRY_DELAY = timedelta(seconds=300)
BASE_DAY = datetime(2026, 3, 2, tzinfo=UTC)
START_LATENCY_S = (1.0, 15.0)
"""A scheduled run of ours starts this many seconds late (seeded, uniform): a real scheduler's latency.
It decides whether an open wait of exactly k intervals lets the probe through at run k or k + 1."""


class SimClock:
    """Epoch seconds that only move when the code under test sleeps or the simulation says so."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


class SimApi:
    """Down (503, no Retry-After) inside ``down``; otherwise one page of three items."""

    def __init__(self, down: Callable[[float], bool]) -> None:
        self.down = down
        self.log: list[tuple[float, int]] = []

    def answer(self, now: float) -> Attempt:
        status = 503 if self.down(now) else 200
        self.log.append((now, status))
        kind, retryable, effect = outcome.from_status(status, "")
        if kind is None:
            return Attempt(None, False, effect, "ok", status, body={"items": [1, 2, 3], "next_cursor": None})
        return Attempt(kind, retryable, effect, f"GET -> {status} Service Unavailable", status)


class SimHook(RateLimitedSyncHook):
    """The provider's hook with the network replaced by ``SimApi`` (everything else is real)."""

    api: SimApi

    def url_for(self, path_or_url: str) -> str:
        return path_or_url if "://" in path_or_url else f"http://api.invalid{path_or_url}"

    @property
    def named_secrets(self) -> dict[str, str]:
        return {}  # no connection: nothing to hide

    def send(
        self,
        config: SyncConfig,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        **request: Any,
    ) -> Attempt:
        return self.api.answer(self.clock())


class _Ti:
    def xcom_push(self, key: str, value: Any) -> None:
        """The operator pushes its result before raising skip/fail; the simulation does not need it."""


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Silence the operator's per-attempt log lines while simulating; restore the logging setup after."""
    import structlog
    from airflow.sdk.bases.operator import ExecutorSafeguard

    saved, test_mode = structlog.get_config(), ExecutorSafeguard.test_mode
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    ExecutorSafeguard.test_mode = True  # calling execute() outside a task runner is the point here
    try:
        yield
    finally:
        structlog.configure(**saved)
        ExecutorSafeguard.test_mode = test_mode


def run_ours(
    config: SyncConfig,
    starts: list[float],
    api: SimApi,
    *,
    seed: int = 0,
    store: StateStore | None = None,
    stop_after: float | None = None,
) -> list[dict[str, Any]]:
    """Execute one sync per start time (epoch seconds) with the real operator; one record per run.

    With ``stop_after``, stop at the first successful run that ends at or after it (the recovery).
    """
    store = store or InMemoryStateStore()
    clock = SimClock(starts[0])
    rng = random.Random(seed)

    class SimOperator(RateLimitedSyncOperator):
        @cached_property
        def hook(self) -> RateLimitedSyncHook:
            hook = SimHook(conn_id=self.config.conn_id, store=store, clock=self._clock)
            hook.api = api
            return hook

    records = []
    with quiet_logs():
        for start in starts:
            record = _one_run(SimOperator, config, clock, rng, api, start)
            records.append(record)
            if stop_after is not None and record["state"] == "success" and record["end"] >= stop_after:
                break
    return records


def _one_run(
    operator: type[RateLimitedSyncOperator],
    config: SyncConfig,
    clock: SimClock,
    rng: random.Random,
    api: SimApi,
    start: float,
) -> dict[str, Any]:
    """One task run: execute, follow deferrals (jumping the clock to the trigger's time), classify."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, TaskDeferred

    context = {"params": {}, "ti": _Ti()}
    clock.now = max(clock.now, start)
    began, sent_before = clock.now, len(api.log)
    op = operator(task_id="sync", source=config.source, config=config)
    op._clock, op._sleep, op._rng = clock, clock.sleep, rng
    state = "success"
    event: dict[str, Any] | None = None
    while True:
        try:
            if event is None:
                op.execute(context)
            else:
                op.execute_complete(context, event)
        except TaskDeferred as deferred:  # a wait in the triggerer: jump to its end
            clock.now = max(clock.now, deferred.trigger.resume_at)
            event = {"status": "resume", "checkpoint": deferred.trigger.checkpoint}
            continue
        except AirflowSkipException:
            state = "skipped"
        except AirflowFailException:
            state = "failed"
        break
    answers = api.log[sent_before:]
    return {
        "start": began,
        "end": clock.now,
        "state": state,
        "requests": len(answers),
        "requests_while_down": sum(1 for _, status in answers if status != 200),
    }


def plain_next_retry(logical: datetime, try_number: int, end: datetime, dag_id: str) -> datetime:
    """When Airflow schedules the next try, from Airflow's own ``TaskInstance.next_retry_datetime``."""
    from airflow.models.taskinstance import TaskInstance

    task = types.SimpleNamespace(
        retry_delay=PLAIN_RETRY_DELAY, retry_exponential_backoff=PLAIN_MULTIPLIER, max_retry_delay=None
    )
    ti = types.SimpleNamespace(
        retry_delay_override=None,
        task=task,
        try_number=try_number,
        dag_id=dag_id,
        task_id="sync",
        logical_date=logical,
        end_date=end,
        log=logging.getLogger("bench.outage"),
    )
    return TaskInstance.next_retry_datetime(ti)  # type: ignore[arg-type]


def run_plain(
    first: datetime,
    until: datetime,
    down: Callable[[float], bool],
    *,
    dag_id: str = "sync_airdrops",
    interval: timedelta = timedelta(hours=1),
    stop_after: float | None = None,
) -> list[dict[str, Any]]:
    """Plain-Airflow runs every ``interval`` from ``first`` until a run starts at or after ``until``
    (or, with ``stop_after``, until the first successful run that ends at or after it)."""
    records = []
    logical = start = first
    while start < until:
        try_number, at = 1, start
        tries: list[tuple[datetime, bool]] = []
        while True:
            failed = down(at.timestamp())
            tries.append((at, failed))
            if not failed or try_number > PLAIN_RETRIES:
                break
            at = plain_next_retry(logical, try_number, at, dag_id)
            try_number += 1
        end = at
        records.append(
            {
                "logical_date": logical.isoformat(),
                "start": start.timestamp(),
                "end": end.timestamp(),
                "state": "failed" if tries[-1][1] else "success",
                "requests": len(tries),
                "requests_while_down": sum(1 for _, f in tries if f),
            }
        )
        if stop_after is not None and records[-1]["state"] == "success" and end.timestamp() >= stop_after:
            break
        # catchup=False: the newest due run (its interval boundary at or before ``end``) starts at once
        newest = first + (end - first) // interval * interval
        following = max(newest, logical + interval)
        logical, start = following, max(end, following)
    return records


def scenario(
    day: int,
    offset: timedelta,
    configs: Mapping[str, SyncConfig | None],
    outage: timedelta = timedelta(hours=24),
    interval: timedelta = timedelta(hours=1),
    horizon: timedelta = timedelta(hours=12),
) -> dict[str, Any]:
    """One outage, ``offset`` after the run at base + interval, lasting ``outage``, for each variant
    (``None``: plain Airflow retries); every variant runs until its first good sync after recovery
    (at most ``horizon`` after it)."""
    base = BASE_DAY + timedelta(days=day)
    down_from = (base + interval + offset).timestamp()
    down_until = down_from + outage.total_seconds()

    def down(t: float) -> bool:
        return down_from <= t < down_until

    step = interval.total_seconds()
    runs = int((down_until + horizon.total_seconds() - base.timestamp()) // step) + 1
    latency = random.Random(f"latency-{day}")
    starts = [base.timestamp() + k * step + latency.uniform(*START_LATENCY_S) for k in range(runs)]
    out: dict[str, Any] = {"day": day, "offset_s": offset.total_seconds(), "down_until": down_until}
    for name, config in configs.items():
        if config is None:
            until = datetime.fromtimestamp(down_until, UTC) + horizon
            dag_id = f"sync_{next(c for c in configs.values() if c is not None).source}"
            records = run_plain(base, until, down, dag_id=dag_id, interval=interval, stop_after=down_until)
        else:
            records = run_ours(config, starts, SimApi(down), seed=day, stop_after=down_until)
        out[name] = _summary(records, down_until)
        out[f"{name}_runs"] = records
    return out


def _summary(records: list[dict[str, Any]], down_until: float) -> dict[str, Any]:
    recovered = [r["end"] for r in records if r["state"] == "success" and r["end"] >= down_until]
    return {
        "runs": len(records),
        "requests_while_down": sum(r["requests_while_down"] for r in records),
        "recovery_s": (min(recovered) - down_until) if recovered else None,
    }


def replay(config: SyncConfig, starts: list[float]) -> list[dict[str, Any]]:
    """The simulation's answer for runs at ``starts`` against an API that is down throughout."""
    return run_ours(config, starts, SimApi(lambda _t: True))


SLICE_CONFIG = SyncConfig(source="outage", schedule=None)
"""The ``bench_outage`` DAG's config in ``bench/airflow_dags.py`` (seed defaults)."""


def real_slice(deployment: Any, runs: int = 3) -> dict[str, Any]:
    """``runs`` manual runs of ``bench_outage`` in real Airflow against a demo API in outage, then the
    simulation replayed at the real runs' start times: requests per run and task states must agree."""
    from bench.deployment import epoch

    demo = deployment.demo
    demo.set_fault("outage", source="outage")
    real = []
    try:
        for _ in range(runs):
            before = len(demo.requests("outage"))
            run_id, _ = deployment.run_dag("bench_outage")
            ti = deployment.task_instance("bench_outage", run_id, "sync")
            real.append(
                {
                    "start": epoch(ti["start_date"]),
                    "state": ti["state"],
                    "requests": len(demo.requests("outage")) - before,
                }
            )
    finally:
        demo.clear_faults("outage")
    simulated = replay(SLICE_CONFIG, [r["start"] for r in real])
    agree = [(r["requests"], r["state"]) for r in real] == [(s["requests"], s["state"]) for s in simulated]
    return {
        "runs": runs,
        "real_requests_per_run": [r["requests"] for r in real],
        "real_task_states": [r["state"] for r in real],
        "simulated_requests_per_run": [s["requests"] for s in simulated],
        "simulated_task_states": [s["state"] for s in simulated],
        "seconds_between_runs": [rounded(b["start"] - a["start"], 1) for a, b in itertools.pairwise(real)],
        "agree": agree,
    }
