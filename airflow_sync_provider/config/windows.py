"""Several windows per source (issue 19, item 1): ``rate_limit`` as a list of windows.

``rate_limit: [{max_requests: 100, window: 10s}, {max_requests: 250000, window: 1d}]`` is read as
the shortest window (``RateLimitConfig.max_requests``/``window``, which may also carry every other
``rate_limit`` setting) plus ``RateLimitConfig.extra_windows``, the longer ones (``max_requests`` and
``window`` only). A request goes only when every window has room.

Refused at parse time, naming the field:

* the same window twice (``rate_limit[1].window``);
* a contradiction: a longer window whose limit is at most a shorter one's (``100 per 10s`` with
  ``50 per 1d``): the shorter window could never fill, so one of the two is a mistake
  (``rate_limit[1].max_requests``).

A longer window allowing more than the shorter one could ever admit in it (``10 per 1s`` with
``600 per 1m``) is redundant, not contradictory: accepted, it never refuses a request.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow_sync_provider.config.durations import format_duration, parse_duration
from airflow_sync_provider.exceptions import SyncConfigError

MAX_EXTRA_REQUESTS = 100_000_000
"""An extra window is always bucketed (``policy.buckets``): its size does not grow with its limit."""
MAX_EXTRA_WINDOWS = 4
MAX_ADVERTISED_WINDOW = timedelta(days=31)


@dataclass(frozen=True, kw_only=True)
class WindowLimit:
    """One more window a source obeys: never more than ``max_requests`` requests in any ``window``."""

    max_requests: int
    window: timedelta

    @property
    def seconds(self) -> float:
        return self.window / timedelta(seconds=1)

    def to_dict(self) -> dict[str, Any]:
        return {"max_requests": self.max_requests, "window": format_duration(self.window)}


def parse(value: Any, name: str) -> WindowLimit:
    """``{max_requests, window}`` at ``name`` (``rate_limit.extra_windows[0]``)."""
    if isinstance(value, WindowLimit):
        return value
    if not isinstance(value, Mapping):
        raise SyncConfigError(name, value, "must be a mapping with max_requests and window")
    unknown = sorted(set(value) - {"max_requests", "window"})
    if unknown:
        raise SyncConfigError(
            f"{name}.{unknown[0]}",
            value[unknown[0]],
            "is not a known field of a further window (known: max_requests, window)",
        )
    for key in ("max_requests", "window"):
        if key not in value:
            raise SyncConfigError(f"{name}.{key}", None, "is required")
    window = value["window"]
    window = window if isinstance(window, timedelta) else parse_duration(window, f"{name}.window")
    return WindowLimit(max_requests=value["max_requests"], window=window)


def check(windows: Sequence[tuple[str, int, timedelta]], *, extra_max: int = MAX_EXTRA_REQUESTS) -> None:
    """Each ``(field name, max_requests, window)`` valid, no window twice, no contradiction."""
    for name, limit, window in windows:
        ok = isinstance(limit, int) and not isinstance(limit, bool) and 1 <= limit <= extra_max
        if not ok:
            raise SyncConfigError(f"{name}.max_requests", limit, f"must be an integer in [1, {extra_max}]")
        ok = isinstance(window, timedelta) and window > timedelta(0) and math.isfinite(window.total_seconds())
        if not ok:
            raise SyncConfigError(f"{name}.window", window, "must be a positive duration")
    ordered = sorted(windows, key=lambda w: w[2])
    for (short, _, short_window), (name, _, window) in itertools.pairwise(ordered):
        if window == short_window:
            raise SyncConfigError(f"{name}.window", format_duration(window), f"is given twice (also {short})")
    for i, (name, limit, window) in enumerate(ordered):
        for short, short_limit, short_window in ordered[:i]:
            if limit <= short_limit:
                raise SyncConfigError(
                    f"{name}.max_requests",
                    limit,
                    f"contradicts {short}: {limit} per {format_duration(window)} is at most "
                    f"{short_limit} per {format_duration(short_window)}, so the shorter window could "
                    "never fill; give the longer window the larger limit",
                )


def from_list(value: list[Any], prefix: str) -> dict[str, Any]:
    """The list form as the mapping form: the shortest window's entry with ``extra_windows``."""
    if not value:
        raise SyncConfigError(prefix, value, "must be a mapping or a non-empty list of windows")
    if len(value) > MAX_EXTRA_WINDOWS + 1:
        raise SyncConfigError(prefix, value, f"must list at most {MAX_EXTRA_WINDOWS + 1} windows")
    entries: list[tuple[str, Mapping[str, Any], timedelta]] = []
    for i, entry in enumerate(value):
        name = f"{prefix}[{i}]"
        if not isinstance(entry, Mapping):
            raise SyncConfigError(prefix, value, "must be a mapping or a list of mappings")
        if "window" not in entry or "max_requests" not in entry:
            missing = "window" if "window" not in entry else "max_requests"
            raise SyncConfigError(f"{name}.{missing}", None, "is required in each window of the list")
        raw = entry["window"]
        entries.append(
            (name, entry, raw if isinstance(raw, timedelta) else parse_duration(raw, f"{name}.window"))
        )
    check([(name, entry["max_requests"], window) for name, entry, window in entries])
    entries.sort(key=lambda e: e[2])
    (_, first, _), rest = entries[0], entries[1:]
    return {**first, "extra_windows": tuple(parse(entry, name) for name, entry, _ in rest)}


def check_advertised_window(value: Any, name: str) -> None:
    """``rate_limit.advertised_window``: unset, or a positive duration of at most 31 days."""
    if value is None:
        return
    ok = isinstance(value, timedelta) and timedelta(0) < value <= MAX_ADVERTISED_WINDOW
    if not ok:
        shown = format_duration(value) if isinstance(value, timedelta) else value
        raise SyncConfigError(
            name, shown, f"must be a positive duration of at most {MAX_ADVERTISED_WINDOW.days}d"
        )
