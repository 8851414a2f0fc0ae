"""The fields of a stored source state read back from JSON, each checked (``store.SourceState.from_json``).

A bad field raises ``ValueError`` naming it (the state is then replaced by a fresh one and the problem
reported); a repairable one (a negative count, a malformed learned quota) is fixed and reported through
``warn``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from airflow_sync_provider.config import MAX_WINDOW_ENTRIES
from airflow_sync_provider.policy import rate_limit
from airflow_sync_provider.policy import shares as sh
from airflow_sync_provider.policy.buckets import Buckets
from airflow_sync_provider.policy.log import Log
from airflow_sync_provider.policy.quota import Quota

Warn = Callable[[str], None]


def number(value: Any, name: str) -> float | None:
    """A finite number as a float (``None`` stays ``None``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def count(value: Any, name: str, warn: Warn) -> int:
    """A count: an integer, a negative one read as 0 with a warning."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < 0:
        warn(f"{name} was negative ({value}); treating it as 0")
        return 0
    return value


def adaptive(value: Any, warn: Warn) -> dict[str, Any] | None:
    """The adaptive state: an object (its fields are checked by ``policy.adaptive``'s ``restore``);
    anything else is dropped with a warning (the effective limit starts over at the configured one)."""
    if value is None or isinstance(value, dict):
        return value
    warn(f"adaptive must be an object, got {value!r}; the effective limit starts over")
    return None


def learned_windows(value: Any, warn: Warn) -> tuple[tuple[float, int, float], ...]:
    """``learned_windows``: ``[[seconds, limit, until], ...]``; malformed: dropped (learned again)."""
    if value is None:
        return ()
    try:
        if not isinstance(value, list):
            raise ValueError(f"must be a list, got {value!r}")
        out = []
        for item in value:
            if not (isinstance(item, list) and len(item) == 3):
                raise ValueError(f"each must be [seconds, limit, until], got {item!r}")
            seconds, limit, until = (number(v, "learned_windows[]") for v in item)
            if not (seconds and seconds > 0 and limit and limit >= 1 and limit == int(limit) and until):
                raise ValueError(f"each must be [seconds > 0, limit >= 1, until], got {item!r}")
            out.append((seconds, int(limit), until))
    except ValueError as exc:
        warn(f"learned_windows is malformed ({exc}); they are dropped and learned again")
        return ()
    return tuple(sorted(out))


def extra_windows(value: Any) -> tuple[tuple[float, sh.Shares], ...]:
    """``extra_windows``: window length in seconds -> shares as in ``window_shares``."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ValueError(f"extra_windows must be an object, got {value!r}")
    out = []
    for key, raw in value.items():
        length = number(float(key), "extra_windows key")
        if length is None or length <= 0:
            raise ValueError(f"extra_windows keys must be window lengths > 0, got {key!r}")
        out.append((length, sh.of(shares(raw, f"extra_windows[{key!r}]"))))
    return tuple(sorted(out, key=lambda pair: pair[0]))


def newest(stamps: Iterable[float]) -> tuple[float, ...]:
    """The log in time order, cut to its newest ``MAX_WINDOW_ENTRIES`` (never an entry newer than a
    kept one: ``acquire`` decides from the newest ``max_requests`` entries, ``max_requests`` <= the
    maximum)."""
    ordered = sorted(stamps)
    return tuple(ordered[-MAX_WINDOW_ENTRIES:])


def log(value: Any, name: str) -> tuple[float, ...]:
    """A window log: a list of times, kept as ``newest`` does."""
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list, got {value!r}")
    return newest(t for t in (number(t, f"{name}[]") for t in value) if t is not None)


def buckets(value: Any, name: str) -> Buckets:
    """A bucketed window: ``{"width": seconds, "counts": [[index, count > 0], ...]}``."""
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object, got {value!r}")
    width = number(value.get("width"), f"{name}.width")
    counts = value.get("counts")
    if width is None or width <= 0:
        raise ValueError(f"{name}.width must be > 0, got {width!r}")
    merged: dict[int, int] = {}
    for pair in counts if isinstance(counts, list) else [None]:
        if not (isinstance(pair, list) and len(pair) == 2 and type(pair[0]) is type(pair[1]) is int):
            raise ValueError(f"{name}.counts must be [[index, count > 0], ...], got {counts!r}")
        if pair[1] <= 0:
            raise ValueError(f"{name}.counts must be [[index, count > 0], ...], got {counts!r}")
        merged[pair[0]] = merged.get(pair[0], 0) + pair[1]
    return Buckets(width, tuple(sorted(merged.items())))


MAX_WRITER_LENGTH = 64


def shares(value: Any, field_name: str = "window_shares") -> list[sh.Share]:
    """``window_shares``: writer tag -> ``[seq, [time, ...]]`` (a log) or ``[seq, width, [[index,
    count], ...]]`` (buckets)."""
    if value is None:
        return []
    if not isinstance(value, dict):
        raise ValueError(f"{field_name} must be an object, got {value!r}")
    out = []
    for writer, share in value.items():
        name = f"{field_name}[{writer!r}]"
        if not writer or len(writer) > MAX_WRITER_LENGTH:
            raise ValueError(f"{name}: a writer tag must be 1-{MAX_WRITER_LENGTH} characters")
        if not (isinstance(share, list) and len(share) in (2, 3)):
            raise ValueError(f"{name} must be [seq, log] or [seq, width, counts], got {share!r}")
        seq = share[0]
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise ValueError(f"{name} seq must be an integer >= 0, got {seq!r}")
        if len(share) == 2:
            window: rate_limit.Window = Log(log(share[1], f"{name} log"))
        else:
            window = buckets({"width": share[1], "counts": share[2]}, f"{name} buckets")
        out.append(sh.Share(writer, seq, window))
    return out


def quota(value: Any, warn: Warn) -> Quota | None:
    """The learned quota; a malformed one is dropped with a warning (it is learned again)."""
    if value is None:
        return None
    try:
        if not isinstance(value, dict):
            raise ValueError(f"must be an object, got {value!r}")
        counts = {k: number(value.get(k), f"quota.{k}") for k in ("remaining", "limit")}
        if any(v is not None and (v < 0 or v != int(v)) for v in counts.values()):
            raise ValueError(f"remaining and limit must be integers >= 0, got {counts}")
        times = {k: number(value.get(k), f"quota.{k}") for k in ("reset_at", "window", "observed_at")}
    except ValueError as exc:
        warn(f"quota is malformed ({exc}); it is dropped and learned again")
        return None
    remaining, limit = (None if v is None else int(v) for v in (counts["remaining"], counts["limit"]))
    return Quota(remaining=remaining, limit=limit, **times)


def bookmark(value: Any) -> str | int | float | None:
    """A bookmark: a string, a number or null."""
    if value is None or (isinstance(value, str | int | float) and not isinstance(value, bool)):
        return value
    raise ValueError(f"bookmark must be a string, a number or null, got {value!r}")


def resources(value: Any, warn: Warn) -> dict[str, dict[str, Any]]:
    """Each resource's ``bookmark`` and ``last_result``; a malformed entry is dropped with a warning."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        warn(f"resources must be an object, got {value!r}; per-resource bookmarks start over")
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name, entry in value.items():
        try:
            if not isinstance(entry, dict):
                raise ValueError(f"must be an object, got {entry!r}")
            kept: dict[str, Any] = {}
            if entry.get("bookmark") is not None:
                kept["bookmark"] = bookmark(entry["bookmark"])
            if isinstance(entry.get("last_result"), dict):
                kept["last_result"] = entry["last_result"]
            out[str(name)] = kept
        except ValueError as exc:
            warn(f"resources.{name} is malformed ({exc}); its bookmark starts over")
    return out
