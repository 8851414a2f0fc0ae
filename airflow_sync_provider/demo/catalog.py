"""Deterministic item catalog of the demo API: source names, item shapes, totals and pagination.

Every item is a pure function of ``(source, index)``, so pages are identical across runs and processes;
only ``changes`` (``DemoServer.touch``) move an item's ``updated_at`` forward. ``updated_since`` keeps
the items with ``updated_at >=`` it (incremental syncs). The ``bulk`` source is for throughput and memory
benchmarks: ``?total=N`` sets its size (default and cap ``BULK_MAX_TOTAL``), and its items are cheap
arithmetic of the index, generated per request, never stored.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

SOURCE_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
GENERIC_TOTAL = 30
BULK_SOURCE = "bulk"
BULK_MAX_TOTAL = 1_000_000

TOTALS: dict[str, int] = {
    "airdrops": 120,
    "airdrops_upcoming": 35,
    "quests": 80,
    "yield": 60,
    "points": 25,
    "sponsored": 12,
    "community": 18,
}
DEFAULT_SOURCES: tuple[str, ...] = tuple(TOTALS)

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_CHAINS = ("ethereum", "arbitrum", "optimism", "base", "polygon", "solana", "zksync", "linea", "scroll")
_PROJECTS = (
    "Nebula", "Orbit", "Lumen", "Quasar", "Tidal", "Helix", "Vertex", "Aurora",
    "Kestrel", "Mosaic", "Prism", "Zenith", "Cobalt", "Ember", "Solace", "Atlas",
)  # fmt: skip
_QUEST_ACTIONS = (
    "Bridge 0.05 ETH to {chain}",
    "Swap on {project} DEX",
    "Provide liquidity on {project}",
    "Mint the {project} launch NFT",
    "Follow {project} and join the Discord",
    "Stake on {project} for 7 days",
)
_PLATFORMS = ("Galxe", "Zealy", "Layer3", "QuestN", "Intract")
_PROTOCOLS = ("Aave", "Compound", "Curve", "Lido", "Pendle", "Morpho", "Yearn", "Convex", "Spark")
_ASSETS = ("USDC", "USDT", "DAI", "ETH", "wstETH", "WBTC", "sDAI", "rETH")
_PLACEMENTS = ("banner", "feed", "newsletter", "sidebar")
_MULTIPLIERS = (1.0, 1.25, 1.5, 2.0, 3.0)
_COMMUNITY_TOPICS = ("airdrop", "quest", "yield farm", "points program", "testnet")


class PageError(ValueError):
    """A pagination query parameter is invalid; ``field``/``value`` name it."""

    def __init__(self, field: str, value: str, reason: str) -> None:
        super().__init__(f"invalid {field} {value!r}: {reason}")
        self.field = field
        self.value = value


@dataclass(frozen=True)
class Page:
    """One page of a source: its items, the cursor of the next page (or None) and the source total."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    total: int
    limit: int

    def body(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor, "total": self.total}


def is_source_name(name: str) -> bool:
    return SOURCE_PATTERN.fullmatch(name) is not None


def total_for(source: str, size: int | None = None) -> int:
    """Items of ``source``; ``size`` (the ``total`` query) applies to ``bulk`` only."""
    if source == BULK_SOURCE:
        return size or BULK_MAX_TOTAL
    return TOTALS.get(source, GENERIC_TOTAL)


def now_ts() -> str:
    return _ts(datetime.now(UTC))


def _ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_item(source: str, index: int, changes: Mapping[int, str] | None = None) -> dict[str, Any]:
    """Return item number ``index`` (0-based) of ``source``; ids look like ``airdrops-0001``."""
    item = _make_item(source, index)
    if changes and index in changes:
        item["updated_at"] = changes[index]
    return item


