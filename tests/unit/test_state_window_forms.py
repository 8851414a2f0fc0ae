"""The bucketed window in the state Variable: round trip, the old list form, bad content."""

from __future__ import annotations

import json

import pytest

from airflow_sync_provider.policy import buckets as bk
from airflow_sync_provider.policy.buckets import Buckets
from airflow_sync_provider.state import SourceState, merge

T0 = 1_764_390_000.0


def test_buckets_round_trip_through_the_variable_json():
    window = bk.from_times([T0 + i * 0.37 for i in range(5000)], 36.01)
    state = SourceState("points", window=window, updated_at=T0, writer="sync_points/manual__1")
    raw = state.to_json()
    body = json.loads(raw)
    assert body["schema_version"] == 1 and body["window"] == []
    assert body["window_buckets"]["width"] == 36.01
    back = SourceState.from_json(raw, "points", on_warning=pytest.fail)
    assert back == state and isinstance(back.window, Buckets) and len(back.window) == 5000


def test_the_list_form_still_reads_and_writes_no_buckets_key():
    raw = json.dumps({"schema_version": 1, "source": "points", "window": [T0 + 1, T0]})
    state = SourceState.from_json(raw, "points", on_warning=pytest.fail)
    assert state.window == (T0, T0 + 1)
    assert "window_buckets" not in state.to_json()


def test_a_list_next_to_buckets_is_counted_in_them():
    body = {
        "schema_version": 1,
        "source": "points",
        "window": [T0 + 5],
        "window_buckets": {"width": 10.0, "counts": [[bk.index_of(T0, 10.0), 3]]},
    }
    state = SourceState.from_json(json.dumps(body), "points", on_warning=pytest.fail)
    assert isinstance(state.window, Buckets) and len(state.window) == 4


@pytest.mark.parametrize(
    ("buckets", "problem"),
    [
        ([1, 2], "window_buckets must be an object"),
        ({"width": 0, "counts": []}, "window_buckets.width must be > 0, got 0"),
        ({"width": "x", "counts": []}, "window_buckets.width must be a number, got 'x'"),
        ({"width": 1.0, "counts": [[1, 0]]}, "window_buckets.counts must be"),
        ({"width": 1.0, "counts": [[1.5, 2]]}, "window_buckets.counts must be"),
    ],
)
def test_malformed_buckets_are_reported_by_field_and_replaced(buckets, problem):
    warnings: list[str] = []
    raw = json.dumps({"schema_version": 1, "source": "points", "window_buckets": buckets})
    state = SourceState.from_json(raw, "points", on_warning=warnings.append)
    assert state == SourceState("points")
    assert len(warnings) == 1 and problem in warnings[0] and "sync_state_points" in warnings[0]


def test_state_merge_unites_bucketed_windows():
    known = bk.from_times([T0], 10.0)
    ours = SourceState("points", window=bk.add(known, T0 + 20))
    theirs = SourceState("points", window=bk.add(known, T0 + 30))
    assert len(merge(ours, theirs, known=known).window) == 3
