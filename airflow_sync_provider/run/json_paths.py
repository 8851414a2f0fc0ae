"""Dotted JSON paths (``data``, ``data.children``, ``meta.has_more``, ``$.results``), pure.

The subset of JSONPath that ``data_selector`` and the paginators' ``*_path`` fields use: names joined
by dots, an optional leading ``$.`` (dlt writes paths that way), a digit segment indexing a list
(``items.0.id``). No wildcards, filters or slices: a path names one place in the document.
"""

from __future__ import annotations

import copy
import re
from typing import Any

MISSING: Any = object()
"""What ``lookup`` returns when the path leads nowhere (distinct from a JSON ``null``)."""

_SEGMENT = re.compile(r"[A-Za-z0-9_\-]+")


def segments(path: str) -> list[str]:
    """The path's names (``$.data.children`` -> ``["data", "children"]``; ``$`` -> ``[]``)."""
    text = path[1:].lstrip(".") if path.startswith("$") else path
    return text.split(".") if text else []


def is_valid(path: Any) -> bool:
    """``path`` is a string of names (letters, digits, ``_``, ``-``) joined by dots, maybe after ``$.``."""
    if not isinstance(path, str) or not path or path != path.strip():
        return False
    if path == "$":
        return True
    if path.startswith("$") and not path.startswith("$."):
        return False
    return all(_SEGMENT.fullmatch(s) for s in segments(path))


def lookup(document: Any, path: str) -> Any:
    """The value at ``path`` in ``document``, or ``MISSING``."""
    value = document
    for name in segments(path):
        if isinstance(value, dict):
            if name not in value:
                return MISSING
            value = value[name]
        elif isinstance(value, list) and name.isdigit() and int(name) < len(value):
            value = value[int(name)]
        else:
            return MISSING
    return value


def with_value(document: Any, path: str, value: Any) -> dict[str, Any]:
    """A copy of the object ``document`` (``None``: ``{}``) with ``value`` at ``path`` (objects made)."""
    out: dict[str, Any] = copy.deepcopy(document) if isinstance(document, dict) else {}
    names = segments(path)
    where = out
    for name in names[:-1]:
        child = where.get(name)
        if not isinstance(child, dict):
            child = where[name] = {}
        where = child
    where[names[-1]] = value
    return out
