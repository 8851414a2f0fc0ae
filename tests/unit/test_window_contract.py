"""policy.window: one contract, run against both forms of a window (exact log, buckets).

Whatever the form, a window never counts a request as gone before it has left the window, a full
window waits exactly until it has room, merges count every writer's requests once, and what is
stored reads back as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_sync_provider.policy import buckets as bk
from airflow_sync_provider.policy.log import Log
from airflow_sync_provider.policy.window import LESS, MOST, SUM, Window
from airflow_sync_provider.state.store import SourceState

T0 = 1_764_390_000.0
W = 60.0
WIDTH = 0.6  # a bucketed window of W has 100 buckets

Make = Callable[[Iterable[float]], Window]
FORMS: dict[str, Make] = {"log": Log.of, "buckets": lambda times: bk.from_times(times, WIDTH)}
LATE = {"log": 0.0, "buckets": WIDTH}
"""How much later than the exact time a form may free a request."""


@pytest.fixture(params=sorted(FORMS))
def form(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_an_empty_window_has_room_and_no_oldest(form: str) -> None:
    empty = FORMS[form](())
    assert (len(empty), empty.in_window(T0, W), empty.oldest()) == (0, 0, None)
    assert empty.room(T0, max_requests=1, window=W) == 0.0


def test_admitted_requests_count_until_they_leave_the_window(form: str) -> None:
    window = FORMS[form](())
    for i in range(5):
        window = window.admit(T0 + i)
    assert len(window) == 5 and window.in_window(T0 + 4, W) == 5
    assert window.in_window(T0 + W + 4 + LATE[form] + 1e-6, W) == 0
    assert window.admit(T0 + 5, count=3).in_window(T0 + 5, W) == 8


def test_a_full_window_waits_until_the_oldest_leaves_then_has_room(form: str) -> None:
    window = FORMS[form]([T0, T0 + 1, T0 + 2])
    wait = window.room(T0 + 3, max_requests=3, window=W)
    assert T0 + W - (T0 + 3) <= wait <= T0 + W + LATE[form] - (T0 + 3)
    assert window.room(T0 + 3 + wait, max_requests=3, window=W) == 0.0
    assert window.room(T0 + 3, max_requests=4, window=W) == 0.0


def test_a_window_over_a_lowered_limit_waits_until_it_is_under(form: str) -> None:
    window = FORMS[form]([T0, T0 + 10, T0 + 20])
    wait = window.room(T0 + 30, max_requests=2, window=W)  # the oldest two must leave
    assert T0 + 10 + W - (T0 + 30) <= wait <= T0 + 10 + W + LATE[form] - (T0 + 30)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 200, allow_nan=False), max_size=30), st.floats(0, 260))
def test_never_fewer_than_the_exact_count_in_the_window(offsets: list[float], later: float) -> None:
    for make in FORMS.values():
        times = [T0 + o for o in offsets]
        now = T0 + max(offsets, default=0.0) + later
        exact = sum(1 for t in times if t > now - W)
        assert make(times).in_window(now, W) >= exact
        assert make(times).prune(now, W).in_window(now, W) >= exact


def test_merge_sums_writers_takes_the_most_of_copies_and_subtracts(form: str) -> None:
    a, b = FORMS[form]([T0, T0 + 1]), FORMS[form]([T0 + 1, T0 + 30])
    assert len(a.merge(b, SUM)) == 4
    assert len(a.merge(a, MOST)) == 2 and len(a.merge(a.prune(T0 + 30, W), MOST)) == 2
    assert len(a.merge(a, LESS)) == 0 and len(a.admit(T0 + 2).merge(a, LESS)) == 1


@pytest.mark.parametrize("other", sorted(FORMS))
def test_merge_across_forms_keeps_every_request_and_the_bucketed_grid(form: str, other: str) -> None:
    a, b = FORMS[form]([T0, T0 + 5]), FORMS[other]([T0 + 7])
    merged = a.merge(b)
    assert len(merged) == 3
    assert merged.grid == (WIDTH if "buckets" in (form, other) else None)
    assert merged.in_window(T0 + 7, W) == 3


def test_restamp_holds_one_request_from_its_response(form: str) -> None:
    window = FORMS[form]([T0, T0 + 1])
    moved = window.restamp(T0, T0 + 20)
    assert len(moved) == 2 and moved.in_window(T0 + W + 10, W) == 1
    assert window.restamp(T0 + 40, T0 + 50) == window  # no such request: nothing moves


def test_future_requests_are_clamped_to_now(form: str) -> None:
    window = FORMS[form]([T0, T0 + 100])
    clamped, moved, furthest = window.clamp_future(T0 + 1)
    assert (len(clamped), moved) == (2, 1) and 99 - WIDTH <= furthest <= 99
    assert clamped.in_window(T0 + 1 + W + LATE[form] + 1e-6, W) == 0
    assert window.clamp_future(T0 + 200) == (window, 0, 0.0)


def test_form_changes_never_move_a_request_earlier(form: str) -> None:
    window = FORMS[form]([T0 + 0.25, T0 + 3.5])
    for changed in (window.as_buckets(WIDTH), window.as_log(T0 + 10), window.like(Log(), T0 + 10)):
        assert len(changed) == 2
        assert changed.oldest() is not None and changed.oldest() >= T0 + 0.25  # type: ignore[operator]
    assert window.like(bk.Buckets(WIDTH), T0).grid == WIDTH and window.like(Log(), T0).grid is None


def test_serialised_window_reads_back_equal(form: str) -> None:
    window = FORMS[form]([T0 + 0.5, T0 + 2.25, T0 + 2.25])
    raw = SourceState("quests", window=window).to_json()
    body = json.loads(raw)
    assert set(window.serialise()) <= set(body) and body["window"] == window.serialise()["window"]
    assert SourceState.from_json(raw, "quests").window == window
    assert json.loads(json.dumps(window.share_json(3)))[0] == 3
