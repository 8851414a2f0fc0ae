"""``data_selector``: where a page's items are, pure.

``select`` reads the list at the selector's path: a missing path or ``null`` is an empty page (APIs
leave the key out when nothing matched), anything but a list is ``SelectionError`` naming the path.
``mismatch`` is asked on a loop's first page, so a selector that never matches is known at once, not
after a hundred empty pages: a missing path where the body holds a non-empty list elsewhere is an
error (the selector names the wrong place); a missing path in a body without any list is a warning.
"""

from __future__ import annotations

from typing import Any

from airflow_sync_provider.run import json_paths


class SelectionError(ValueError):
    """The selected value is not a list, or the selector misses the page's items."""


def select(body: Any, selector: str) -> list[Any]:
    """The items at ``selector`` in ``body``; ``[]`` when the path is missing or null."""
    value = json_paths.lookup(body, selector)
    if value is json_paths.MISSING or value is None:
        return []
    if not isinstance(value, list):
        raise SelectionError(f"data_selector {selector!r} selects {_kind(value)}, not a list")
    return value


def mismatch(body: Any, selector: str) -> str | None:
    """On a first page: ``None`` when ``selector`` is in ``body``, else a warning text; ``SelectionError``
    when the path is missing but the body has a non-empty list somewhere the selector does not name."""
    if json_paths.lookup(body, selector) is not json_paths.MISSING:
        return None
    found = _lists(body, "")
    if found:
        where = ", ".join(repr(path or "$") for path in found[:3])
        raise SelectionError(
            f"data_selector {selector!r} is not in the first page, which has items at {where}"
        )
    keys = sorted(body)[:8] if isinstance(body, dict) else []
    return f"data_selector {selector!r} is not in the first page (keys: {keys}); reading it as empty"


def _lists(value: Any, path: str, depth: int = 0) -> list[str]:
    """Paths of non-empty lists in ``value``, at most three levels down."""
    if isinstance(value, list):
        return [path] if value else []
    if not isinstance(value, dict) or depth > 2:
        return []
    found: list[str] = []
    for key, child in value.items():
        found += _lists(child, f"{path}.{key}" if path else str(key), depth + 1)
    return found


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return f"an object with keys {sorted(value)[:5]}"
    return f"a {type(value).__name__}"
