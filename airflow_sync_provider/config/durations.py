"""Duration strings for YAML and params: ``500ms``, ``30s``, ``5m``, ``1h``, ``1d`` (or plain seconds)."""

from __future__ import annotations

import math
import re
from datetime import timedelta

from airflow_sync_provider.exceptions import SyncConfigError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration(value: object, field: str) -> timedelta:
    """Turn ``value`` (a duration string, a number of seconds or a timedelta) into a ``timedelta``."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise SyncConfigError(field, value, "must be a duration like '500ms', '30s', '5m', '1h' or '1d'")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise SyncConfigError(field, value, "must be a finite, non-negative number of seconds")
        return _seconds(value, field)
    if isinstance(value, str) and (match := _PATTERN.match(value)):
        return _seconds(float(match.group(1)) * _UNITS[match.group(2)], field, value)
    raise SyncConfigError(field, value, "must be a duration like '500ms', '30s', '5m', '1h' or '1d'")


def _seconds(seconds: float, field: str, value: object = None) -> timedelta:
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise SyncConfigError(field, seconds if value is None else value, "is too large a duration") from None


def format_duration(value: timedelta) -> str:
    """The shortest exact string ``parse_duration`` reads back (``3600s`` is ``1h``)."""
    ms = round(value.total_seconds() * 1000)
    for unit, factor in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % factor == 0:
            return f"{ms // factor}{unit}"
    return f"{ms}ms"
