"""Incremental bookmarks, pure: which value is later, and what to send after ``lag``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

Cursor = str | int | float


def _as_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def later(a: Cursor | None, b: Cursor | None) -> Cursor | None:
    """The later of two cursor values (ISO timestamps compare as instants); None loses."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, str) and isinstance(b, str):
        ta, tb = _as_time(a), _as_time(b)
        if ta is not None and tb is not None and (ta.tzinfo is None) == (tb.tzinfo is None):
            return b if tb > ta else a
        return max(a, b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return max(a, b)
    return a  # values of different kinds: keep the current bookmark


def highest(items: Iterable[Any], field: str, current: Cursor | None = None) -> Cursor | None:
    """The highest ``field`` among dict items (and ``current``); items without it are ignored."""
    for item in items:
        if isinstance(item, dict):
            value = item.get(field)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                current = later(current, value)
    return current


def with_lag(value: Cursor, lag: timedelta) -> Cursor:
    """``value`` moved back by ``lag``: timestamps keep their format (``Z`` stays), numbers are seconds."""
    if not lag:
        return value
    if isinstance(value, int | float):
        return value - lag.total_seconds()
    when = _as_time(value)
    if when is None:
        return value
    text = (when - lag).isoformat()
    return text.replace("+00:00", "Z") if value.endswith("Z") else text
