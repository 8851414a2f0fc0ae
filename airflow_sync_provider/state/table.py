"""Render source states (``describe()`` dicts) as a fixed-width table for task logs and the CLI."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_sync_provider.config.durations import format_duration
from airflow_sync_provider.results import plural
from airflow_sync_provider.state import adaptive_limit

COLUMNS = (
    "source",
    "breaker",
    "failures",
    "opened at (UTC)",
    "next probe (UTC)",
    "window",
    "API left",
    "learned windows (UTC)",
    "last result",
)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # Airflow's own (its UI and logs)


def _when(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime(TIME_FORMAT) if epoch else "-"


def format_utc(epoch: float) -> str:
    """``2026-12-05 01:24:27 UTC``: a time in a sentence (warnings, console lines)."""
    return f"{_when(epoch)} UTC"


def _last(result: dict[str, Any] | None) -> str:
    if not result:
        return "-"
    if result.get("success"):
        return f"ok, {plural(int(result.get('items_processed') or 0), 'item')}"
    return str(result.get("error") or "failed")


def _api_left(state: dict[str, Any]) -> str:
    """What the API itself said is left (``-`` when it said nothing that still holds)."""
    remaining = state.get("api_remaining")
    if remaining is None:
        return "-"
    limit = state.get("api_limit")
    return f"{remaining}/{limit}" if limit else str(remaining)


def _per(seconds: float) -> str:
    return f"per {format_duration(timedelta(seconds=seconds))}"


def _window(state: dict[str, Any]) -> str:
    """The fullest window (learned ones included): ``42/60 per 1h``."""
    shown = f"{state['window_requests']}/{state['window_max_requests']}"
    seconds = state.get("window_seconds")
    return f"{shown} {_per(seconds)}" if seconds else shown


def _learned(state: dict[str, Any]) -> str:
    """Each window the API advertised that binds: ``12/100 per 1d until 2026-12-06 10:00:00``."""
    windows = state.get("learned_windows") or []
    shown = [
        f"{w['requests']}/{w['max_requests']} {_per(w['window_seconds'])} until {_when(w['until'])}"
        for w in windows
    ]
    return "; ".join(shown) or "-"


def _effective(state: dict[str, Any]) -> str:
    """`` (effective 42/60)`` for an adaptive source (``adaptive_limit``), else nothing."""
    said = adaptive_limit.text(state)
    return f" ({said})" if said else ""


def row(state: dict[str, Any]) -> tuple[str, ...]:
    return (
        state["source"],
        state["state"],
        f"{state['failure_count']}/{state['failure_threshold']}",
        _when(state.get("opened_at")),
        _when(state.get("next_probe_at")),
        _window(state) + _effective(state),
        _api_left(state),
        _learned(state),
        _last(state.get("last_result")),
    )


def format_states(states: Iterable[dict[str, Any]]) -> str:
    rows = [COLUMNS, *(row(s) for s in states)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
