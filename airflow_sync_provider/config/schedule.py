"""When a source runs: the ``schedule`` (cron, preset or interval) and ``trigger_assets`` checks."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from airflow_sync_provider.config.checks import require
from airflow_sync_provider.exceptions import SyncConfigError

MAX_ASSET_NAME = 1500
_CRON_NAMES = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|MON|TUE|WED|THU|FRI|SAT|SUN"
_CRON_FIELD = re.compile(rf"^(?:[\d*/,\-?#]|L|W|{_CRON_NAMES})+$", re.IGNORECASE)
_CRON_PRESETS = {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"}


def check_schedule(value: Any) -> None:
    if value is None or (isinstance(value, timedelta) and value > timedelta(0)):
        return
    if isinstance(value, str):
        text = value.strip()
        parts = text.split()
        if text in _CRON_PRESETS or (5 <= len(parts) <= 6 and all(_CRON_FIELD.match(p) for p in parts)):
            return
    raise SyncConfigError("schedule", value, "must be a cron expression, a positive timedelta or None")


def check_trigger_assets(config: Any) -> None:
    """``trigger_assets``: a list of distinct, non-empty asset names (a bare string is a mistake)."""
    value = config.trigger_assets
    if not isinstance(value, list | tuple):
        raise SyncConfigError("trigger_assets", value, "must be a list of asset names")
    names = tuple(value)
    expected = f"entries must be non-empty names without surrounding spaces (at most {MAX_ASSET_NAME} chars)"
    for name in names:
        ok = isinstance(name, str) and name.strip() == name and 0 < len(name) <= MAX_ASSET_NAME
        require(ok, "trigger_assets", name, expected)
    require(len(set(names)) == len(names), "trigger_assets", list(names), "must not repeat a name")
    require(
        not names or config.schedule not in ("@once", "@continuous"),
        "trigger_assets",
        list(names),
        f"cannot be combined with schedule {config.schedule!r}",
    )
    object.__setattr__(config, "trigger_assets", names)
