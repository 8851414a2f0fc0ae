"""The same state machine with every window bucketed (``rate_limit.LOG_MAX`` = 0): the whole promise
(never over the limit at the API, nothing lost across crashes, foreign writes and limit changes)
holds for the bucketed form too, not only for the exact log the model's small limits would use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_sync_provider.policy import rate_limit
from tests.model.test_sync_promise import SyncPromise, _profile


@pytest.fixture(autouse=True)
def every_window_bucketed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(rate_limit, "LOG_MAX", 0)
    yield


class TestSyncPromiseBucketed(SyncPromise.TestCase):  # type: ignore[name-defined,misc]
    settings = _profile()
