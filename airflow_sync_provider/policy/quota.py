"""What an API says about its own quota, read from response headers, and what it means for admission.

Header families read (names are case-insensitive; ``headers`` arrive lower-cased):

- IETF httpapi draft, older form: ``RateLimit-Limit: 100``, ``RateLimit-Remaining: 7``,
  ``RateLimit-Reset: 30`` (seconds from now), ``RateLimit-Policy: 100;w=60``.
- IETF httpapi draft, structured form: ``RateLimit: "default";r=7;t=30`` and
  ``RateLimit-Policy: "default";q=100;w=60``.
- The ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` family (GitHub, Stripe-style).
- A configured pair of names for APIs with their own (``x-app-ratelimit-remaining`` ...).
- ``Retry-After`` on 429/503: the quota is spent until then (``remaining = 0``).

Reset values: ``reset_is="seconds"`` (a delta), ``"epoch"`` (Unix time), or ``"auto"``, which decides
by magnitude: a value of at least ``EPOCH_THRESHOLD`` (1e9, September 2001 as a Unix time, 31 years as
a delta) is a Unix time; at least 1e12 is a Unix time in milliseconds; anything smaller is a delta.
An HTTP-date or an ISO 8601 time with an offset is read as that time whatever ``reset_is`` says.
Garbage, negative and non-finite values are ignored field by field; huge ones are clamped.

A learned report is trusted at most ``cap`` seconds after it was learned (``max_learned_wait``): a
misread or hostile reset (a year-long ``Retry-After``, an epoch read as seconds) blocks a source for
at most that long, then one request goes out and its answer is learned again. A ``remaining 0``
without a usable reset is not ignored: the caller gives it one (``with_reset``: when its window's
oldest slot frees), and ``wait`` never answers 0 for it.

Everything here is pure: ``now`` is passed in, nothing sleeps.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from airflow_sync_provider.policy.http_date import absolute_time

ResetIs = Literal["seconds", "epoch", "auto"]
RESET_FORMS: tuple[str, ...] = ("seconds", "epoch", "auto")
EPOCH_THRESHOLD = 1e9
EPOCH_MS_THRESHOLD = 1e12
MAX_RESET_SECONDS = 366 * 86400.0
"""A reset further away than a year is clamped; callers compare waits against ``max_wait`` anyway."""
MAX_COUNT = 10**9
UNDATED_TTL = 3600.0
"""How long a report without any reset time or window is trusted (an hour)."""
FUTURE_TOLERANCE = 1.0
"""A report learned up to this many seconds "after now" is ordinary skew between workers; one learned
further ahead cannot be bounded by the cap and is not trusted."""
SPENT = "the API's quota is spent"
"""How an admission refused by a learned ``remaining 0`` begins its message (run notes look for it)."""
_INTEGER = re.compile(r"^\s*(\d{1,18})\s*$", re.ASCII)
_NUMBER = re.compile(r"^\s*(\d{1,18}(?:\.\d{1,9})?)\s*$", re.ASCII)


@dataclass(frozen=True)
class Quota:
    """What the API last said, as absolute times. Any field may be unknown (``None``)."""

    remaining: int | None = None
    reset_at: float | None = None
    """Epoch seconds when ``remaining`` is restored; after it, ``remaining`` says nothing."""
    limit: int | None = None
    window: float | None = None
    """Seconds the advertised ``limit`` applies to, when the API names it (``w=``)."""
    observed_at: float | None = None

    def is_empty(self) -> bool:
        return self.remaining is None and self.limit is None

    def to_dict(self) -> dict[str, float | int | None]:
        return dataclasses.asdict(self)


def _count(value: str | None) -> int | None:
    if value is None:
        return None
    match = _INTEGER.match(value)
    return min(int(match.group(1)), MAX_COUNT) if match else None


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    match = _NUMBER.match(value)
    if not match:
        return None
    number = float(match.group(1))
    return number if math.isfinite(number) else None


def reset_time(value: str | None, now: float, reset_is: ResetIs = "auto") -> float | None:
    """Epoch seconds of a reset header value under ``reset_is``; ``None`` when unusable.

    A number is read as ``reset_is`` says; an HTTP-date or ISO 8601 time (with an offset) as that time.
    """
    if value is None:
        return None
    number = _seconds(value)
    if number is None:
        at_time = absolute_time(value, now)
        return None if at_time is None else min(max(at_time, now), now + MAX_RESET_SECONDS)
    if reset_is == "epoch" or (reset_is == "auto" and number >= EPOCH_THRESHOLD):
        if reset_is == "auto" and number >= EPOCH_MS_THRESHOLD:
            number /= 1000.0
        at = number
    else:
        at = now + number
    return min(max(at, now), now + MAX_RESET_SECONDS)


def _structured(value: str | None) -> dict[str, str]:
    """Parameters of the first item of a structured field: ``"default";r=7;t=30`` -> {r: 7, t: 30}."""
    if not value:
        return {}
    first = value.split(",", 1)[0]
    params: dict[str, str] = {}
    for part in first.split(";")[1:]:
        key, _, raw = part.partition("=")
        params[key.strip().lower()] = raw.strip().strip('"')
    return params


def _policy(value: str | None) -> tuple[int | None, float | None]:
    """(limit, window) from ``RateLimit-Policy``: ``100;w=60`` or ``"default";q=100;w=60``.

    With several policies listed, the first is taken (the draft lists the one in force first).
    """
    if not value:
        return None, None
    first = value.split(",", 1)[0]
    head = first.split(";", 1)[0].strip()
    params = _structured(first if ";" in first else "")
    limit = _count(params.get("q")) if "q" in params else _count(head)
    window = _seconds(params.get("w"))
    return limit, (window if window and window > 0 else None)


def policies(value: str | None) -> tuple[tuple[int, float], ...]:
    """Every ``(limit, window seconds)`` a ``RateLimit-Policy`` lists with a window (``100;w=10,
    250000;w=86400`` or ``"burst";q=100;w=10, "daily";q=250000;w=86400``), in the order given."""
    out = []
    for item in (value or "").split(","):
        limit, window = _policy(item)
        if limit is not None and limit > 0 and window is not None:
            out.append((limit, window))
    return tuple(out)


def parse_headers(
    headers: Mapping[str, str],
    now: float,
    *,
    remaining_header: str | None = None,
    reset_header: str | None = None,
    reset_is: ResetIs = "auto",
    retry_after: float | None = None,
) -> Quota:
    """The quota one response reports (an empty ``Quota`` when it says nothing).

    The configured pair of names (read with ``reset_is``) wins over the standard families, whose resets
    are read by magnitude; the IETF draft's names win over the ``X-RateLimit-*`` family. A
    ``retry_after`` (already parsed, in seconds) means the quota is spent until then.
    """
    h = {k.lower(): v for k, v in headers.items()}
    structured = _structured(h.get("ratelimit"))
    candidates: list[tuple[str | None, str | None, ResetIs]] = []
    if remaining_header or reset_header:
        candidates.append(
            (
                h.get(remaining_header.lower()) if remaining_header else None,
                h.get(reset_header.lower()) if reset_header else None,
                reset_is,
            )
        )
    candidates += [
        (structured.get("r"), structured.get("t"), "seconds"),
        (h.get("ratelimit-remaining"), h.get("ratelimit-reset"), "auto"),
        (h.get("x-ratelimit-remaining"), h.get("x-ratelimit-reset"), "auto"),
    ]
    remaining: int | None = None
    reset_at: float | None = None
    for raw_remaining, raw_reset, form in candidates:
        remaining = _count(raw_remaining)
        if remaining is not None:
            reset_at = reset_time(raw_reset, now, form)
            break
    limit, window = _policy(h.get("ratelimit-policy"))
    if limit is None:
        limit = _count(h.get("ratelimit-limit")) or _count(h.get("x-ratelimit-limit"))
    if retry_after is not None:
        remaining, reset_at = 0, now + min(max(retry_after, 0.0), MAX_RESET_SECONDS)
    if remaining is None and limit is None:
        return Quota()
    return Quota(remaining=remaining, reset_at=reset_at, limit=limit or None, window=window, observed_at=now)


def current(quota: Quota | None, now: float, cap: float | None = None) -> Quota | None:
    """``quota`` while it still says something: stale values expire at their reset time.

    A report without a reset time is trusted for the ``window`` the API named, else ``UNDATED_TTL``;
    with a ``cap``, none longer than ``cap`` seconds after it was learned (``expires_at``), and none
    learned later than ``now`` (beyond ``FUTURE_TOLERANCE``: a clock or an edit the cap cannot bound).
    """
    if quota is None or quota.is_empty():
        return None
    if cap is not None and quota.observed_at is not None and quota.observed_at > now + FUTURE_TOLERANCE:
        return None
    end = expires_at(quota, cap)
    return quota if end is not None and now < end else None


def expires_at(quota: Quota, cap: float | None = None) -> float | None:
    """When ``current`` stops trusting ``quota`` (``None``: never trusted).

    Its reset; without one, the API's window or ``UNDATED_TTL`` after it was learned. With a ``cap``,
    at most ``cap`` after it was learned; a report without a learning time is then never trusted.
    """
    if quota.reset_at is not None:
        end: float | None = quota.reset_at
    elif quota.observed_at is None:
        return None
    else:
        end = quota.observed_at + (quota.window or UNDATED_TTL)
    if cap is None:
        return end
    if quota.observed_at is None:
        return None
    return min(end, quota.observed_at + cap) if end is not None else None


def wait(quota: Quota | None, now: float, cap: float | None = None) -> float:
    """Seconds to wait before the next request may go: until the reset when nothing remains.

    ``remaining 0`` without a reset waits until the report expires (never 0 while it holds).
    """
    live = current(quota, now, cap)
    if live is None or live.remaining is None or live.remaining > 0:
        return 0.0
    end = expires_at(live, cap)
    return max((end if end is not None else now) - now, 0.0)


def with_reset(reported: Quota, free_at: float) -> Quota:
    """``reported`` with a reset when it says ``remaining 0`` without a usable one: ``free_at``, when the
    caller's window frees its oldest slot (the API's window is taken to be like ours)."""
    if reported.remaining != 0 or reported.reset_at is not None:
        return reported
    return dataclasses.replace(reported, reset_at=free_at)


def consume(quota: Quota | None, now: float, cap: float | None = None) -> Quota | None:
    """The quota after one more request was sent (``remaining`` minus one, never below zero)."""
    live = current(quota, now, cap)
    if live is None or live.remaining is None:
        return live
    return dataclasses.replace(live, remaining=max(live.remaining - 1, 0))


def merge(previous: Quota | None, reported: Quota, now: float, cap: float | None = None) -> Quota | None:
    """What to keep after a response: its report, with what it left out carried over while valid."""
    kept = current(previous, now, cap)
    if reported.is_empty():
        return kept
    if kept is None:
        return reported
    return Quota(
        remaining=reported.remaining if reported.remaining is not None else kept.remaining,
        reset_at=reported.reset_at if reported.remaining is not None else kept.reset_at,
        limit=reported.limit if reported.limit is not None else kept.limit,
        window=reported.window if reported.window is not None else kept.window,
        observed_at=now,
    )


def effective_limit(
    max_requests: int, window: float, quota: Quota | None, now: float, cap: float | None = None
) -> int:
    """Our window's limit, lowered (never raised) to what the API advertises.

    ``limit`` per ``w`` seconds allows at most ``limit * ceil(window / w)`` requests in any span of
    our ``window`` (just ``limit`` when ``w`` is at least ours); an advertised limit without a window
    is taken as per our window.
    """
    live = current(quota, now, cap)
    if live is None or live.limit is None or live.limit <= 0:
        return max_requests
    spans = 1 if live.window is None or live.window >= window else math.ceil(window / live.window)
    return max(1, min(max_requests, live.limit * spans))
