"""A resource's own bookmark and last result inside its source's state (``SourceState.resources``).

A source without resources (``resource=None``) keeps them at the top level, as always.
"""

from __future__ import annotations

from typing import Any

from airflow_sync_provider.state.store import SourceState


def bookmark(state: SourceState, resource: str | None) -> str | int | float | None:
    """The stored bookmark of ``resource`` (of the source itself when ``None``)."""
    if resource is None:
        return state.bookmark
    return state.resources.get(resource, {}).get("bookmark")


def with_bookmark(state: SourceState, resource: str | None, value: str | int | float | None) -> SourceState:
    """``state`` with ``resource``'s bookmark set to ``value``."""
    if resource is None:
        return state.replace(bookmark=value)
    return _with(state, resource, "bookmark", value)


def with_result(state: SourceState, resource: str | None, result: dict[str, Any]) -> SourceState:
    """``state`` with ``resource``'s last result (the source's own is set by ``SourceGuard.finish``)."""
    return state if resource is None else _with(state, resource, "last_result", result)


def _with(state: SourceState, resource: str, key: str, value: Any) -> SourceState:
    entry = {k: v for k, v in state.resources.get(resource, {}).items() if k != key}
    if value is not None:
        entry[key] = value
    return state.replace(resources={**state.resources, resource: entry})
