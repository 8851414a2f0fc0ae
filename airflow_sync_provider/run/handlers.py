"""Sync handlers: the default paginated JSON handler and the context custom handlers receive.

A handler is any callable ``handler(ctx: SyncContext) -> int | Mapping`` returning the number of
items processed (or ``{"items_processed": n}``), like the original design's ``customSyncHandler``.
Every request it makes through ``ctx.request`` or ``ctx.pages`` passes the breaker and the rate
limiter and is retried alone.

After a deferral the handler is called again from its start, with the same checkpoint:

- each ``ctx.pages()`` loop continues at its unfinished page. A page is finished only when the
  handler asks for the next one, so the page the handler was processing is delivered again (same
  ``number`` and ``url``, ``redelivered=True``): pages are delivered at least once, finished pages
  never again, and a finished loop yields nothing;
- ``ctx.request`` calls are sent again (the handler's code before the deferral point runs again);
- ``ctx.checkpoint.handler_data`` keeps what the handler put there, to skip work already done.

Airflow stores a checkpoint in plain JSON (the trigger's kwargs and event, ``next_kwargs``), so the
page URLs and cursors it keeps are in their checkpoint form (``ctx.checkpoint_url``): the connection's
secrets, e.g. an API key an API echoes into its next-page links, replaced by markers that
``ctx.restored_url`` turns back into the current values before the request.

With ``load`` configured, the default handler lands the items through ``ctx.load`` (dlt); custom
handlers can call ``ctx.load(items, table=...)`` themselves. With ``incremental``, pass
``**ctx.incremental_params()`` to the first request to fetch only what changed since the bookmark.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from airflow_sync_provider.config import SyncConfig, templates
from airflow_sync_provider.exceptions import SyncAbort
from airflow_sync_provider.hooks.outcome import Attempt
from airflow_sync_provider.load.incremental import Cursor, highest, value_to_send
from airflow_sync_provider.redact import conceal, mask_secrets, reveal
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.run.endpoint_pages import check_first_page, endpoint_pages, items_of, items_problem
from airflow_sync_provider.run.sync_run import Checkpoint, PageLoop, SyncRun
from airflow_sync_provider.run.urls import wire_url

MAX_REMEMBERED_CURSORS = 1000


@dataclass(frozen=True)
class Page:
    """One page of a paginated source.

    ``number`` and ``url`` identify the page within its ``pages()`` loop and stay the same when a
    resume delivers it again (``redelivered``), so a handler can de-duplicate. ``url`` is in its
    checkpoint form (``SyncContext.checkpoint_url``: no secret of the connection), safe to keep.
    """

    number: int
    items: list[Any]
    response: Attempt
    url: str = ""
    redelivered: bool = False


class _ReadOnAsking(Mapping[str, Any]):
    """Run values of which some are read only when a template asks for them."""

    def __init__(self, values: dict[str, Any], **later: Callable[[], Any]) -> None:
        self._values, self._later = values, later

    def __getitem__(self, name: str) -> Any:
        if name in self._later:
            self._values[name] = self._later.pop(name)()
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class SyncContext:
    """What a handler gets: the source, its config, the Airflow context and guarded requests."""

    def __init__(
        self,
        run: SyncRun,
        context: Mapping[str, Any],
        *,
        bookmark: Cursor | None = None,
        stored_bookmark: Callable[[], Cursor | None] | None = None,
        config: SyncConfig | None = None,
    ) -> None:
        self._run = run
        self.config: SyncConfig = config or run.config
        """The config this context requests with: the run's, or another resource's of the same source
        (a child's parent) sharing the run's window, breaker and checkpoint."""
        self.source: str = run.config.source
        self.context = context
        self.checkpoint: Checkpoint = run.checkpoint
        self._calls: dict[str, int] = {}
        self._bookmark = bookmark
        self._stored_bookmark = stored_bookmark
        self._loader: Any = None

    @property
    def bookmark(self) -> Cursor | None:
        """The stored bookmark this sync starts from (None: first sync or full refresh). Given as
        ``stored_bookmark``, it is read when first asked for: a sync that never asks reads the source's
        state at its first request, not before."""
        if self._stored_bookmark is not None:
            self._bookmark, self._stored_bookmark = self._stored_bookmark(), None
        return self._bookmark

    def incremental_params(self) -> dict[str, Any]:
        """``{param: bookmark - lag}`` (or ``initial_value``; never below it) for the first request; {} if
        not incremental."""
        inc = self.config.incremental
        if inc is None:
            return {}
        value = value_to_send(self.bookmark, inc.initial_value, inc.lag)
        return {} if value is None else {inc.param: value}

    def load(
        self,
        items: Iterable[Any],
        *,
        table: str | None = None,
        write_disposition: str | None = None,
        primary_key: str | Sequence[str] | None = None,
    ) -> int:
        """Land ``items`` (a list, or a generator over ``pages()``) in the source's destination.

        Returns the items committed. Items fetched before a wait are committed before the sync defers;
        under ``replace`` they are staged, and swapped in only when the whole sync succeeds.
        """
        loader = self._get_loader()
        committed = loader.load(
            items, table=table, write_disposition=write_disposition, primary_key=primary_key
        )
        return int(committed)

    def _get_loader(self) -> Any:
        if self._loader is None:
            from airflow_sync_provider.load.loader import Loader, SyncLoadError

            if self.config.load is None:
                raise SyncLoadError(f"{self.source}: ctx.load needs a load section in the source's config")
            self._loader = Loader(self.config, self.checkpoint.load, self._run.log)
        return self._loader

    def publish_loads(self) -> None:
        """After the handler succeeded: swap in the tables this sync staged under ``replace``."""
        if self.checkpoint.load.get("staged"):
            self._get_loader().publish(truncated=self.checkpoint.truncated)

    def note_cursor(self, items: Iterable[Any]) -> None:
        """Record the highest incremental cursor of ``items`` handled without ``load`` (kept on success)."""
        inc = self.config.incremental
        if inc is not None:
            cp = self.checkpoint.load
            cp["cursor_max"] = highest(items, inc.cursor_field, cp.get("cursor_max"))

    def close(self) -> None:
        if self._loader is not None:
            self._loader.close()

    def checkpoint_url(self, url: str) -> str:
        """``url`` (or a cursor) as a checkpoint keeps it: each secret of the connection (password, key
        extras), as is or percent-encoded, replaced by a marker naming it (``redact.conceal``)."""
        return conceal(url, self._run.hook.named_secrets)

    def restored_url(self, stored: str) -> str:
        """A ``checkpoint_url`` with the connection's current secrets put back, ready to request."""
        return reveal(stored, self._run.hook.named_secrets)

    def request(self, method: str = "GET", path: str | None = None, **params: Any) -> Attempt:
        """One rate-limited, breaker-guarded request with bounded retries; ``.body`` is the JSON."""
        return self._run.request(method, path, params)

    def pages(self, path: str | None = None, *, counted: bool = True, **params: Any) -> Iterator[Page]:
        """Follow pagination from ``path`` (default: the endpoint) by ``Link: rel="next"`` or cursor,
        or by the source's ``paginator`` when it names one.

        Each call is its own loop (own cursor, loop detection and checkpoint entry), keyed by the
        path and how many ``pages()`` calls with that path came before it in this handler call.
        ``params`` go on the first page's URL (on the endpoint, after the source's ``params``).
        ``max_pages`` bounds the finished pages of the whole sync: at the limit the loop ends and the
        result says ``truncated``. ``counted=False`` keeps the pages' items out of ``checkpoint.items``
        (a child resource's parent pages).
        """
        base = path or self.config.endpoint
        n = self._calls.get(base, 0)
        self._calls[base] = n + 1
        if path is None or path == self.config.endpoint:
            params = {**templates.render(self.config.params, self.run_values()), **params}
        if self.config.paginator is None:
            return self._pages(f"{base}#{n}", base, params, counted)
        return self._endpoint_pages(f"{base}#{n}", base, params, counted)

    def run_values(self) -> Mapping[str, Any]:
        """The values ``params`` and ``json`` may name (``templates.NAMES``); missing ones are None. Without
        ``incremental`` the bookmark is read only if a template names it (it is in the source's state)."""
        values: dict[str, Any] = dict.fromkeys(templates.NAMES)
        for name in ("data_interval_start", "data_interval_end"):
            when = self.context.get(name)
            if isinstance(when, datetime):
                when = when.astimezone(UTC)
                values[name] = when.isoformat().replace("+00:00", "Z")
                values[f"{name}_unix"] = int(when.timestamp())
        inc = self.config.incremental
        if inc is not None:
            values["bookmark"] = self.incremental_params().get(inc.param)
            return values
        return _ReadOnAsking(values, bookmark=lambda: self.bookmark)

    def _endpoint_pages(
        self, key: str, base: str, params: Mapping[str, Any], counted: bool = True
    ) -> Iterator[Page]:
        cp, spec = self.checkpoint, self.config.request_spec
        loop = cp.loops.get(key)
        if loop is None:
            loop = cp.loops[key] = PageLoop(url=wire_url(self._run.hook.url_for(base), params))
        body = templates.render(spec.json, self.run_values()) if spec.json is not None else None
        pages = endpoint_pages(
            self._run, loop, spec, body, truncate=self._truncate, counted=counted, config=self.config
        )
        for page in pages:
            yield Page(page.number, page.items, page.response, url=page.url, redelivered=page.redelivered)

    def _pages(self, key: str, base: str, params: Mapping[str, Any], counted: bool = True) -> Iterator[Page]:
        cfg, cp = self.config, self.checkpoint
        loop = cp.loops.get(key)
        if loop is None:
            first = wire_url(self._run.hook.url_for(base), params)
            loop = cp.loops[key] = PageLoop(url=self.checkpoint_url(first))
        while not loop.done:
            if not loop.delivered and cp.pages >= cfg.max_pages:
                self._truncate(loop)
                return
            url = self.restored_url(loop.url)
            selector = cfg.data_selector
            attempt = self._run.request(
                cfg.method,
                url,
                accept=functools.partial(items_problem, selector=selector, items_key=cfg.items_key),
                json_body=templates.render(cfg.json, self.run_values()) if cfg.json is not None else None,
            )
            if loop.number == 1:
                check_first_page(attempt.body, selector, self.source, self._run.log)
            items = items_of(attempt.body, selector, cfg.items_key)
            following = self._next_page(loop, url, attempt)
            redelivered, loop.delivered = loop.delivered, True
            yield Page(loop.number, items, attempt, url=loop.url, redelivered=redelivered)
            # the handler asked for the next page: this one is finished
            cp.pages += 1
            cp.items += len(items) if counted else 0
            if following is None:
                loop.done, loop.seen = True, []
            else:
                url, seen_key = following
                loop.seen = [*loop.seen[-MAX_REMEMBERED_CURSORS + 1 :], seen_key]
                loop.url, loop.number, loop.delivered = url, loop.number + 1, False

    def _truncate(self, loop: PageLoop) -> None:
        loop.done, loop.seen = True, []
        self.checkpoint.truncated = True
        self._run.log.warning(
            "%s: stopped at max_pages=%d pages; the source has more (the result says truncated)",
            self.source,
            self.config.max_pages,
        )

    def _next_page(self, loop: PageLoop, url: str, attempt: Attempt) -> tuple[str, str] | None:
        """The next page's URL and its loop-detection key (both in checkpoint form), or None on the last
        page; ``url`` is the page just read, as requested."""
        cfg = self.config
        link = _link_next(attempt.headers or {})
        cursor = attempt.body.get(cfg.next_cursor_field) if isinstance(attempt.body, dict) else None
        if link:
            target = requests.compat.urljoin(url, link)
            key = target
        elif cursor not in (None, ""):
            target = _with_param(url, cfg.cursor_param, str(cursor))
            key = str(cursor)
        else:
            return None
        if self.checkpoint_url(key) in loop.seen:
            hook = self._run.hook
            shown = hook.redact(key, cfg) if link else mask_secrets(key, hook.named_secrets.values())
            raise SyncAbort(
                SyncErrorKind.INVALID_RESPONSE, f"pagination loop: next page {shown!r} was already read"
            )
        try:
            return self.checkpoint_url(self._run.hook.url_for(target)), self.checkpoint_url(key)
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
    problem = shape_problem(body, items_key)
    if problem is not None:
        raise SyncAbort(SyncErrorKind.INVALID_RESPONSE, problem)
    return body if isinstance(body, list) else body[items_key]


def shape_problem(body: Any, items_key: str) -> str | None:
    """Why ``body`` holds no items (``None`` when it does)."""
    if isinstance(body, list) or (isinstance(body, dict) and isinstance(body.get(items_key), list)):
        return None
    shape = type(body).__name__ if not isinstance(body, dict) else f"object with keys {sorted(body)[:5]}"
    return f"expected a JSON list or an object with a list under {items_key!r}, got {shape}"


def items_check(items_key: str) -> Callable[[Any], str | None]:
    """For ``SyncRun.request(accept=...)``: a body without items is an unusable response, recorded so
    (a breaker failure unless ``invalid_response_is_failure`` is false) before anything else sees it."""
    return functools.partial(shape_problem, items_key=items_key)


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
