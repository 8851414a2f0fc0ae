"""The loader hands dlt lists (not one item per pipe step) and lands them in bounded load files."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.config.load import LoadConfig
from airflow_sync_provider.exceptions import SyncWaitRequired
from airflow_sync_provider.load import loader as loader_module
from airflow_sync_provider.load.loader import BATCH_ITEMS, Loader, _Feed


def _items(count: int, *, then_wait: bool = False) -> Iterator[dict[str, Any]]:
    for index in range(count):
        yield {"id": index, "updated_at": f"2026-01-01T00:00:{index % 60:02d}Z"}
    if then_wait:
        raise SyncWaitRequired(30.0, reason="window full")


def test_the_feed_hands_over_lists_of_at_most_a_batch_and_the_batch_in_hand_at_a_wait() -> None:
    feed = _Feed(_items(2 * BATCH_ITEMS + 7, then_wait=True), "updated_at")
    sizes = [len(batch) for batch in feed]
    assert sizes == [BATCH_ITEMS, BATCH_ITEMS, 7]
    assert feed.count == 2 * BATCH_ITEMS + 7
    assert isinstance(feed.stopped, SyncWaitRequired)
    assert feed.cursor_max == "2026-01-01T00:00:59Z"


def _loader(tmp_path: Path, disposition: str = "merge") -> Loader:
    load = LoadConfig(
        path=str(tmp_path / "out.duckdb"),
        dataset="raw",
        table="things",
        write_disposition=disposition,
        primary_key=("id",),
    )
    return Loader(SyncConfig(source="things", endpoint="/things", load=load), {}, logging.getLogger("t"))


@pytest.mark.parametrize("disposition", ["merge", "replace"])
def test_dlt_receives_lists_and_a_wait_commits_the_batch_in_hand(tmp_path: Path, disposition: str) -> None:
    loader = _loader(tmp_path, disposition)
    seen: list[Any] = []
    resource = loader._dlt.resource

    def spy(data: Any, **kwargs: Any) -> Any:
        if kwargs.get("name") != "things":  # dlt's own resources (pipeline state)
            return resource(data, **kwargs)

        def recorded() -> Iterator[Any]:
            for step in data:
                seen.append(step)
                yield step

        return resource(recorded(), **kwargs)

    loader._dlt.resource = spy
    try:
        with pytest.raises(SyncWaitRequired):
            loader.load(_items(BATCH_ITEMS + 5, then_wait=True))
    finally:
        loader._dlt.resource = resource
        loader.close()
    assert [len(step) for step in seen] == [BATCH_ITEMS, 5]
    key = "staged" if disposition == "replace" else "loaded"
    committed = loader.progress[key]["things"]["items"] if key == "staged" else loader.progress[key]
    assert committed == BATCH_ITEMS + 5


def test_a_load_is_split_into_bounded_files_loaded_two_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(loader_module.FILE_MAX_ITEMS_ENV, raising=False)
    loader = _loader(tmp_path)
    workers: list[int] = []
    load = type(loader.pipeline).load

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        workers.append(kwargs.get("workers", 20))
        info = load(self, *args, **kwargs)
        jobs = info.load_packages[0].jobs["completed_jobs"]
        files.extend(job for job in jobs if job.job_file_info.table_name == "things")
        return info

    files: list[Any] = []
    monkeypatch.setattr(type(loader.pipeline), "load", counted)
    try:
        rows = 2 * loader_module.FILE_MAX_ITEMS + 1
        assert loader.load(_items(rows)) == rows
    finally:
        loader.close()
    # two threads: bounded memory (not dlt's 20 files at once), not the calling thread (1.5x slower)
    assert workers == [loader_module.LOAD_WORKERS] == [2]
    assert len(files) >= 3  # 2 x FILE_MAX_ITEMS + 1 rows: three files at least, never one
