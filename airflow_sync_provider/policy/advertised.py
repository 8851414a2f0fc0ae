"""Windows an API advertises in its response headers, from either header family (issue 19, item 2).

Each is a ``(limit, window seconds, header)``; ``hooks.guard`` binds the ones longer than our window
as learned windows. Read (names are case-insensitive):

- ``RateLimit-Policy``: every entry with a window (``100;w=10, 250000;w=86400``, structured too);
- a limit header listing quota policies, the IETF draft's first form, found in both families:
  ``X-RateLimit-Limit: 100, 100;w=60, 5000;window=3600`` (each item with ``w=`` or ``window=``);
- a limit header naming its window in its name (Kong and others): ``X-RateLimit-Limit-Second``,
  ``-Minute``, ``-Hour``, ``-Day`` (and ``RateLimit-Limit-<unit>``). A month or a year has no fixed
  length: those headers are not read.

A bare ``X-RateLimit-Limit: 5000`` names no window (GitHub documents an hour, its headers do not
say): it is a window only with ``bare_window`` given (``rate_limit.advertised_window``). Either way
``policy.quota`` reads it as per our window, and its ``Remaining``/``Reset`` bind as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from airflow_sync_provider.policy import quota

UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
LIMIT_HEADERS = ("ratelimit-limit", "x-ratelimit-limit")
NAMES = frozenset({"ratelimit-policy", *LIMIT_HEADERS, *(f"{h}-{u}" for h in LIMIT_HEADERS for u in UNITS)})
"""Every header read here (lower-case): what an attempt keeps of its response for ``windows``."""


class Advertised(NamedTuple):
    limit: int
    seconds: float
    header: str
    """Where it was read, as a log line names it (``X-RateLimit-Limit-Day``)."""


def _listed(value: str) -> list[tuple[int, float]]:
    """``(limit, window)`` of each item of a limit header that names its window (``100;w=60``,
    ``100;window=60``); the bare first item (``100, ...``) names none and is skipped."""
    out = []
    for item in value.split(","):
        head, *params = (part.strip() for part in item.split(";"))
        named = dict(p.partition("=")[::2] for p in params)
        window = quota._seconds((named.get("w") or named.get("window") or "").strip('"') or None)
        limit = quota._count(head)
        if limit and window and window > 0:
            out.append((limit, window))
    return out


def windows(headers: Mapping[str, str], *, bare_window: float | None = None) -> tuple[Advertised, ...]:
    """Every window the response advertises, in the order above; a length advertised twice: the lower
    limit (the API enforces both)."""
    h = {k.lower(): v for k, v in headers.items()}
    policy = quota.policies(h.get("ratelimit-policy"))
    found = [Advertised(limit, seconds, "RateLimit-Policy") for limit, seconds in policy]
    for name in LIMIT_HEADERS:
        shown = "X-RateLimit-Limit" if name.startswith("x-") else "RateLimit-Limit"
        found += [Advertised(limit, seconds, shown) for limit, seconds in _listed(h.get(name) or "")]
        bare = quota._count((h.get(name) or "").split(",", 1)[0])
        if bare and bare_window:
            found.append(Advertised(bare, bare_window, f"{shown}, rate_limit.advertised_window"))
        for unit, seconds in UNITS.items():
            limit = quota._count(h.get(f"{name}-{unit}"))
            if limit:
                found.append(Advertised(limit, seconds, f"{shown}-{unit.title()}"))
    lowest: dict[float, Advertised] = {}
    for w in found:
        if w.seconds not in lowest or w.limit < lowest[w.seconds].limit:
            lowest[w.seconds] = w
    return tuple(w for w in found if lowest[w.seconds] is w)
