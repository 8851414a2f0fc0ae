"""``StoredCopy``: a write by someone else since our last read is merged, even when the clock stands
still between writes (a frozen test clock, two writes in one clock tick)."""

from __future__ import annotations

import logging

from airflow_sync_provider.hooks.stored import StoredCopy
from airflow_sync_provider.policy.breaker import BreakerSettings
from airflow_sync_provider.state.store import InMemoryStateStore, SourceState

NOW = 1_800_000_000.0
LOG = logging.getLogger("test")


def copy(store: InMemoryStateStore, writer: str) -> StoredCopy:
    return StoredCopy(store, "shop", writer=writer, settings=BreakerSettings(2, 60.0, 1), log=LOG)


def test_a_second_write_in_the_same_instant_is_a_new_version_for_a_reader_of_the_first() -> None:
    store = InMemoryStateStore()
    pooled, stale = copy(store, "pooled"), copy(store, "stale")
    pooled.write(SourceState("shop", window=(NOW,)), NOW)
    stale.load(NOW)  # reads the pooled sync's first write
    pooled.write(SourceState("shop", window=(NOW, NOW)), NOW)  # same instant, one more request
    merged = stale.merged_into(stale.last or SourceState("shop"), NOW)
    assert merged is not None  # seen as a foreign write, so its second request is not overwritten


def test_our_own_writes_in_one_instant_are_not_foreign_to_us() -> None:
    store = InMemoryStateStore()
    pooled = copy(store, "pooled")
    first = pooled.write(SourceState("shop", window=(NOW,)), NOW)
    second = pooled.write(SourceState("shop", window=(NOW, NOW)), NOW)
    assert second.updated_at is not None and first.updated_at is not None
    assert second.updated_at > first.updated_at
    assert pooled.merged_into(second, NOW) is None
