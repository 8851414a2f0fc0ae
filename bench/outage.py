"""Outage: how many requests reach an API that is down for 24 h, and how fast each side recovers.

Ours: the real ``RateLimitedSyncOperator`` (seed defaults of the hourly ``airdrops`` source: 3
retries per request, breaker at 5 consecutive failures, 5 min reset timeout) runs once an hour
against a simulated clock. Only the network is fake: ``SimHook`` (a ``RateLimitedSyncHook``)
answers every request from a simulated API instead of a socket; breaker, window, retries, waits,
deferrals and task states are the provider's own code, with an ``InMemoryStateStore``.

Plain Airflow: an hourly task that GETs the API once per try, ``retries=5``,
``retry_exponential_backoff=2.0`` (doubling), ``retry_delay`` at its default 300 s, no
``max_retry_delay``, DAG with ``max_active_runs=1`` and ``catchup=False``. Retry times come from
Airflow's own ``TaskInstance.next_retry_datetime`` (delay ``ceil(300 * 2**(try-1))`` plus Airflow's
deterministic hash jitter in ``[d, 2d)``). A failing run holds the DAG for hours; when it ends the
scheduler creates the latest due run at once (the newest hour boundary, since ``catchup=False``).

Each scenario: healthy hourly runs, an outage starting ``offset`` after a run, lasting 24 h. We
sweep offsets and calendar days (Airflow's jitter hashes the logical date) and average.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from airflow_sync_provider.state import InMemoryStateStore, StateStore
from bench.measure import mean, rounded

HOUR = 3600.0
SEED_CONFIG = DEFAULT_SYNC_CONFIGS["airdrops"]
PLAIN_RETRIES = 5
PLAIN_MULTIPLIER = 2.0
PLAIN_RETRY_DELAY = timedelta(seconds=300)
BASE_DAY = datetime(2026, 3, 2, tzinfo=UTC)
WHAT_IF_RESET_TIMEOUTS = (timedelta(minutes=5), timedelta(hours=1), timedelta(hours=3), timedelta(hours=6),
                          timedelta(hours=12))  # fmt: skip


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

    def send(
        self, config: SyncConfig, method: str, url: str, params: Mapping[str, Any] | None = None
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
    config: SyncConfig, starts: list[float], api: SimApi, *, seed: int = 0, store: StateStore | None = None
) -> list[dict[str, Any]]:
    """Execute one sync per start time (epoch seconds) with the real operator; one record per run."""
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
            records.append(_one_run(SimOperator, config, clock, rng, api, start))
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
    first: datetime, until: datetime, down: Callable[[float], bool], *, dag_id: str = "sync_airdrops"
) -> list[dict[str, Any]]:
    """Hourly plain-Airflow runs from ``first`` until a run starts at or after ``until``."""
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
        following = max(end.replace(minute=0, second=0, microsecond=0), logical + timedelta(hours=1))
        logical, start = following, max(end, following)
    return records


def scenario(
    day: int, offset: timedelta, config: SyncConfig, outage: timedelta = timedelta(hours=24)
) -> dict[str, Any]:
    """One outage: ``offset`` after the run at base+1h, lasting ``outage``; both sides simulated."""
    base = BASE_DAY + timedelta(days=day)
    down_from = (base + timedelta(hours=1) + offset).timestamp()
    down_until = down_from + outage.total_seconds()

    def down(t: float) -> bool:
        return down_from <= t < down_until

    hours = int((down_until - base.timestamp()) // HOUR) + 3
    ours = run_ours(config, [base.timestamp() + h * HOUR for h in range(hours)], SimApi(down), seed=day)
    plain = run_plain(base, datetime.fromtimestamp(down_until, UTC) + timedelta(hours=6), down)
    return {
        "day": day,
        "offset_s": offset.total_seconds(),
        "ours": _summary(ours, down_until),
        "plain": _summary(plain, down_until),
        "ours_runs": ours,
        "plain_runs": plain,
    }


def _summary(records: list[dict[str, Any]], down_until: float) -> dict[str, Any]:
    recovered = [r["end"] for r in records if r["state"] == "success" and r["end"] >= down_until]
    return {
        "requests_while_down": sum(r["requests_while_down"] for r in records),
        "recovery_s": (min(recovered) - down_until) if recovered else None,
    }


def sweep(config: SyncConfig, days: int, offsets: list[timedelta]) -> list[dict[str, Any]]:
    return [scenario(day, offset, config) for day in range(days) for offset in offsets]


def _aggregate(results: list[dict[str, Any]], side: str) -> dict[str, float]:
    requests = [r[side]["requests_while_down"] for r in results]
    recovery = [r[side]["recovery_s"] for r in results]
    return {
        "requests_mean": rounded(mean(requests), 1),
        "requests_min": min(requests),
        "requests_max": max(requests),
        "recovery_s_mean": rounded(mean(recovery), 0),
        "recovery_s_max": rounded(max(recovery), 0),
    }


def run(quick: bool = False) -> dict[str, Any]:
    days = 2 if quick else 7
    offsets = [timedelta(minutes=m, seconds=30) for m in range(0, 60, 10 if quick else 5)]
    results = sweep(SEED_CONFIG, days, offsets)
    ours, plain = _aggregate(results, "ours"), _aggregate(results, "plain")
    what_if = []
    for reset in WHAT_IF_RESET_TIMEOUTS:
        if reset == SEED_CONFIG.circuit_breaker.reset_timeout:
            agg = ours
        else:
            breaker = dataclasses.replace(SEED_CONFIG.circuit_breaker, reset_timeout=reset)
            agg = _aggregate(sweep(SEED_CONFIG.replace(circuit_breaker=breaker), days, offsets), "ours")
        what_if.append(
            {
                "reset_timeout_s": reset.total_seconds(),
                "requests_ours": agg["requests_mean"],
                "ratio_vs_plain": rounded(agg["requests_mean"] / plain["requests_mean"], 3),
                "recovery_s_ours_mean": agg["recovery_s_mean"],
                "recovery_s_ours_max": agg["recovery_s_max"],
            }
        )
    first = results[0]
    return {
        "outage_hours": 24,
        "schedule": "hourly",
        "scenarios": len(results),
        "requests_ours": ours["requests_mean"],
        "requests_plain_airflow": plain["requests_mean"],
        "ratio_vs_plain": rounded(ours["requests_mean"] / plain["requests_mean"], 3),
        "recovery_s_ours": ours["recovery_s_mean"],
        "recovery_s_plain_airflow": plain["recovery_s_mean"],
        "recovery_s_ours_max": ours["recovery_s_max"],
        "recovery_s_plain_airflow_max": plain["recovery_s_max"],
        "ours": ours,
        "plain_airflow": plain,
        "plain_airflow_model": {
            "retries": PLAIN_RETRIES,
            "retry_exponential_backoff": PLAIN_MULTIPLIER,
            "retry_delay_s": PLAIN_RETRY_DELAY.total_seconds(),
            "max_retry_delay": None,
            "max_active_runs": 1,
            "catchup": False,
        },
        "example": {
            "day": first["day"],
            "offset_s": first["offset_s"],
            "ours_requests_per_run_while_down": [
                r["requests_while_down"] for r in first["ours_runs"] if r["requests_while_down"]
            ],
            "plain_runs_while_down": [
                {
                    "logical_date": r["logical_date"],
                    "tries": r["requests"],
                    "hours": rounded((r["end"] - r["start"]) / HOUR, 2),
                }
                for r in first["plain_runs"]
                if r["requests_while_down"]
            ],
        },
        "what_if_reset_timeout": what_if,
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
