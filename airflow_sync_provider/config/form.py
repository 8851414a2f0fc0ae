"""The YAML/dict form of config sections: a mapping merged key by key onto a section (durations as
``30s``), optional sections (``load:``, ``incremental:``) and the plain values ``to_dict`` writes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow_sync_provider.config import windows as window_limits
from airflow_sync_provider.config.durations import format_duration, parse_duration
from airflow_sync_provider.config.rate_limit import RateLimitConfig
from airflow_sync_provider.config.windows import WindowLimit
from airflow_sync_provider.exceptions import SyncConfigError


def expected(exc: SyncConfigError) -> str:
    """What ``exc`` said is expected (its message without the field and the value)."""
    text = str(exc).removeprefix(f"{exc.field} ")
    return text.rsplit(", got ", 1)[0]


def plain(value: Any) -> Any:
    if isinstance(value, tuple) and value and all(isinstance(v, WindowLimit) for v in value):
        return [v.to_dict() for v in value]
    return format_duration(value) if isinstance(value, timedelta) else value


def section_from_dict(kind: Any, data: Any, current: Any) -> Any:
    if isinstance(data, kind):
        return data
    if kind is RateLimitConfig and isinstance(data, list):
        data = window_limits.from_list(data, kind.prefix)
        data.setdefault("extra_windows", ())
    if not isinstance(data, Mapping):
        raise SyncConfigError(kind.prefix, data, "must be a mapping")
    changes: dict[str, Any] = {}
    names = {f.name: f for f in dataclasses.fields(kind)}
    for key, value in data.items():
        name = f"{kind.prefix}.{key}"
        if key not in names:
            raise SyncConfigError(name, value, f"is not a known field (known: {', '.join(names)})")
        is_duration = str(names[key].type).startswith("timedelta") and value is not None
        changes[key] = parse_duration(value, name) if is_duration else value
    return dataclasses.replace(current, **changes)


def optional_section(kind: Any, data: Any, current: Any) -> Any:
    """``load:``/``incremental:``: null turns the section off; a mapping merges onto ``current``."""
    if data is None or isinstance(data, kind):
        return data
    if current is None:
        if not isinstance(data, Mapping):
            raise SyncConfigError(kind.prefix, data, "must be a mapping")
        names = {f.name: f for f in dataclasses.fields(kind)}
        for key, value in data.items():
            if key not in names:
                known = ", ".join(names)
                raise SyncConfigError(f"{kind.prefix}.{key}", value, f"is not a known field (known: {known})")
        try:
            current = kind(**{k: v for k, v in data.items() if k in ("cursor_field", "param")})
        except TypeError as exc:
            missing = next(n for n in ("cursor_field", "param") if n not in data)
            raise SyncConfigError(f"{kind.prefix}.{missing}", None, "is required") from exc
    return section_from_dict(kind, data, current)
