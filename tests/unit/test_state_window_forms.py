"""The bucketed window in the state Variable: round trip, the old list form, bad content."""

from __future__ import annotations

import json

import pytest

from airflow_sync_provider.policy import buckets as bk
from airflow_sync_provider.policy.buckets import Buckets
from airflow_sync_provider.policy.shares import ANONYMOUS, Share
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


def test_state_merge_unites_bucketed_windows_per_writer():
    """Two writers' requests in one bucket both count (issue 17 item 10: before, they cancelled out)."""
    known = Share(ANONYMOUS, 0, bk.from_times([T0], 10.0))
    ours = SourceState("points", shares=(known, Share("a", 1, bk.from_times([T0 + 1], 10.0))))
    theirs = SourceState("points", shares=(known, Share("b", 1, bk.from_times([T0 + 2], 10.0))))
    assert len(merge(ours, theirs).window) == 3


def test_shares_round_trip_through_the_variable_json():
    state = SourceState(
        "points",
        shares=(
            Share(ANONYMOUS, 0, (T0,)),
            Share("3f9a0c1d", 4, (T0 + 1.25, T0 + 2.0)),
            Share("b71e0000", 9, bk.from_times([T0 + 3], 10.0)),
        ),
    )
    body = json.loads(state.to_json())
    assert body["window"] == [T0] and "window_buckets" not in body
    assert body["window_shares"]["3f9a0c1d"] == {"seq": 4, "log": [T0 + 1.25, T0 + 2.0]}
    assert SourceState.from_json(state.to_json(), "points", on_warning=pytest.fail) == state
    assert len(state.window) == 4


@pytest.mark.parametrize(
    "shares, problem",
    [
        ([], "window_shares must be an object"),
        ({"a": {"seq": -1, "log": []}}, "window_shares['a'].seq must be an integer >= 0"),
        ({"a": {"seq": 1}}, "must hold exactly one of log, buckets"),
        ({"a": {"seq": 1, "log": ["x"]}}, "window_shares['a'].log[] must be a number"),
        ({"a": {"seq": 1, "buckets": {"width": 0}}}, "window_shares['a'].buckets.width must be > 0"),
        ({"x" * 65: {"seq": 1, "log": []}}, "must be a non-empty tag"),
    ],
)
def test_malformed_shares_are_reported_by_field_and_replaced(shares, problem):
    warnings: list[str] = []
    raw = json.dumps({"schema_version": 1, "source": "points", "window_shares": shares})
    assert SourceState.from_json(raw, "points", on_warning=warnings.append) == SourceState("points")
    assert len(warnings) == 1 and problem in warnings[0]
