"""The page loop of a configured paginator: one guarded request per page, resumable at the page.

``ctx.pages()`` uses it when the source names a ``paginator`` (``pagination``). Its ``PageLoop``
checkpoint entry holds the current page's URL and its paginator ``position`` (offset, page number,
cursor or last item's cursor), both in checkpoint form (the connection's secrets replaced by markers,
``redact.conceal``, put back before the request); a page is finished only when the handler asks for
the next one, so a deferral or crash resumes at the unfinished page with the same request. Items are
read with ``data_selector`` (``selection``) or the legacy ``items_key``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.config.endpoint import EndpointConfig, PaginatorConfig
from airflow_sync_provider.exceptions import SyncAbort
from airflow_sync_provider.hooks.outcome import Attempt
from airflow_sync_provider.redact import conceal, mask_secrets, reveal
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.run import json_paths, pagination, selection
from airflow_sync_provider.run.sync_run import PageLoop, SyncRun
from airflow_sync_provider.run.urls import wire_url

MAX_REMEMBERED_CURSORS = 1000


@dataclass(frozen=True)
class LoopPage:
    """One page as the loop read it (``handlers.Page`` is built from it)."""

    number: int
    items: list[Any]
    response: Attempt
    url: str
    redelivered: bool


def items_of(body: Any, selector: str | None, items_key: str) -> list[Any]:
    """A page's items by ``data_selector`` (or ``items_key``); ``SyncAbort`` when they cannot be read."""
    problem = items_problem(body, selector, items_key)
    if problem is not None:
        raise SyncAbort(SyncErrorKind.INVALID_RESPONSE, problem)
    if selector is not None:
        return selection.select(body, selector)
    return body if isinstance(body, list) else list(body[items_key])


def items_problem(body: Any, selector: str | None, items_key: str) -> str | None:
    """Why ``body`` has no readable items (``None``: it has), for ``SyncRun.request(accept=...)``."""
    if selector is None:
        if isinstance(body, list) or (isinstance(body, dict) and isinstance(body.get(items_key), list)):
            return None
        shape = type(body).__name__ if not isinstance(body, dict) else f"object with keys {sorted(body)[:5]}"
        return f"expected a JSON list or an object with a list under {items_key!r}, got {shape}"
    try:
        selection.select(body, selector)
    except selection.SelectionError as exc:
        return str(exc)
    return None


def check_first_page(body: Any, selector: str | None, source: str, log: Any) -> None:
    """A ``data_selector`` missing from a loop's first page: a warning, or ``INVALID_RESPONSE`` when
    the page has items elsewhere (``selection.mismatch``)."""
    if selector is None:
        return
    try:
        warning = selection.mismatch(body, selector)
    except selection.SelectionError as exc:
        raise SyncAbort(SyncErrorKind.INVALID_RESPONSE, str(exc)) from exc
    if warning is not None:
        log.warning("%s: %s", source, warning)


def endpoint_pages(
    run: SyncRun,
    loop: PageLoop,
    spec: EndpointConfig,
    body: Mapping[str, Any] | None,
    *,
    truncate: Callable[[PageLoop], None],
    counted: bool = True,
    config: SyncConfig | None = None,
) -> Iterator[LoopPage]:
    """Read ``loop``'s pages with ``spec.paginator``; ``body`` is the rendered JSON body (POST).
    ``counted=False``: the items stay out of ``checkpoint.items``; ``config``: the resource's (default
    the run's) for ``items_key``."""
    cfg, cp = config or run.config, run.checkpoint
    paginator = spec.paginator
    assert paginator is not None
    if not loop.position and not loop.delivered and loop.number == 1:
        loop.position = pagination.start(paginator)
    while not loop.done:
        if not loop.delivered and cp.pages >= cfg.max_pages:
            truncate(loop)
            return
        secrets = run.hook.named_secrets
        position = {k: reveal(v, secrets) if isinstance(v, str) else v for k, v in loop.position.items()}
        request = pagination.request_for(paginator, position)
        page_body = _with_values(body, request.body) if spec.method == "POST" else None
        url = reveal(loop.url, secrets)

        def accept(data: Any) -> str | None:
            return items_problem(data, spec.data_selector, cfg.items_key)

        attempt = run.request(spec.method, url, request.params, accept=accept, json_body=page_body)
        if loop.number == 1:
            check_first_page(attempt.body, spec.data_selector, cfg.source, run.log)
        items = items_of(attempt.body, spec.data_selector, cfg.items_key)
        following = _following(run, loop, url, position, paginator, attempt, items)
        redelivered, loop.delivered = loop.delivered, True
        yield LoopPage(loop.number, items, attempt, wire_url(url, request.params), redelivered)
        # the handler asked for the next page: this one is finished
        cp.pages += 1
        cp.items += len(items) if counted else 0
        if following is None:
            loop.done, loop.seen = True, []
        else:
            following_position, next_url, seen_key = following
            if seen_key is not None:
                loop.seen = [*loop.seen[-MAX_REMEMBERED_CURSORS + 1 :], conceal(seen_key, secrets)]
            loop.url = conceal(next_url, secrets)
            loop.position = {
                k: conceal(v, secrets) if isinstance(v, str) else v for k, v in following_position.items()
            }
            loop.number, loop.delivered = loop.number + 1, False


def _following(
    run: SyncRun,
    loop: PageLoop,
    url: str,
    position: dict[str, Any],
    paginator: PaginatorConfig,
    attempt: Attempt,
    items: list[Any],
) -> tuple[dict[str, Any], str, str | None] | None:
    """The next page's position, URL and loop-detection key (as the API gave them, not concealed), or
    None on the last page; ``url`` and ``position`` are the page just read, as requested."""
    links = _links(attempt.headers or {})
    try:
        following = pagination.advance(paginator, position, pagination.PageView(attempt.body, items, links))
    except pagination.PaginationError as exc:
        raise SyncAbort(SyncErrorKind.INVALID_RESPONSE, f"paginator {paginator.type}: {exc}") from exc
    if following is None:
        return None
    key = following.seen_key
    if following.url is not None:
        target = urljoin(url, following.url)
        try:
            url = run.hook.url_for(target)
        except Exception as exc:  # CrossHostRedirect
            raise SyncAbort(SyncErrorKind.INVALID_RESPONSE, f"next page link refused: {exc}") from exc
        key = target
    secrets = run.hook.named_secrets
    if key is not None and conceal(key, secrets) in loop.seen:
        link = following.url is not None
        shown = run.hook.redact(key, run.config) if link else mask_secrets(key, secrets.values())
        raise SyncAbort(
            SyncErrorKind.INVALID_RESPONSE, f"pagination loop: next page {shown!r} was already read"
        )
    return dict(following.position), url, key


def _with_values(body: Mapping[str, Any] | None, values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = dict(body or {})
    for path, value in values.items():
        out = json_paths.with_value(out, path, value)
    return out


def _links(headers: Mapping[str, str]) -> dict[str, str]:
    value = headers.get("link")
    if not value:
        return {}
    links: dict[str, str] = {}
    for part in requests.utils.parse_header_links(value):
        for rel in str(part.get("rel", "")).split():
            if part.get("url"):
                links.setdefault(rel, part["url"])
    return links
