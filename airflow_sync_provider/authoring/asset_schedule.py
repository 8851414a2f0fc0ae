"""A sync DAG's ``schedule`` from its config: time, asset events, or either.

- ``schedule`` only -> the schedule as given (cron string, timedelta or ``None``), as before;
- ``trigger_assets`` only (``schedule: null``) -> run on an event of any of those assets;
- both -> ``AssetOrTimeSchedule``: on the cron/interval *and* on every asset event.

Several asset names combine with OR (``AssetAny``): "the data behind any of them changed, sync".
Pure: builds Airflow objects, touches no DB, network or Variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.sdk import Asset, AssetAny, AssetOrTimeSchedule, CronTriggerTimetable, DeltaTriggerTimetable

from airflow_sync_provider.config import SyncConfig

TIMEZONE = "UTC"


def trigger_assets(config: SyncConfig, assets: Mapping[str, Asset] | None = None) -> list[Asset]:
    """The ``Asset`` objects of ``config.trigger_assets``; ``assets`` may supply ready ones (watchers)."""
    given = assets or {}
    return [given.get(name) or Asset(name) for name in config.trigger_assets]


def sync_schedule(config: SyncConfig, assets: Mapping[str, Asset] | None = None) -> Any:
    """The value for ``DAG(schedule=...)``."""
    objects = trigger_assets(config, assets)
    if not objects:
        return config.schedule
    condition = objects[0] if len(objects) == 1 else AssetAny(*objects)
    if config.schedule is None:
        return condition
    if isinstance(config.schedule, timedelta):
        timetable: Any = DeltaTriggerTimetable(config.schedule)
    else:
        timetable = CronTriggerTimetable(config.schedule, timezone=TIMEZONE)
    return AssetOrTimeSchedule(timetable=timetable, assets=condition)


def describe_triggers(config: SyncConfig) -> str:
    """A sentence for the DAG doc when asset events also start the sync ("" when none do)."""
    if not config.trigger_assets:
        return ""
    names = ", ".join(f"`{name}`" for name in config.trigger_assets)
    which = "asset" if len(config.trigger_assets) == 1 else "any of the assets"
    return f" Also runs on every event of {which} {names} (POST /api/v2/assets/events)."
