"""Parse-time checks of the adaptive rate-limit settings (issue 19, item 6): ``rate_limit.adaptive``,
``rate_limit.min_requests`` and ``rate_limit.adaptive_decrease``.

Kept apart from ``rate_limit_config.py`` so the section grows in one place. Each bad value raises
``SyncConfigError`` naming the field and the value; a floor above the limit names both fields.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, Protocol

from airflow_sync_provider.exceptions import SyncConfigError
from airflow_sync_provider.policy import adaptive

DEFAULT_MIN_REQUESTS = 1
DEFAULT_DECREASE = 0.7
"""The factor a refusal multiplies the effective limit by (CUBIC's beta, as the AWS SDKs use)."""
DECREASE_RANGE = (0.1, 0.95)
"""Below 0.1 one refusal all but stops the source; above 0.95 a refusal barely slows it."""


class RateLimitConfig(Protocol):
    """What these checks read of ``rate_limit_config.RateLimitConfig`` (no import of it: that module
    calls these checks)."""

    @property
    def prefix(self) -> str: ...
    @property
    def max_requests(self) -> int: ...
    @property
    def window(self) -> timedelta: ...
    @property
    def adaptive(self) -> bool: ...
    @property
    def min_requests(self) -> int: ...
    @property
    def adaptive_decrease(self) -> float: ...


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check(limit: RateLimitConfig) -> None:
    """Refuse adaptive settings that are out of range or contradict ``max_requests``."""
    prefix = limit.prefix
    if not isinstance(limit.adaptive, bool):
        raise SyncConfigError(f"{prefix}.adaptive", limit.adaptive, "must be true or false")
    floor = limit.min_requests
    if not _is_int(floor) or floor < 1:
        raise SyncConfigError(f"{prefix}.min_requests", floor, "must be an integer >= 1")
    if floor > limit.max_requests:
        raise SyncConfigError(
            f"{prefix}.min_requests",
            floor,
            f"must be <= {prefix}.max_requests ({limit.max_requests}): the floor cannot be above the limit",
        )
    low, high = DECREASE_RANGE
    decrease = limit.adaptive_decrease
    ok = isinstance(decrease, int | float) and not isinstance(decrease, bool) and math.isfinite(decrease)
    if not (ok and low <= decrease <= high):
        raise SyncConfigError(f"{prefix}.adaptive_decrease", decrease, f"must be a number in [{low}, {high}]")


def algorithm_for(limit: RateLimitConfig) -> adaptive.Adaptive:
    """The adaptive algorithm a source's ``rate_limit`` asks for: the chosen one (CUBIC), bounded by
    ``min_requests`` and ``max_requests`` over ``window``, decreasing by ``adaptive_decrease``."""
    bounds = adaptive.Bounds(
        ceiling=limit.max_requests, floor=limit.min_requests, window=limit.window.total_seconds()
    )
    return adaptive.Cubic(bounds, beta=limit.adaptive_decrease)
