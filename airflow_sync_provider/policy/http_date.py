"""Absolute times in response headers: RFC 9110 HTTP-dates (all three forms) and ISO 8601 times.

RFC 9110 section 5.6.7: a recipient must accept the preferred IMF-fixdate
(``Sun, 06 Nov 1994 08:49:37 GMT``) and the two obsolete forms, rfc850 (``Sunday, 06-Nov-94
08:49:37 GMT``) and asctime (``Sun Nov  6 08:49:37 1994``, no zone: GMT). A two-digit rfc850 year more
than 50 years ahead of ``now`` is the latest past year with those digits. Some APIs send a quota's
reset as an ISO 8601 time (``2026-12-05T03:00:00Z``); one without an offset is not a time (it is not
known where), so it is ``None``.

Pure: ``now`` is passed in.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_ASCTIME = re.compile(r"^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$", re.ASCII)
_RFC850 = re.compile(r"^[A-Za-z]{6,9}, \d\d-[A-Za-z]{3}-(\d\d) \d\d:\d\d:\d\d GMT$", re.ASCII)
_ISO = re.compile(r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d{1,9})?)?([Zz]|[+-]\d\d:?\d\d)$", re.ASCII)
_MAX_LENGTH = 64
_CENTURY_AHEAD = 50 * 365.2425 * 86400


def http_date(value: str, now: float) -> float | None:
    """Epoch seconds of an HTTP-date in any of RFC 9110's three forms; ``None`` when it is not one."""
    text = value.strip()
    if not text or len(text) > _MAX_LENGTH or not text.isascii():
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if not isinstance(when, datetime):
        return None
    if when.tzinfo is None:  # a zone-less date is GMT only in the asctime form; "-0000" is not GMT
        if not _ASCTIME.match(text):
            return None
        when = when.replace(tzinfo=UTC)
    try:
        at = when.timestamp()
    except (OverflowError, OSError, ValueError):
        return None
    if _RFC850.match(text) and at > now + _CENTURY_AHEAD:
        try:
            at = when.replace(year=when.year - 100).timestamp()
        except (OverflowError, OSError, ValueError):
            return None
    return at


def iso_time(value: str) -> float | None:
    """Epoch seconds of an ISO 8601 time with an offset (``Z`` or ``+01:00``); ``None`` otherwise."""
    text = value.strip()
    if len(text) > _MAX_LENGTH or not _ISO.match(text):
        return None
    try:
        when = datetime.fromisoformat(text.replace("z", "Z"))
        return when.timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def absolute_time(value: str, now: float) -> float | None:
    """An HTTP-date or an ISO 8601 time, as epoch seconds; ``None`` for anything else."""
    return http_date(value, now) if not value.strip()[:4].isdigit() else iso_time(value)
