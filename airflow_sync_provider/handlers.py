"""Sync handlers: the default paginated JSON handler and the context custom handlers receive.

A handler is any callable ``handler(ctx: SyncContext) -> int | Mapping`` returning the number of
items processed (or ``{"items_processed": n}``), like the original design's ``customSyncHandler``.
Every request it makes through ``ctx.request`` or ``ctx.pages`` passes the breaker and the rate
limiter and is retried alone. After a deferral the handler is called again: ``ctx.pages()`` then
continues at the page it stopped at, and ``ctx.checkpoint.handler_data`` keeps what the handler put
there.

With ``load`` configured, the default handler lands the items through ``ctx.load`` (dlt); custom
handlers can call ``ctx.load(items, table=...)`` themselves. With ``incremental``, pass
``**ctx.incremental_params()`` to the first request to fetch only what changed since the bookmark.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.exceptions import SyncAbort
from airflow_sync_provider.hooks.outcome import Attempt
from airflow_sync_provider.load.incremental import Cursor, highest, with_lag
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.sync_run import Checkpoint, SyncRun

MAX_REMEMBERED_CURSORS = 1000


@dataclass(frozen=True)
class Page:
    """One page of a paginated source."""

    number: int
    items: list[Any]
    response: Attempt


class SyncContext:
    """What a handler gets: the source, its config, the Airflow context and guarded requests."""

    def __init__(self, run: SyncRun, context: Mapping[str, Any], *, bookmark: Cursor | None = None) -> None:
        self._run = run
        self.config: SyncConfig = run.config
        self.source: str = run.config.source
        self.context = context
        self.checkpoint: Checkpoint = run.checkpoint
        self.bookmark = bookmark
        """The stored bookmark this sync starts from (None: first sync or full refresh)."""
        self._loader: Any = None

    def incremental_params(self) -> dict[str, Any]:
        """``{param: bookmark - lag}`` (or ``initial_value``) for the first request; {} if not incremental."""
        inc = self.config.incremental
        if inc is None:
            return {}
        value = self.bookmark if self.bookmark is not None else inc.initial_value
        return {} if value is None else {inc.param: with_lag(value, inc.lag)}

    def load(
        self,
        items: Iterable[Any],
        *,
        table: str | None = None,
        write_disposition: str | None = None,
        primary_key: str | Sequence[str] | None = None,
    ) -> int:
        """Land ``items`` (a list, or a generator over ``pages()``) in the source's destination.

        Returns the items committed. Items fetched before a wait are committed before the sync defers.
        """
        if self._loader is None:
            from airflow_sync_provider.load.loader import Loader, SyncLoadError

            if self.config.load is None:
                raise SyncLoadError(f"{self.source}: ctx.load needs a load section in the source's config")
            self._loader = Loader(self.config, self.checkpoint.load, self._run.log)
        return int(
            self._loader.load(
                items, table=table, write_disposition=write_disposition, primary_key=primary_key
            )
        )

    def note_cursor(self, items: Iterable[Any]) -> None:
        """Record the highest incremental cursor of ``items`` handled without ``load`` (kept on success)."""
        inc = self.config.incremental
        if inc is not None:
            cp = self.checkpoint.load
            cp["cursor_max"] = highest(items, inc.cursor_field, cp.get("cursor_max"))

    def close(self) -> None:
        if self._loader is not None:
            self._loader.close()

    def request(self, method: str = "GET", path: str | None = None, **params: Any) -> Attempt:
        """One rate-limited, breaker-guarded request with bounded retries; ``.body`` is the JSON."""
        return self._run.request(method, path, **params)

    def pages(self, path: str | None = None, **params: Any) -> Iterator[Page]:
        """Follow pagination from ``path`` (default: the endpoint) by ``Link: rel="next"`` or cursor."""
        cfg, cp = self.config, self.checkpoint
        url: str | None = cp.next_url or self._run.hook.url_for(path or cfg.endpoint)
        first_params = params if cp.next_url is None else {}
        while url is not None:
            if cp.pages >= cfg.max_pages:
                raise SyncAbort(
                    SyncErrorKind.INVALID_RESPONSE,
                    f"more than max_pages={cfg.max_pages} pages; raise max_pages if the source is that large",
                )
            attempt = self._run.request("GET", url, **first_params)
            first_params = {}
            items = extract_items(attempt.body, cfg.items_key)
            following = self._next_url(url, attempt)
            cp.pages += 1
            cp.items += len(items)
            cp.next_url = following
            yield Page(cp.pages, items, attempt)
            url = following

    def _next_url(self, current: str, attempt: Attempt) -> str | None:
        cfg, cp = self.config, self.checkpoint
        link = _link_next(attempt.headers or {})
        cursor = attempt.body.get(cfg.next_cursor_field) if isinstance(attempt.body, dict) else None
        if link:
            target = requests.compat.urljoin(current, link)
            key = target
        elif cursor not in (None, ""):
            target = _with_param(current, cfg.cursor_param, str(cursor))
            key = str(cursor)
        else:
            return None
        if key in cp.seen_cursors:
            raise SyncAbort(
                SyncErrorKind.INVALID_RESPONSE, f"pagination loop: next page {key!r} was already read"
            )
        cp.seen_cursors = [*cp.seen_cursors[-MAX_REMEMBERED_CURSORS + 1 :], key]
        try:
            return self._run.hook.url_for(target)
        except Exception as exc:  # CrossHostRedirect
            raise SyncAbort(SyncErrorKind.INVALID_RESPONSE, f"next page link refused: {exc}") from exc


Handler = Callable[[SyncContext], "int | Mapping[str, Any]"]


def default_handler(ctx: SyncContext) -> int:
    """GET the endpoint and follow every page, landing the items if ``load`` is set; returns the count."""
    params = ctx.incremental_params()
    if ctx.config.load is not None:
        ctx.load(item for page in ctx.pages(**params) for item in page.items)
    else:
        for page in ctx.pages(**params):
            ctx.note_cursor(page.items)
    return ctx.checkpoint.items


def extract_items(body: Any, items_key: str) -> list[Any]:
    """Items of a page: a top-level JSON list, or the list under ``items_key``."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and isinstance(body.get(items_key), list):
        return body[items_key]
    shape = type(body).__name__ if not isinstance(body, dict) else f"object with keys {sorted(body)[:5]}"
    raise SyncAbort(
        SyncErrorKind.INVALID_RESPONSE,
        f"expected a JSON list or an object with a list under {items_key!r}, got {shape}",
    )


def items_from_handler_return(value: Any) -> int:
    """Read a handler's return value: an int, or a mapping with ``items_processed``."""
    if isinstance(value, bool):
        raise TypeError(f"handler returned {value!r}; expected an item count")
    if isinstance(value, int):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("items_processed"), int):
        return int(value["items_processed"])
    raise TypeError(f"handler returned {type(value).__name__}; expected an int or {{'items_processed': int}}")


def _link_next(headers: Mapping[str, str]) -> str | None:
    value = headers.get("link")
    if not value:
        return None
    for part in requests.utils.parse_header_links(value):
        if "next" in str(part.get("rel", "")).split():
            return part.get("url") or None
    return None


def _with_param(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    query.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(query)))
