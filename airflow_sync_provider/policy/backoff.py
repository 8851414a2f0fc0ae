"""Retry waits and ``Retry-After`` parsing.

Three jitter strategies (see the AWS Architecture Blog, "Exponential Backoff and Jitter", 2015):

- ``proportional`` (the original design): ``min(initial * multiplier**n, max) * (1 ± jitter_factor)``.
  Keeps the wait near the exponential curve; spreads clients by only ±jitter_factor.
- ``full`` ("Full Jitter"): uniform in ``[0, min(initial * multiplier**n, max)]``. Fewest total calls
  under contention; some waits are near zero.
- ``decorrelated`` ("Decorrelated Jitter"): ``min(max, uniform(initial, previous * 3))``. Grows
  from the previous wait instead of the retry number; needs ``previous``.
"""

from __future__ import annotations

import math
import random

from airflow_sync_provider.policy.http_date import http_date

MAX_RETRY_AFTER_SECONDS = 366 * 86400.0
"""Retry-After values are clamped to a year; callers compare against ``max_wait`` anyway."""


def exponential_base(retry: int, initial: float, multiplier: float, cap: float) -> float:
    """``min(initial * multiplier**retry, cap)`` without overflowing for large ``retry``."""
    if retry < 0:
        raise ValueError(f"retry must be >= 0, got {retry}")
    if initial <= 0:
        return 0.0
    if multiplier > 1 and retry * math.log(multiplier) > math.log(cap / initial + 1e-12) + 1:
        return cap
    return min(initial * multiplier**retry, cap)


def proportional_jitter(
    retry: int, *, initial: float, multiplier: float, cap: float, jitter_factor: float, rng: random.Random
) -> float:
    """The original design's wait: the exponential base scaled by ``1 + uniform(-j, +j)``."""
    base = exponential_base(retry, initial, multiplier, cap)
    return max(0.0, base * (1 + rng.uniform(-jitter_factor, jitter_factor)))


def full_jitter(retry: int, *, initial: float, multiplier: float, cap: float, rng: random.Random) -> float:
    """AWS "Full Jitter": ``uniform(0, min(initial * multiplier**retry, cap))``."""
    return rng.uniform(0, exponential_base(retry, initial, multiplier, cap))


def decorrelated_jitter(*, previous: float | None, initial: float, cap: float, rng: random.Random) -> float:
    """AWS "Decorrelated Jitter": ``min(cap, uniform(initial, previous * 3))``; first wait is ``initial``."""
    if previous is None or previous <= 0:
        return min(cap, initial)
    return min(cap, rng.uniform(initial, max(initial, previous * 3)))


def retry_delay(
    retry: int,
    *,
    strategy: str,
    initial: float,
    multiplier: float,
    cap: float,
    jitter_factor: float,
    rng: random.Random,
    previous: float | None = None,
) -> float:
    """The wait in seconds before retry ``retry`` (0 for the first retry) under ``strategy``."""
    if strategy == "proportional":
        return proportional_jitter(
            retry, initial=initial, multiplier=multiplier, cap=cap, jitter_factor=jitter_factor, rng=rng
        )
    if strategy == "full":
        return full_jitter(retry, initial=initial, multiplier=multiplier, cap=cap, rng=rng)
    if strategy == "decorrelated":
        return decorrelated_jitter(previous=previous, initial=initial, cap=cap, rng=rng)
    raise ValueError(f"unknown backoff strategy {strategy!r}")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 10.2.3), or ``None`` if unusable.

    Accepts delta-seconds (``"120"``) and an HTTP-date in any of its three forms
    (``"Wed, 21 Oct 2026 07:28:00 GMT"``, rfc850, asctime: ``policy.http_date``). A date in the past
    means 0. Garbage, negative numbers and non-finite values give ``None`` (fall back to
    backoff); huge values are clamped to ``MAX_RETRY_AFTER_SECONDS``.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if text.isascii() and text.isdigit():  # str.isdigit() is also true for '²' (latin-1 0xB2)
        return min(float(text), MAX_RETRY_AFTER_SECONDS)
    at = http_date(text, now)
    if at is None:
        return None
    return min(max(at - now, 0.0), MAX_RETRY_AFTER_SECONDS)
