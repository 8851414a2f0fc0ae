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
import re
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import quote, quote_plus, unquote, urlsplit

MASK = "***"
PAGINATION_PARAMS = frozenset({"page", "per_page", "page_size", "limit", "offset"})
"""Query parameters whose values are pagination positions, shown as they are."""
MIN_SECRET_LENGTH = 4
"""Shorter "secrets" are not searched for (a one-letter password would mask every ``a``)."""


def redact_url(url: str, *, keep: Iterable[str] = (), secrets: Iterable[str] = ()) -> str:
    """The path and query of ``url`` fit for a log: query values masked but for ``keep`` names.

    ``/items?page=2&api_key=***``; with ``secrets``, each of them is masked wherever it appears (a
    kept value equal to one is masked whole). An unparseable URL yields its path-looking part with
    everything after the first ``?`` masked.
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
    if query:
        shown = f"{shown}?{'&'.join(_redact_pair(pair, kept, known) for pair in query.split('&'))}"
    return mask_secrets(shown, known)


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret, as is or percent-encoded, replaced by ``***``."""
    return _replace_all(
        text, {form: MASK for s in secrets if len(s) >= MIN_SECRET_LENGTH for form in encoded_forms(s)}
    )


def encoded_forms(secret: str) -> list[str]:
    """How ``secret`` may appear in a URL: as is, percent-encoded (``%2B`` or ``%2b``), form-encoded."""
    forms = [secret, quote(secret, safe=""), quote_plus(secret, safe="")]
    forms += [_PERCENT.sub(lambda m: m.group().lower(), f) for f in forms[1:]]
    return list(dict.fromkeys(forms))


def conceal(text: str, secrets: Mapping[str, str]) -> str:
    """``text`` fit for a checkpoint: each secret (``{name: value}``), in each of its ``encoded_forms``,
    replaced by a marker naming it (``***password***``; ``***password~1***`` for the n-th form).

    ``reveal`` with the same names puts the values back: ``reveal(conceal(t, s), s) == t`` for any
    ``t`` that holds no marker of its own.
    """
    return _replace_all(text, {form: marker for marker, form in _markers(secrets).items()})


def reveal(text: str, secrets: Mapping[str, str]) -> str:
    """``text`` from ``conceal`` with the markers replaced by the secrets' current values; a marker
    whose name ``secrets`` lacks stays as it is."""
    return _replace_all(text, _markers(secrets))


_PERCENT = re.compile("%[0-9A-F]{2}")


def _markers(secrets: Mapping[str, str]) -> dict[str, str]:
    """``{marker: form}`` for each secret long enough to be searched for."""
    return {
        f"{MASK}{name}{f'~{i}' if i else ''}{MASK}": form
        for name, value in secrets.items()
        if len(value) >= MIN_SECRET_LENGTH
        for i, form in enumerate(encoded_forms(value))
    }


def _replace_all(text: str, replacements: Mapping[str, str]) -> str:
    """``text`` with each key of ``replacements`` replaced in one left-to-right pass, longest key first
    (a replacement is never searched again, so one secret inside another's marker stays intact)."""
    if not replacements:
        return text
    pattern = "|".join(re.escape(k) for k in sorted(replacements, key=len, reverse=True))
    return re.sub(pattern, lambda m: replacements[m.group()], text)


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
    return mask_secrets(text, hidden)


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
        return mask_secrets(value, _known)


_FILTER = _RequestLineFilter()


def protect_http_debug_log(secrets: Iterable[str]) -> None:
    """Mask query values and ``secrets`` in ``urllib3``'s DEBUG request lines (idempotent)."""
    with _lock:
        _known.update(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH)
        logger = logging.getLogger(HTTP_DEBUG_LOGGER)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
