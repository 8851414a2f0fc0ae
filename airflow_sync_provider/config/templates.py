"""Run values in request params and JSON bodies: ``{data_interval_start}``, ``{bookmark}`` ..., pure.

A string value may name run values in braces; nothing else is special (``{{`` and ``}}`` are literal
braces). A value that is exactly one placeholder takes the run value with its type (an integer stays
an integer); inside a longer string it is formatted as text. When a value names a run value this run
does not have (no bookmark yet, a manual run without a data interval), that param or body key is left
out of the request. Names are checked when the config is read (``check``), never at request time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from airflow_sync_provider.exceptions import SyncConfigError

NAMES = (
    "data_interval_start",
    "data_interval_end",
    "data_interval_start_unix",
    "data_interval_end_unix",
    "bookmark",
)
"""``data_interval_*``: the run's data interval as ISO 8601 UTC (``*_unix``: integer epoch seconds);
``bookmark``: the stored incremental bookmark minus ``incremental.lag`` (or ``initial_value``)."""

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class _Absent(Exception):
    """A placeholder whose run value is missing: the param or key is left out."""


def placeholders(text: str) -> list[str]:
    """The names in ``text``'s placeholders; ``ValueError`` for an unpaired brace."""
    names = []
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        if match.group(1) is None:
            raise ValueError("unpaired brace")
        names.append(match.group(1))
    return names


def check(value: Any, field: str) -> None:
    """Raise ``SyncConfigError`` naming ``field`` when a string in ``value`` names an unknown run value."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            check(item, f"{field}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check(item, f"{field}[{index}]")
    elif isinstance(value, str):
        try:
            unknown = [n for n in placeholders(value) if n not in NAMES]
        except ValueError:
            raise SyncConfigError(
                field, value, "has an unpaired brace (write {{ or }} for a brace)"
            ) from None
        if unknown:
            known = ", ".join("{" + n + "}" for n in NAMES)
            raise SyncConfigError(field, value, f"names unknown run value {{{unknown[0]}}} (known: {known})")


def render(value: Any, values: Mapping[str, Any]) -> Any:
    """``value`` with its placeholders filled from ``values``; keys whose placeholder has no value are
    left out of objects (a top-level string without a value renders to ``None``)."""
    try:
        return _render(value, values)
    except _Absent:
        return None


def _render(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            try:
                out[key] = _render(item, values)
            except _Absent:
                continue
        return out
    if isinstance(value, list | tuple):
        return [_render(item, values) for item in value]
    if not isinstance(value, str) or ("{" not in value and "}" not in value):
        return value
    whole = re.fullmatch(r"\{([^{}]*)\}", value)
    if whole is not None:
        return _value(whole.group(1), values)
    return _TOKEN.sub(lambda m: _piece(m, values), value)


def _piece(match: re.Match[str], values: Mapping[str, Any]) -> str:
    token = match.group(0)
    if token in ("{{", "}}"):
        return token[0]
    return str(_value(match.group(1), values))


def _value(name: str, values: Mapping[str, Any]) -> Any:
    value = values.get(name)
    if value is None:
        raise _Absent(name)
    return value
