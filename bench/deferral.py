"""Deferral: worker-seconds a sync holds while it must wait (Retry-After), deferred vs sleeping.

Both tasks run at the same time in a real Airflow (``bench/deployment.py``). The demo API answers
each task's first request with 429 and ``Retry-After: <wait>``, then serves normally.

- ours: ``bench_defer_ours``, a factory DAG with seed defaults: the operator defers to the
  triggerer (``SyncWaitTrigger``) for the wait and resumes at the same request.
- sleeping: ``bench_defer_sleeping``, ``HttpHook.run_with_advanced_retry`` with a tenacity wait
  that honours ``Retry-After`` by sleeping in the worker (tenacity ships with Airflow).

Worker-seconds come from the task instance's own state history: the event log rows the Execution
API writes on every state change (``running``, ``deferred``, ``running`` again, ``success``). The
sum of the ``running`` stretches is the time the task held a worker slot. (The process start before
``running`` and the exit after the final state are not in it, on either side.)
"""

from __future__ import annotations

import time
from typing import Any

from bench.deployment import BenchDeployment, running_segments
from bench.measure import rounded

SIDES = {"ours": ("bench_defer_ours", "defer_ours"), "sleeping": ("bench_defer_sleeping", "defer_sleeping")}


def run(deployment: BenchDeployment, wait_s: int) -> dict[str, Any]:
    demo, cluster = deployment.demo, deployment.cluster
    offset = time.time() - time.monotonic()  # the demo log uses this process's monotonic clock
    for _dag_id, source in SIDES.values():
        demo.set_fault("rate_limit", source=source, count=1, retry_after=str(wait_s))
    run_ids = {side: cluster.trigger(dag_id) for side, (dag_id, _) in SIDES.items()}
    out: dict[str, Any] = {"wait_s": wait_s}
    for side, (dag_id, source) in SIDES.items():
        dag_run = cluster.wait_for_run(dag_id, run_ids[side], timeout=wait_s + 600)
        history = deployment.state_history(dag_id, run_ids[side], "sync")
        segments = running_segments(history)
        answered = sorted(demo.requests(source), key=lambda r: r["start"])
        waited = None
        if len(answered) >= 2:
            first_end, second_start = answered[0]["end"] + offset, answered[1]["start"] + offset
            waited = (first_end, second_start)
        out[side] = {
            "dag_run_state": dag_run["state"],
            "task_state": deployment.task_instance(dag_id, run_ids[side], "sync")["state"],
            "state_history": [[event, rounded(at - history[0][1], 2)] for event, at in history],
            "running_segments_s": [rounded(end - start, 2) for start, end in segments],
            "worker_seconds": rounded(sum(end - start for start, end in segments), 2),
            "requests": [r["status"] for r in answered],
            "observed_wait_s": rounded(waited[1] - waited[0], 1) if waited else None,
            "worker_seconds_during_wait": rounded(_overlap(segments, waited), 2) if waited else None,
        }
    out["worker_seconds_ours"] = out["ours"]["worker_seconds"]
    out["worker_seconds_sleeping"] = out["sleeping"]["worker_seconds"]
    out["ratio_vs_sleeping"] = rounded(out["worker_seconds_ours"] / out["worker_seconds_sleeping"], 3)
    return out


def _overlap(segments: list[tuple[float, float]], window: tuple[float, float]) -> float:
    lo, hi = window
    return sum(max(0.0, min(end, hi) - max(start, lo)) for start, end in segments)
