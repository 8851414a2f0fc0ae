"""How far this worker's clock is certainly off the API's, from a response's ``Date`` header.

``Date`` (RFC 9110 6.6.1) is when the API generated the response, in whole seconds: the API's clock
then read ``[date, date + 1)``, ours somewhere in ``[sent, received]``. Only what lies beyond that
uncertainty is skew for sure: a clock behind by more than ``date - received``, or ahead by more than
``sent - (date + 1)``. The window's promise needs every two workers' clocks within
``rate_limit.safety_margin`` of each other (a slot one worker stamps frees by another's clock); the
API's clock is the one reference all workers share, so a worker found off it by more than the margin
is reported. Smaller skew, or two workers off in the same direction, cannot be seen from ``Date``.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime


def date_of(value: str | None) -> float | None:
    """Epoch seconds of an HTTP-date header value, ``None`` when absent or unusable."""
    if not value or len(value) > 64:
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if not isinstance(when, datetime) or when.tzinfo is None:
        return None
    try:
        return when.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def offset(date: float, sent: float, received: float) -> float:
    """Seconds our clock is certainly behind the API's (> 0) or ahead of it (< 0); 0 when ``date``
    fits our send and receive times (its one-second resolution included)."""
    if received < date:
        return date - received
    if sent > date + 1.0:
        return (date + 1.0) - sent
    return 0.0
