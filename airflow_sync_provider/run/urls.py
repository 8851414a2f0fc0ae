"""URLs as a request sends them: one encoding of query params for every place that compares or
keeps a request's URL (redirect loops, page loops, configured paginators)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests


def wire_url(url: str, params: Mapping[str, Any] | None) -> str:
    """``url`` with ``params`` added to its query, encoded exactly as ``requests`` sends them (a
    redirect naming this request reads the same)."""
    if not params:
        return url
    return str(requests.Request("GET", url, params=dict(params)).prepare().url)
