"""Is this worker's clock off the API's? Judged from a response's ``Date`` (``policy.skew``)."""

from __future__ import annotations

import logging
from typing import Any

from airflow_sync_provider.hooks.outcome import Attempt
from airflow_sync_provider.policy import skew


class ClockCheck:
    """Warns once per sync when a response's ``Date`` shows our clock off the API's by more than the
    safety margin: the window then does not hold at the API across workers."""

    def __init__(self, source: str, margin_seconds: float, log: logging.Logger | Any) -> None:
        self.source = source
        self.margin_seconds = margin_seconds
        self.log = log
        self.warned = False

    def check(self, attempt: Attempt, sent: float, received: float) -> None:
        date = skew.date_of((attempt.headers or {}).get("date"))
        if date is None or self.warned:
            return
        off = skew.offset(date, sent, received)
        if abs(off) <= self.margin_seconds:
            return
        self.warned = True
        self.log.warning(
            "%s: this worker's clock is at least %.1fs %s the API's (its Date header), more than "
            "rate_limit.safety_margin (%gs): requests of different workers can reach the API closer "
            "than the window; synchronise the worker's clock (NTP)",
            self.source,
            abs(off),
            "behind" if off > 0 else "ahead of",
            self.margin_seconds,
        )
