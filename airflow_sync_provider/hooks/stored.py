"""What a sync last read from or wrote to the store, and the read-merge-write around every write.

``StoredCopy`` knows the version of the state this sync last saw (its ``writer`` and ``updated_at``)
and the state it last wrote. Every write re-reads first: a write by anyone else since our last read
or write is logged as a warning and merged (``state.merge``: the union of both windows per writer,
the more severe breaker) instead of being overwritten.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from airflow_sync_provider.policy import rate_limit
from airflow_sync_provider.policy import shares as sh
from airflow_sync_provider.policy.breaker import BreakerSettings
from airflow_sync_provider.state.store import SourceState, StateStore, merge, variable_key

VERSION_STEP = 1e-3
"""How far a write's ``updated_at`` moves past our previous write's when the clock has not moved."""
SKEW_TOLERANCE = 1.0
"""Stored times up to this many seconds ahead of the clock are ordinary skew between workers."""


def clamp_future_times(state: SourceState, now: float, warn: Callable[[str], None]) -> SourceState:
    """Stored times in the future (clock skew, hand-edited state) are clamped to ``now``, with a warning.

    Without this an ``opened_at`` a year ahead keeps the breaker open for a year. The clamped
    state is written by the sync's next save.
    """
    b = state.breaker
    fixes: list[str] = []
    changes: dict[str, Any] = {}
    for name in ("opened_at", "half_open_since", "last_failure_at"):
        value = getattr(b, name)
        if value is not None and value > now:
            changes[name] = now
            if value > now + SKEW_TOLERANCE:
                fixes.append(f"breaker.{name} {value - now:.0f}s in the future")
    _, ahead, furthest = rate_limit.clamp_future(state.window, now)
    if ahead and furthest > SKEW_TOLERANCE:
        fixes.append(f"{ahead} window entries up to {furthest:.0f}s in the future")
    updated_at = state.updated_at
    if updated_at is not None and updated_at > now:
        updated_at = now
    if not changes and not ahead and updated_at == state.updated_at:
        return state
    if fixes:
        warn(f"{variable_key(state.source)}: {'; '.join(fixes)}; set to now")
    breaker_now = dataclasses.replace(b, **changes) if changes else b
    shares = sh.each(state.shares, lambda w: rate_limit.clamp_future(w, now)[0]) if ahead else state.shares
    return state.replace(breaker=breaker_now, shares=shares, updated_at=updated_at)


class StoredCopy:
    """The source's state as this sync last read or wrote it (``None`` before the first read)."""

    def __init__(
        self,
        store: StateStore,
        source: str,
        *,
        writer: str,
        settings: BreakerSettings,
        log: logging.Logger | Any,
    ) -> None:
        self.store = store
        self.source = source
        self.writer = writer
        self.settings = settings
        self.log = log
        self.last: SourceState | None = None
        """The state as this sync last read (on load) or wrote it; a working copy that differs from it
        has changes not yet written."""
        self._version: tuple[str | None, float | None] | None = None  # writer, updated_at last seen
        self._stamp: float | None = None  # the updated_at of our latest write
        self._warned: set[str] = set()

    @property
    def read_yet(self) -> bool:
        return self._version is not None

    def load(self, now: float) -> SourceState:
        """The stored state (future times clamped); the version every later read compares with."""
        loaded = self.store.load(self.source, on_warning=self.warn_once)
        self._version = (loaded.writer, loaded.updated_at)
        self.last = clamp_future_times(loaded, now, self.log.warning)
        return self.last

    def merged_into(self, ours: SourceState, now: float) -> SourceState | None:
        """Re-read: ``None`` when nobody else wrote since our last read or write, else ``ours`` merged
        with what they wrote (logged as a warning: one writer per source is the rule)."""
        current = self.store.load(self.source, on_warning=self.warn_once)
        if (current.writer, current.updated_at) == self._version:
            return None
        self.log.warning(
            "%s was written by %s since this sync (%s) last read or wrote it: one writer per source is "
            "the rule (pool sync_%s); merging its window entries and breaker state into ours",
            variable_key(self.source),
            current.writer or "an unknown writer",
            self.writer,
            self.source,
        )
        self._version = (current.writer, current.updated_at)
        theirs = clamp_future_times(current, now, self.log.warning)
        return merge(ours, theirs, settings=self.settings)

    def write(self, state: SourceState, now: float) -> SourceState:
        """Save ``state`` as ours at ``now``; returns what was saved.

        Each of our writes gets its own version: ``updated_at`` moves past our previous write's by at
        least ``VERSION_STEP`` when the clock has not (two writes in one clock tick, a frozen test
        clock), so a reader that saw an earlier write of ours still tells a later one apart."""
        previous = self._stamp
        stamp = now if previous is None or now > previous else previous + VERSION_STEP
        self._stamp = stamp
        saved = state.replace(updated_at=stamp, writer=self.writer)
        self.store.save(saved)
        self.last = saved
        self._version = (self.writer, stamp)
        return saved

    def warn_once(self, message: str) -> None:
        """A problem with the stored state, logged once per sync (every write re-reads the state)."""
        if message not in self._warned:
            self._warned.add(message)
            self.log.warning(message)