def _make_item(source: str, index: int) -> dict[str, Any]:
    if source == BULK_SOURCE:
        return _bulk_item(index)
    rng = random.Random(f"{source}:{index}")
    item_id = f"{source}-{index + 1:04d}"
    project = rng.choice(_PROJECTS)
    chain = rng.choice(_CHAINS)
    hours = timedelta(hours=index * 7 + rng.randint(0, 6), minutes=rng.choice((0, 15, 30, 45)))
    item = _item_fields(source, index, rng, item_id, project, chain, hours)
    item.setdefault("updated_at", _ts(_EPOCH + hours))
    return item


def _item_fields(
    source: str, index: int, rng: random.Random, item_id: str, project: str, chain: str, hours: timedelta
) -> dict[str, Any]:
    if source == "airdrops":
        return {
            "id": item_id,
            "name": f"{project} Season {rng.randint(1, 4)}",
            "chain": chain,
            "token": project[:3].upper(),
            "ends_at": _ts(_EPOCH + timedelta(days=14) + hours),
            "reward_usd": round(rng.uniform(25, 2500), 2),
        }
    if source == "airdrops_upcoming":
        return {
            "id": item_id,
            "name": f"{project} {rng.choice(('Genesis', 'Testnet', 'Mainnet'))} Drop",
            "chain": chain,
            "starts_at": _ts(_EPOCH + timedelta(days=30) + hours),
        }
    if source == "quests":
        return {
            "id": item_id,
            "title": rng.choice(_QUEST_ACTIONS).format(chain=chain.title(), project=project),
            "platform": rng.choice(_PLATFORMS),
            "xp": rng.choice((50, 100, 150, 250, 500)),
            "deadline": _ts(_EPOCH + timedelta(days=7) + hours),
        }
    if source == "yield":
        return {
            "id": item_id,
            "protocol": rng.choice(_PROTOCOLS),
            "chain": chain,
            "asset": rng.choice(_ASSETS),
            "apy": round(rng.uniform(0.8, 18.0), 2),
            "tvl_usd": rng.randint(250_000, 900_000_000),
        }
    if source == "points":
        return {
            "id": item_id,
            "program": f"{project} Points",
            "points": rng.randint(100, 250_000),
            "multiplier": rng.choice(_MULTIPLIERS),
            "season": rng.randint(1, 3),
        }
    if source == "sponsored":
        return {
            "id": item_id,
            "sponsor": f"{project} Labs",
            "title": f"{project}: {rng.choice(('earn', 'stake', 'bridge', 'trade'))} on {chain.title()}",
            "placement": rng.choice(_PLACEMENTS),
            "expires_at": _ts(_EPOCH + timedelta(days=21) + hours),
        }
    if source == "community":
        slug = f"{project.lower()}-{rng.choice(_COMMUNITY_TOPICS).replace(' ', '-')}"
        return {
            "id": item_id,
            "title": f"New {rng.choice(_COMMUNITY_TOPICS)}: {project} on {chain.title()}",
            "submitted_by": f"user_{rng.randint(1000, 9999)}",
            "url": f"https://example.com/submissions/{slug}-{index + 1}",
            "submitted_at": _ts(_EPOCH + hours),
            "status": "pending",
        }
    return {
        "id": item_id,
        "name": f"{project} {source.replace('_', ' ')} #{index + 1}",
        "value": rng.randint(1, 10_000),
        "updated_at": _ts(_EPOCH + hours),
    }


def _bulk_item(index: int) -> dict[str, Any]:
    """Item ``index`` of ``bulk``: a few microseconds, no seeded generator (100,000 items per sync)."""
    return {
        "id": f"{BULK_SOURCE}-{index + 1:07d}",
        "name": f"{_PROJECTS[index % len(_PROJECTS)]} #{index + 1}",
        "chain": _CHAINS[index % len(_CHAINS)],
        "value": (index * 7919) % 10_000,
        "updated_at": _ts(_EPOCH + timedelta(minutes=index)),
    }


