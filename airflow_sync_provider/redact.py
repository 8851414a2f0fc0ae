"""URLs as they may be stored and logged: query values and known secrets replaced by ``***``.

Every message that names a request's URL (the hook's outcomes, hence ``last_error``, ``last_result``,
XCom, alerts and the dashboard; the per-attempt log line; the pagination-loop message) goes through
``redact_url``. Query parameter names stay, their values become ``***`` except for the pagination
parameters in ``keep`` (``page``, ``limit``, ``offset`` ... and the source's ``cursor_param``); a path
segment equal to a known secret (the connection's password or key) becomes ``***`` as well. A key put
into a path by hand that the provider does not know cannot be recognised: put it in the connection
(``api_key_param`` or ``api_key_header``) instead.

``urllib3`` logs each request line, query included, at DEBUG; ``protect_http_debug_log`` puts a filter
on that logger that passes those lines through ``redact_url`` (Airflow's own masking of connection
passwords can be switched off, this cannot).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit

MASK = "***"
PAGINATION_PARAMS = frozenset({"page", "per_page", "page_size", "limit", "offset"})
"""Query parameters whose values are pagination positions, shown as they are."""
MIN_SECRET_LENGTH = 4
"""Shorter "secrets" are not searched for (a one-letter password would mask every ``a``)."""


def redact_url(url: str, *, keep: Iterable[str] = (), secrets: Iterable[str] = ()) -> str:
    """The path and query of ``url`` fit for a log: query values masked but for ``keep`` names.

    ``/items?page=2&api_key=***``; with ``secrets``, path segments and kept values equal to one of
    them are masked too. An unparseable URL yields its path-looking part with everything after the
    first ``?`` masked.
    """
    known = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
    kept = PAGINATION_PARAMS | set(keep)
    try:
        parts = urlsplit(url)
        path, query = parts.path, parts.query
    except ValueError:  # e.g. a broken IPv6 literal: keep no host, no query
        head, _, rest = url.partition("?")
        path, query = head.split("://", 1)[-1].partition("/")[2], MASK if rest else ""
        path = "/" + path
    segments = [MASK if unquote(seg) in known else seg for seg in path.split("/")]
    shown = "/".join(segments)
    if not query:
        return shown
    return f"{shown}?{'&'.join(_redact_pair(pair, kept, known) for pair in query.split('&'))}"


def scrub(text: str, url: str, *, keep: Iterable[str] = (), secrets: Iterable[str] = ()) -> str:
    """``text`` (an exception message that may quote ``url``) with the URL's secret parts masked."""
    kept = PAGINATION_PARAMS | set(keep)
    try:
        query = urlsplit(url).query
    except ValueError:
        query = url.partition("?")[2]
    hidden = set(secrets)
    for pair in query.split("&") if query else []:
        name, eq, value = pair.partition("=")
        if not eq:
            hidden.add(name)
        elif unquote(name) not in kept:
            hidden.update((value, unquote(value)))
    for secret in sorted((s for s in hidden if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True):
        text = text.replace(secret, MASK).replace(quote(secret, safe=""), MASK)
    return text


def _redact_pair(pair: str, kept: set[str] | frozenset[str], known: set[str]) -> str:
    name, eq, value = pair.partition("=")
    if not eq:
        return MASK if name else name  # a bare value (``?KEY``) may be the key itself
    if unquote(name) in kept and unquote(value) not in known:
        return pair
    return f"{name}={MASK}" if value else pair


HTTP_DEBUG_LOGGER = "urllib3.connectionpool"
_known: set[str] = set()
_lock = threading.Lock()


class _RequestLineFilter(logging.Filter):
    """Redacts URL paths (arguments starting with ``/``) and known secrets in ``urllib3`` log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(self._clean(a) for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = self._clean(record.msg)
        return True

    def _clean(self, value: object) -> object:
        if not isinstance(value, str):
            return value
        if value.startswith("/"):
            value = redact_url(value, secrets=_known)
        for secret in sorted(_known, key=len, reverse=True):
            value = value.replace(secret, MASK)
        return value


_FILTER = _RequestLineFilter()


def protect_http_debug_log(secrets: Iterable[str]) -> None:
    """Mask query values and ``secrets`` in ``urllib3``'s DEBUG request lines (idempotent)."""
    with _lock:
        _known.update(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH)
        logger = logging.getLogger(HTTP_DEBUG_LOGGER)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
