"""Learned windows as admission obeys them and as ``states``, the dashboard and the attempt line show them.

A window the API advertised (``policy.advertised``; stored as ``SourceState.learned_windows``) binds
while it is trusted, when it is longer than ``rate_limit.window`` and, for a length the config also
has in ``extra_windows``, when its limit is the lower. Its requests are kept in
``SourceState.extra_windows`` like a configured window's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.policy import shares as sh
from airflow_sync_provider.state.adaptive_limit import effective_limit
from airflow_sync_provider.state.store import SourceState


def tightest_window(state: SourceState, config: SyncConfig, now: float) -> tuple[int, int, float]:
    """The fullest of the source's windows (``rate_limit`` and its ``extra_windows``): requests in it,
    its limit and its length in seconds (the first on a tie). What the attempt line, the metric
    ``sync.rate_limit.usage``, ``states`` and the dashboard show."""
    limit = config.rate_limit
    margin = limit.margin / timedelta(seconds=1)
    first = limit.window / timedelta(seconds=1)
    windows = [(state.window, effective_limit(state, config, now), first)]  # adaptive: the effective one
    windows += [(sh.total(state.extra(w.seconds)), w.max_requests, w.seconds) for w in limit.extra_windows]
    counted = [(window.in_window(now, length + margin), most, length) for window, most, length in windows]
    return max(counted, key=lambda c: c[0] / c[1])


def binding(state: SourceState, config: SyncConfig, now: float) -> tuple[tuple[float, int, float], ...]:
    """The learned windows admission obeys at ``now``: ``(seconds, limit, trusted until)``."""
    limit = config.rate_limit
    if not limit.learn_from_headers:
        return ()
    first = limit.window / timedelta(seconds=1)
    configured = {w.seconds: w.max_requests for w in limit.extra_windows}
    return tuple(
        (seconds, most, until)
        for seconds, most, until in state.learned_windows
        if until > now and seconds > first and most < configured.get(seconds, most + 1)
    )


def shown(state: SourceState, config: SyncConfig, now: float) -> list[dict[str, Any]]:
    """Each binding learned window for ``describe()``: its limit, length, requests in it and until when
    it is trusted (``[]`` when none binds)."""
    margin = config.rate_limit.margin / timedelta(seconds=1)
    return [
        {
            "max_requests": most,
            "window_seconds": seconds,
            "requests": sh.total(state.extra(seconds)).in_window(now, seconds + margin),
            "until": until,
        }
        for seconds, most, until in binding(state, config, now)
    ]


def tightest(state: SourceState, config: SyncConfig, now: float) -> tuple[int, int, float]:
    """The fullest of every window the source obeys, learned ones included: requests in it, its limit
    and its length in seconds (the configured one on a tie)."""
    fullest = tightest_window(state, config, now)
    for window in shown(state, config, now):
        if window["requests"] / window["max_requests"] > fullest[0] / fullest[1]:
            fullest = (window["requests"], window["max_requests"], window["window_seconds"])
    return fullest
