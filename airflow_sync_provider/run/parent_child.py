"""The handler of a child resource: its endpoint once per item of its parent resource.

The parent's pages are read with the parent's own request and paginator, then for each parent item the
child's path (and ``resolve`` params) take that item's values and the child's pages follow. Every
request, parent or child, goes through the source's one window, breaker and retries (``SyncRun``).

Resume: the checkpoint's ``handler_data["parent"]`` holds the parent page number and the index of the
item in hand (no URL, no secret); the parent loop redelivers its unfinished page, items before the
index are skipped and the child loop of the item in hand resumes at its unfinished page. A child that
answers 404 is skipped with a warning (``on_missing_parent: skip``) or ends the sync
(``on_missing_parent: fail``). Only child items are counted and loaded.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from airflow_sync_provider.config import SyncConfig, templates
from airflow_sync_provider.config.resources import ResourceConfig
from airflow_sync_provider.exceptions import SyncAbort
from airflow_sync_provider.results import SyncErrorKind
from airflow_sync_provider.run import json_paths
from airflow_sync_provider.run.handlers import Handler, SyncContext

POSITION = "parent"
CHILD_ITEMS = "child_items"


def child_handler(source: SyncConfig, resource: ResourceConfig) -> Handler:
    """The default handler of ``resource`` (a child): ``sync_children`` with its parent's config."""
    assert resource.parent is not None
    return functools.partial(sync_children, parent=source.for_resource(resource.parent), resource=resource)


def sync_children(ctx: SyncContext, *, parent: SyncConfig, resource: ResourceConfig) -> int:
    """Request the child endpoint for every parent item; land the child items (``load``) or count them."""
    items = _children(ctx, parent, resource)
    if ctx.config.load is not None:
        ctx.load(items)
    else:
        for item in items:
            ctx.note_cursor([item])
    return int(ctx.checkpoint.handler_data.get(CHILD_ITEMS, 0))


def _children(ctx: SyncContext, parent: SyncConfig, resource: ResourceConfig) -> Iterator[Any]:
    data = ctx.checkpoint.handler_data
    at = data.setdefault(POSITION, {"page": 1, "index": 0})
    parents = SyncContext(ctx._run, ctx.context, config=parent)
    for page in parents.pages(counted=False):
        if page.number != at["page"]:
            at["page"], at["index"] = page.number, 0
        for index, item in enumerate(page.items):
            if index < at["index"]:
                continue
            at["index"] = index
            yield from _child_items(ctx, resource, item)
            at["index"] = index + 1


def _child_items(ctx: SyncContext, resource: ResourceConfig, item: Any) -> Iterator[Any]:
    """The child items of one parent ``item``; a 404 skips the item (or fails, as configured)."""
    path, query = child_request(resource, item)
    params = {**templates.render(ctx.config.params, ctx.run_values()), **ctx.incremental_params(), **query}
    data, checkpoint = ctx.checkpoint.handler_data, ctx.checkpoint
    key = f"{path}#0"
    ctx._calls.pop(path, None)  # one loop per parent item, keyed the same after a resume
    extra = {
        f"_{resource.parent}_{name.replace('.', '_')}": _value(item, name)
        for name in resource.include_from_parent
    }
    try:
        for page in ctx.pages(path, **params):
            rows = [{**row, **extra} if isinstance(row, dict) and extra else row for row in page.items]
            yield from rows
            data[CHILD_ITEMS] = data.get(CHILD_ITEMS, 0) + len(rows)
    except SyncAbort as abort:
        if abort.status != 404 or resource.on_missing_parent == "fail":
            raise
        ctx._run.log.warning(
            "%s.%s: %s answered 404; parent item skipped (on_missing_parent: skip): %s",
            ctx.source,
            resource.name,
            path,
            abort,
        )
    checkpoint.loops.pop(key, None)  # finished or skipped: the checkpoint keeps no loop per parent item


def child_request(resource: ResourceConfig, item: Any) -> tuple[str, dict[str, Any]]:
    """The child's path and query params for one parent ``item``; ``INVALID_RESPONSE`` when the item
    lacks a field the child needs."""
    path, query = resource.endpoint.path, {}
    for pv in resource.parent_values:
        value = _value(item, pv.field)
        if value is None or isinstance(value, dict | list | bool):
            raise SyncAbort(
                SyncErrorKind.INVALID_RESPONSE,
                f"{resource.name}: a {resource.parent} item has no usable {pv.field!r} "
                f"(got {value!r}) for {pv.placeholder or pv.param}",
            )
        if pv.placeholder is not None:
            path = path.replace(pv.placeholder, quote(str(value), safe="/@:"))
        else:
            query[str(pv.param)] = value
    return path, query


def _value(item: Any, name: str) -> Any:
    value = json_paths.lookup(item, name) if isinstance(item, dict) else None
    return None if value is json_paths.MISSING else value
