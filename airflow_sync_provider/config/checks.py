"""The small parse-time checks every config section uses; each failure is a ``SyncConfigError``
naming the field and the value."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from airflow_sync_provider.exceptions import SyncConfigError


def require(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise SyncConfigError(name, value, expected)


def int_at_least(name: str, value: Any, minimum: int) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    require(ok, name, value, f"must be an integer >= {minimum}")


def number_in(name: str, value: Any, low: float, high: float, text: str) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    require(ok and low <= value <= high, name, value, f"must be {text}")


_ZERO = timedelta(0)


def duration(name: str, value: Any, *, positive: bool = True) -> None:
    ok = isinstance(value, timedelta) and (value > _ZERO if positive else value >= _ZERO)
    require(ok, name, value, "must be a positive timedelta" if positive else "must be a timedelta >= 0")
