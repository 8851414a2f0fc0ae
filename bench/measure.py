"""Small measurement helpers shared by the benchmarks: medians, timers and sliding-window counts."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any


def quiet_logger(name: str) -> logging.Logger:
    """A logger that writes nothing: the benchmarks' guards and syncs would log every request."""
    logger = logging.getLogger(name)
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def mean(values: Iterable[float]) -> float:
    return float(statistics.fmean(list(values)))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``fn()`` took (``perf_counter``) and what it returned."""
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def max_in_any_window(times_ms: Sequence[int], window_ms: int) -> int:
    """The most events inside any half-open window ``[s, s + window_ms)`` (integer milliseconds).

    Integer times keep the count exact: a slot freed at ``t + window`` and reused at that very
    millisecond is not counted twice.
    """
    ordered = sorted(times_ms)
    best = 0
    first = 0
    for last, t in enumerate(ordered):
        while t - ordered[first] >= window_ms:
            first += 1
        best = max(best, last - first + 1)
    return best


def rounded(value: float, digits: int = 3) -> float:
    return float(round(value, digits))


@contextlib.contextmanager
def sync_default_at(url: str) -> Iterator[None]:
    """The ``sync_default`` connection pointed at ``url`` (``http://host:port``) through the
    environment while the block runs; what was there before comes back after it."""
    saved = os.environ.get("AIRFLOW_CONN_SYNC_DEFAULT")
    host, port = url.split("://", 1)[1].split(":")
    os.environ["AIRFLOW_CONN_SYNC_DEFAULT"] = json.dumps(
        {"conn_type": "http", "host": host, "port": int(port)}
    )
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("AIRFLOW_CONN_SYNC_DEFAULT", None)
        else:
            os.environ["AIRFLOW_CONN_SYNC_DEFAULT"] = saved


def default_sync(
    hook: Any, config: Any, log: Any, *, clock: Callable[[], float] | None = None
) -> tuple[Any, int]:
    """One sync of ``config`` with the default handler, straight on ``hook`` (no operator: no start
    read, no XCom): open the guard, run the pages, close the loads, finish. Returns the ``SyncRun``
    and the items the handler processed."""
    from airflow_sync_provider.run.handlers import SyncContext, default_handler
    from airflow_sync_provider.run.sync_run import SyncRun

    guard = hook.open_guard(config, log=log)
    run = (
        SyncRun(config, hook, guard, log=log)
        if clock is None
        else SyncRun(config, hook, guard, clock=clock, log=log)
    )
    ctx = SyncContext(run, {})
    try:
        handled = default_handler(ctx)
    finally:
        ctx.close()
    guard.finish({})
    return run, handled
