"""The recipes of docs/recipes.md as tests read them: each section's ``sources.yaml`` entry and its
connection, taken out of the document itself so the doc cannot drift from what is tested.

``recipe(heading_start)`` finds the ``## `` section whose heading starts with it and returns its
``SyncConfig`` (parsed as a sources file would be) and its connection (the JSON block). ``local``
points that connection at a local API: only the scheme, host, port, secrets and a ``token_url``'s
origin change.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.sources_file import configs_from_mapping

RECIPES = Path(__file__).resolve().parents[2] / "docs" / "recipes.md"
_BLOCK = re.compile(r"^```(yaml|json)\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Recipe:
    heading: str
    config: SyncConfig
    connection: dict[str, Any]
    yaml_text: str


def sections(text: str | None = None) -> dict[str, str]:
    """Each ``## `` heading of docs/recipes.md and the text below it."""
    text = RECIPES.read_text(encoding="utf-8") if text is None else text
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def recipe(heading_start: str) -> Recipe:
    """The section's one source and its connection."""
    heading, blocks = _blocks(heading_start)
    assert len(blocks["yaml"]) == 1 and len(blocks["json"]) == 1, heading
    (config,) = recipe_configs(heading_start).values()
    return Recipe(heading, config, json.loads(blocks["json"][0]), blocks["yaml"][0])


def recipe_configs(heading_start: str) -> dict[str, SyncConfig]:
    """Every source of the section's one ``sources.yaml`` block, by name."""
    heading, blocks = _blocks(heading_start)
    assert len(blocks["yaml"]) == 1, heading
    data = yaml.safe_load(blocks["yaml"][0])
    return configs_from_mapping({"include_defaults": False, **data}, RECIPES)


def _blocks(heading_start: str) -> tuple[str, dict[str, list[str]]]:
    found = [(h, body) for h, body in sections().items() if h.startswith(heading_start)]
    assert len(found) == 1, f"one recipe heading starting {heading_start!r}, found {[h for h, _ in found]}"
    heading, body = found[0]
    blocks: dict[str, list[str]] = {"yaml": [], "json": []}
    for kind, content in _BLOCK.findall(body):
        blocks[kind].append(content)
    return heading, blocks


def local(connection: dict[str, Any], url: str, **secrets: str) -> dict[str, Any]:
    """``connection`` pointed at ``url`` (http://host:port) with ``secrets`` (login, password)."""
    parts = urlsplit(url)
    out = {**connection, "host": parts.hostname, "port": parts.port, "schema": parts.scheme, **secrets}
    extra = dict(out.get("extra") or {})
    if "token_url" in extra:
        token = urlsplit(extra["token_url"])
        extra["token_url"] = f"{url}{token.path}"
    if extra:
        out["extra"] = extra
    return out


def connection_env(conn_id: str, connection: dict[str, Any]) -> dict[str, str]:
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(connection)}
