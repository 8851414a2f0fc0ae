"""The original design's admin API over a state store: a source's state as plain JSON, every
source's, and a breaker reset.

``RateLimitedSyncHook.get_circuit_breaker_state``, ``get_all_states`` and ``reset_circuit_breaker``
delegate here, as do the CLI and the dashboard (through ``operations`` and ``state_reader``). This
module builds no hook: it reads and writes through the ``StateStore`` it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.state.store import SourceState, StateStore

Log = Any


def error_row(source: str, config: SyncConfig, message: str) -> dict[str, Any]:
    """The row of a source whose state this provider cannot read (``state`` ``error``, the message)."""
    return {
        "source": source,
        "state": "error",
        "failure_count": 0,
        "failure_threshold": config.circuit_breaker.failure_threshold,
        "opened_at": None,
        "next_probe_at": None,
        "last_error": message,
        "last_failure_at": None,
        "window_requests": 0,
        "window_max_requests": config.rate_limit.max_requests,
        "window_usage": 0.0,
        "window_seconds": config.rate_limit.window.total_seconds(),
        "last_result": None,
        "updated_at": None,
    }


def describe(state: SourceState, config: SyncConfig, now: float) -> dict[str, Any]:
    """A source's state as plain JSON for logs, dashboards and the CLI."""
    from airflow_sync_provider.hooks.guard import breaker_settings
    from airflow_sync_provider.policy import quota
    from airflow_sync_provider.state import adaptive_limit, learned_windows

    b = state.breaker
    in_window, most, seconds = learned_windows.tightest(state, config, now)  # the fullest, learned included
    cap = config.rate_limit.learned_wait_cap.total_seconds()
    learned = quota.current(state.quota, now, cap) if config.rate_limit.learn_from_headers else None
    return {
        "source": state.source,
        "state": b.state.value,
        "failure_count": b.failure_count,
        "failure_threshold": config.circuit_breaker.failure_threshold,
        "opened_at": b.opened_at,
        "next_probe_at": b.next_probe_at(breaker_settings(config)),
        "last_error": b.last_error,
        "last_failure_at": b.last_failure_at,
        "window_requests": in_window,
        "window_max_requests": most,
        "window_usage": in_window / most,
        "window_seconds": seconds,
        "api_remaining": learned.remaining if learned else None,
        "api_limit": learned.limit if learned else None,
        "api_reset_at": learned.reset_at if learned else None,
        "learned_windows": learned_windows.shown(state, config, now),
        "last_result": state.last_result,
        "updated_at": state.updated_at,
        **describe_resources(state, config),
        **adaptive_limit.describe(state, config, now),  # effective_limit, configured_limit (adaptive)
    }


def describe_resources(state: SourceState, config: SyncConfig) -> dict[str, Any]:
    """``{"resources": [{name, last_result, bookmark}, ...]}`` in config order for a source with
    resources (the breaker and window above are the source's, shared by all); ``{}`` without."""
    if not config.resources:
        return {}
    return {
        "resources": [
            {
                "name": name,
                "last_result": state.resources.get(name, {}).get("last_result"),
                "bookmark": state.resources.get(name, {}).get("bookmark"),
            }
            for name in config.resource_names
        ]
    }


def breaker_state(
    store: StateStore, source: str, configs: Mapping[str, SyncConfig], now: float
) -> dict[str, Any]:
    """``describe`` of ``source``'s stored state (default settings for a source not in ``configs``)."""
    return describe(store.load(source), configs.get(source) or SyncConfig(source=source), now)


def all_states(store: StateStore, configs: Mapping[str, SyncConfig], now: float) -> dict[str, dict[str, Any]]:
    """``breaker_state`` of every source in ``configs``."""
    return {source: breaker_state(store, source, configs, now) for source in sorted(configs)}


def reset_breaker(store: StateStore, source: str, now: float, *, log: Log, writer: str | None = None) -> None:
    """Close ``source``'s breaker, clear its count and forget the quota, windows and effective limit
    learned from the API (run it in the pool ``sync_<source>``): the next sync sends, and learns them
    again from the answer."""
    from airflow_sync_provider.policy import breaker

    state = store.load(source, on_warning=log.warning)
    snapshot, moved = breaker.reset(state.breaker, now)
    if moved is not None:
        log.warning("Circuit breaker of %s: %s -> closed (manual reset)", source, moved.source_state.value)
    if state.quota is not None:
        log.warning("%s: the quota learned from the API is cleared (manual reset): %s", source, state.quota)
    if state.learned_windows:
        shown = ", ".join(f"{limit} per {seconds:g}s" for seconds, limit, _ in state.learned_windows)
        log.warning("%s: the windows learned from the API are cleared (manual reset): %s", source, shown)
    if state.adaptive is not None:  # rate_limit.adaptive: back to the configured limit
        log.warning("%s: the effective limit learned from refusals is cleared (manual reset)", source)
    saved = state.replace(
        breaker=snapshot,
        quota=None,
        learned_windows=(),
        adaptive=None,
        updated_at=now,
        writer=writer or "reset",
    )
    store.save(saved)
