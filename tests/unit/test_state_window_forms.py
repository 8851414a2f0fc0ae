"""The bucketed window in the state Variable: round trip, the old list form, bad content."""

from __future__ import annotations

import json

import pytest

from airflow_sync_provider.policy import buckets as bk
from airflow_sync_provider.policy.buckets import Buckets
from airflow_sync_provider.policy.shares import ANONYMOUS, Share
from airflow_sync_provider.state.store import SourceState, merge

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
            Share(ANONYMOUS, 0, bk.from_times([T0], 10.0)),
            Share("3f9a0c1d", 4, bk.from_times([T0 + 1.25, T0 + 2.0], 10.0)),
            Share("b71e0000", 9, bk.from_times([T0 + 3], 10.0)),
        ),
    )
    body = json.loads(state.to_json())
    # every request in the old keys (an older provider, or a reader of the JSON, sees them all)
    assert "window" in body and body["window_buckets"]["counts"] and len(state.window) == 4
    assert body["window_shares"]["b71e0000"] == [9, 10.0, [[bk.index_of(T0 + 3, 10.0), 1]]]
    assert SourceState.from_json(state.to_json(), "points", on_warning=pytest.fail) == state
    logs = SourceState(
        "points", shares=(Share(ANONYMOUS, 0, (T0,)), Share("3f9a0c1d", 4, (T0 + 1.25, T0 + 2.0)))
    )
    assert json.loads(logs.to_json())["window_shares"] == {"3f9a0c1d": [4, [T0 + 1.25, T0 + 2.0]]}
    assert SourceState.from_json(logs.to_json(), "points", on_warning=pytest.fail) == logs


def test_a_log_written_by_an_older_provider_over_shares_is_its_anonymous_part():
    ours = SourceState("points", shares=(Share("a", 2, (T0, T0 + 1)),))
    body = json.loads(ours.to_json())
    assert body["window"] == [T0, T0 + 1]
    body["window"].append(T0 + 2)  # an older provider took a slot and kept our key, or a hand edit
    state = SourceState.from_json(json.dumps(body), "points", on_warning=pytest.fail)
    assert state.shares == (Share(ANONYMOUS, 0, (T0 + 2,)), Share("a", 2, (T0, T0 + 1)))
    del body["window_shares"]  # an older provider drops the key it does not know: all anonymous
    assert SourceState.from_json(json.dumps(body), "points").shares == (
        Share(ANONYMOUS, 0, (T0, T0 + 1, T0 + 2)),
    )


@pytest.mark.parametrize(
    "shares, problem",
    [
        ([], "window_shares must be an object"),
        ({"a": [-1, []]}, "window_shares['a'] seq must be an integer >= 0"),
        ({"a": {"seq": 1}}, "must be [seq, log] or [seq, width, counts]"),
        ({"a": [1, ["x"]]}, "window_shares['a'] log[] must be a number"),
        ({"a": [1, 0, []]}, "window_shares['a'] buckets.width must be > 0"),
        ({"a": [1, 5.0, [[3, 0]]]}, "window_shares['a'] buckets.counts must be [[index, count > 0]"),
        ({"x" * 65: [1, []]}, "a writer tag must be 1-64 characters"),
    ],
)
def test_malformed_shares_are_reported_by_field_and_replaced(shares, problem):
    warnings: list[str] = []
    raw = json.dumps({"schema_version": 1, "source": "points", "window_shares": shares})
    assert SourceState.from_json(raw, "points", on_warning=warnings.append) == SourceState("points")
    assert len(warnings) == 1 and problem in warnings[0]
