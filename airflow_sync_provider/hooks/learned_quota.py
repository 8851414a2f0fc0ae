"""What the API said about its quota (``policy.quota``), as one sync reads, spends and obeys it."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.policy import quota, rate_limit
from airflow_sync_provider.state.store import SourceState


class LearnedQuota:
    """The source's learned quota for one sync (a config that does not learn neither reads nor obeys it,
    but counts its requests against what others learned)."""

    def __init__(self, config: SyncConfig, hold_seconds: float, log: logging.Logger | Any) -> None:
        self.config = config
        self.log = log
        self.learns = config.rate_limit.learn_from_headers
        self.cap = config.rate_limit.learned_wait_cap / timedelta(seconds=1)
        """How long a learned quota is trusted at most after it was learned (``max_learned_wait``)."""
        self.hold_seconds = hold_seconds
        self.max_wait = config.max_wait / timedelta(seconds=1)
        self.long_wait: quota.Quota | None = None
        """A ``remaining 0`` this sync learned whose reset is beyond ``max_wait`` (alerted once)."""
        self._warned_limit: int | None = None  # an advertised limit below ours is logged once

    def advertised_limit(self, learned: quota.Quota | None, now: float) -> int:
        """``rate_limit.max_requests``, lowered to a limit the API advertised for our window while its
        report holds (logged once per sync); never raised."""
        ours = self.config.rate_limit.max_requests
        length = self.config.rate_limit.window / timedelta(seconds=1)
        obeyed = quota.effective_limit(ours, length, learned, now, self.cap)
        if obeyed < ours and self._warned_limit != obeyed:
            self._warned_limit = obeyed
            self.log.warning(
                "%s: the API advertises a lower limit than the config: obeying %d requests per %.0fs "
                "instead of rate_limit.max_requests=%d",
                self.config.source,
                obeyed,
                length,
                ours,
            )
        return obeyed

    def current(self, state: SourceState, now: float) -> quota.Quota | None:
        """What the API said, while it still holds and at most ``cap`` after it was learned (``None``
        when this config does not learn)."""
        if not self.learns:
            return None
        return quota.current(state.quota, now, self.cap)

    def spent(self, state: SourceState, now: float, requests: int) -> quota.Quota | None:
        """The stored quota after ``requests`` more: ``remaining`` counts down while the report holds."""
        left = self.current(state, now) if self.learns else state.quota
        for _ in range(requests):
            left = quota.consume(left, now)
        return left if self.learns else left or state.quota

    def learned(self, state: SourceState, reported: quota.Quota, now: float) -> quota.Quota | None:
        """What to keep after a response said ``reported``. ``remaining 0`` without a usable reset holds
        until our window frees its oldest slot; a reset beyond ``max_wait`` is remembered for the
        sync's alert."""
        live = rate_limit.prune(state.window, now, self.hold_seconds)
        oldest = rate_limit.oldest(live)
        free_at = (oldest if oldest is not None else now) + self.hold_seconds
        reported = quota.with_reset(reported, free_at)
        if reported.remaining == 0 and (reported.reset_at or now) - now > self.max_wait:
            self.long_wait = reported
        return quota.merge(state.quota, reported, now, self.cap)

    def capped(self, learned: quota.Quota | None, now: float) -> str:
        """How a learned reset beyond the cap reads in a refusal (empty when the cap did not cut it)."""
        if learned is None or learned.reset_at is None or learned.observed_at is None:
            return ""
        if learned.reset_at <= learned.observed_at + self.cap:
            return ""
        return (
            f" (the API said {learned.reset_at - now:.0f}s; a learned reset is trusted at most "
            f"rate_limit.max_learned_wait={self.cap:g}s, then one request goes out)"
        )