def parse_total(raw: str | None) -> int | None:
    """``total`` query value of ``bulk``: its size, 1..``BULK_MAX_TOTAL`` (None: the default)."""
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= BULK_MAX_TOTAL:
        raise PageError("total", raw, f"must be an integer from 1 to {BULK_MAX_TOTAL}")
    return int(raw)


def parse_limit(raw: str | None) -> int:
    """``limit`` query value: default 50, clamped to 200; not a positive integer -> PageError."""
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or int(raw) < 1:
        raise PageError("limit", raw, "must be a positive integer")
    return min(int(raw), MAX_LIMIT)


def parse_cursor(raw: str | None, total: int) -> int:
    """Cursors are opaque to clients; here they are the decimal offset of the page's first item."""
    if raw is None or raw == "":
        return 0
    if not raw.isdigit() or int(raw) > total:
        raise PageError("cursor", raw, "unknown cursor")
    return int(raw)


def parse_since(raw: str | None) -> datetime | None:
    """``updated_since``: an ISO-8601 timestamp (``2026-01-05T10:00:00Z``); naive means UTC."""
    if raw is None or raw == "":
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise PageError("updated_since", raw, "must be an ISO-8601 timestamp") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def get_page(
    source: str,
    cursor: str | None,
    limit: str | None,
    updated_since: str | None = None,
    changes: Mapping[int, str] | None = None,
    size_of_bulk: int | None = None,
) -> Page:
    since = parse_since(updated_since)
    size = parse_limit(limit)
    every = total_for(source, size_of_bulk)
    if since is None:
        indices: list[int] | range = range(every)
    else:
        indices = [
            i
            for i in range(every)
            if datetime.fromisoformat(make_item(source, i, changes)["updated_at"]) >= since
        ]
    total = len(indices)
    offset = parse_cursor(cursor, total)
    end = min(offset + size, total)
    items = [make_item(source, i, changes) for i in indices[offset:end]]
    return Page(items=items, next_cursor=str(end) if end < total else None, total=total, limit=size)


def render_page(
    source: str,
    cursor: str | None,
    limit: str | None,
    base_url: str,
    loop_cursor: str | None = None,
    updated_since: str | None = None,
    changes: Mapping[int, str] | None = None,
    total: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The JSON body of a page and its headers: an RFC 8288 ``Link: <...>; rel="next"`` if there is one.

    ``loop_cursor`` forces ``next_cursor`` (and the Link) to that cursor, whatever the page. ``total``
    (the query value) sizes the ``bulk`` source and is carried into the Link.
    """
    size_of_bulk = parse_total(total) if source == BULK_SOURCE else None
    page = get_page(source, cursor, limit, updated_since, changes, size_of_bulk)
    payload = page.body()
    if loop_cursor is not None:
        payload["next_cursor"] = loop_cursor
    headers: dict[str, str] = {}
    if payload["next_cursor"] is not None:
        since = f"&updated_since={quote(updated_since)}" if updated_since else ""
        since += f"&total={size_of_bulk}" if size_of_bulk else ""
        headers["Link"] = (
            f'<{base_url}/{source}?cursor={payload["next_cursor"]}&limit={page.limit}{since}>; rel="next"'
        )
    return json.dumps(payload).encode(), headers


def huge_body(source: str, size_bytes: int) -> bytes:
    """A valid ``{"items": [...], "next_cursor": null, "total": n}`` body of at least ``size_bytes``."""
    base = [make_item(source, i) for i in range(total_for(source))]
    parts: list[bytes] = []
    length = 0
    count = 0
    while length < size_bytes:
        item = dict(base[count % len(base)], id=f"{source}-{count + 1:08d}")
        chunk = json.dumps(item).encode()
        parts.append(chunk)
        length += len(chunk) + 2
        count += 1
    return b'{"items": [' + b", ".join(parts) + f'], "next_cursor": null, "total": {count}}}'.encode()
