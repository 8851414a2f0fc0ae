"""Incremental bookmarks, pure: which value is later, and what to send after ``lag``.

A cursor keeps its type: an int stays an int (``lag`` is whole seconds, rounded up), a digit string
stays a digit string and compares as a number with another digit string (``'100'`` is later than
``'99'``), an ISO timestamp stays ISO text in its own format.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

Cursor = str | int | float


def _as_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _is_digits(value: Cursor) -> bool:
    return isinstance(value, str) and value.isascii() and value.isdigit()


def later(a: Cursor | None, b: Cursor | None) -> Cursor | None:
    """The later of two cursor values (digit strings compare as numbers, ISO timestamps as instants);
    None loses."""
    if a is None:
        return b
    if b is None:
        return a
    if _is_digits(a) and _is_digits(b):
        return b if int(b) > int(a) else a  # type: ignore[arg-type]
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
    """``value`` moved back by ``lag``, in its own type: timestamps keep their format (``Z`` stays),
    numbers and digit strings are seconds (an int or a digit string moves by whole seconds, rounded up)."""
    if not lag:
        return value
    seconds = lag.total_seconds()
    if isinstance(value, int):
        return value - math.ceil(seconds)
    if isinstance(value, float):
        return value - seconds
    if _is_digits(value):
        return str(max(0, int(value) - math.ceil(seconds))).zfill(len(value))
    when = _as_time(value)
    if when is None:
        return value
    text = (when - lag).isoformat()
    return text.replace("+00:00", "Z") if value.endswith("Z") else text


def value_to_send(bookmark: Cursor | None, initial_value: Cursor | None, lag: timedelta) -> Cursor | None:
    """The value to send: the bookmark (else ``initial_value``) minus ``lag``, never below
    ``initial_value``; None when there is neither."""
    value = bookmark if bookmark is not None else initial_value
    if value is None:
        return None
    sent = with_lag(value, lag)
    return sent if initial_value is None else later(sent, initial_value)
