"""``SyncWaitTrigger``: wait in the triggerer (not a worker slot) and hand the sync's checkpoint back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class SyncWaitTrigger(BaseTrigger):
    """Fire at ``resume_at`` (epoch seconds) with ``{"status": "resume", "checkpoint": ...}``.

    The checkpoint travels in the event rather than in ``defer(kwargs=...)``, so a resume works
    under ``airflow dags test`` too (which drops those kwargs).
    """

    def __init__(self, resume_at: float, checkpoint: dict[str, Any], reason: str = "") -> None:
        super().__init__()
        self.resume_at = float(resume_at)
        self.checkpoint = checkpoint
        self.reason = reason

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"resume_at": self.resume_at, "checkpoint": self.checkpoint, "reason": self.reason},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        delay = self.resume_at - time.time()
        if delay > 0:
            self.log.info("Sync waits %.1fs in the triggerer (%s)", delay, self.reason)
            await asyncio.sleep(delay)
        yield TriggerEvent({"status": "resume", "checkpoint": self.checkpoint})
