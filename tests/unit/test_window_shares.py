"""The window per writer (``policy.shares``): a merge is a true union, never one request fewer.

Issue 17 item 10: before, a merge added "theirs minus what we last read or wrote", per bucket or
per timestamp, so a request of another writer in the same bucket (or at the same instant) as one of
ours that it had overwritten cancelled out.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_sync_provider.policy import buckets as bk
from airflow_sync_provider.policy import rate_limit
from airflow_sync_provider.policy import shares as sh
from airflow_sync_provider.policy.buckets import Buckets
from airflow_sync_provider.policy.shares import ANONYMOUS, Share

T0 = 1_800_000_000.0
WINDOW = 60.0
PER_WINDOW = 10
WIDTH = WINDOW / PER_WINDOW


def test_two_writers_in_one_bucket_both_count():
    base = (Share(ANONYMOUS, 0, bk.from_times([T0], WIDTH)),)
    ours = sh.take(base, "a", T0 + 1, like=base[0].window)
    theirs = sh.take(base, "b", T0 + 1, like=base[0].window)  # the same bucket, written over ours
    merged = sh.merge(ours, theirs)
    assert isinstance(sh.total(merged), Buckets) and len(sh.total(merged)) == 3
    assert sh.merge(theirs, ours) == merged


def test_two_writers_at_one_instant_both_count():
    ours = sh.take((), "a", T0, like=())
    theirs = sh.take((), "b", T0, like=())
    assert sh.total(sh.merge(ours, theirs)) == (T0, T0)


def test_a_later_copy_of_a_writer_replaces_the_earlier_one_and_a_copy_counts_once():
    first = sh.take((), "a", T0, like=())
    later = sh.restamp(sh.take(first, "a", T0 + 5, like=()), "a", T0 + 5, T0 + 9)
    assert sh.total(sh.merge(first, later)) == (T0, T0 + 9)  # not the pre-send stamp T0 + 5 too
    assert sh.total(sh.merge(later, first)) == (T0, T0 + 9)
    pruned = sh.each(later, lambda w: rate_limit.prune(w, T0 + 30, 25.0))
    assert sh.total(sh.merge(pruned, later)) == (T0, T0 + 9)  # equal seq: the same requests, once


def test_an_emptied_share_keeps_its_seq_so_a_new_slot_beats_old_copies():
    old = sh.take(sh.take((), "a", T0, like=()), "a", T0 + 1, like=())
    emptied = sh.fit(old, T0 + 100, max_requests=5, window=WINDOW)
    assert sh.total(emptied) == () and sh.own(emptied, "a").seq == 2
    again = sh.take(emptied, "a", T0 + 100, like=())
    assert sh.total(sh.merge(again, old)) == (T0 + 100,)  # not the old copy (seq 2): it lacks T0 + 100


def test_the_anonymous_share_of_an_old_state_unites_per_entry():
    ours = (Share(ANONYMOUS, 0, (T0, T0 + 1)),)
    theirs = (Share(ANONYMOUS, 0, (T0 + 1, T0 + 2)),)  # an older provider added T0 + 2, pruned T0
    assert sh.total(sh.merge(ours, theirs)) == (T0, T0 + 1, T0 + 2)


def test_fit_puts_every_share_on_one_grid():
    shares = sh.take(sh.take((), "a", T0, like=()), "b", T0 + 7, like=())
    fitted = sh.fit(shares, T0 + 8, max_requests=500, window=WINDOW)
    assert all(isinstance(s.window, Buckets) and s.window.width == WINDOW / 100 for s in fitted)
    assert len(sh.total(fitted)) == 2


# --- property: any interleaving of blind copies never counts fewer requests than were made ---------------
#
# Writers start from one stored state; each step one writer takes a slot (some re-stamped to a response
# time), working on its own copy, and sometimes "saves": its copy either replaces the store blind (the
# race) or is merged with the store first (the guard's re-read). Whatever the order, merging every
# copy left at the end counts at every later instant at least the requests really live.

steps = st.lists(
    st.tuples(
        st.integers(0, 2),  # writer
        st.sampled_from([0.0, 0.0, 1.0, 4.0, 13.0]),  # time passes (0: same instant)
        st.sampled_from([0.0, 3.0, 9.0]),  # response delay (re-stamp)
        st.sampled_from(["keep", "blind", "merge", "read"]),
        st.sampled_from([3, 50]),  # that writer's limit decides the form (log_max 6)
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None, database=None)
@given(base=st.lists(st.sampled_from([0.0, 2.0, 5.0, 20.0]), max_size=8), bucketed=st.booleans(), ops=steps)
def test_a_merge_never_counts_fewer_requests_than_were_made(base, bucketed, ops):
    base_times = [T0 + b for b in base]
    stored: sh.Shares = (
        (Share(ANONYMOUS, 0, bk.from_times(base_times, WIDTH) if bucketed else tuple(sorted(base_times))),)
        if base_times
        else ()
    )
    copies: dict[int, sh.Shares] = {w: stored for w in range(3)}
    now, truth = T0 + 30.0, list(base_times)
    saved = rate_limit.LOG_MAX
    rate_limit.LOG_MAX = 6
    try:
        for writer, dt, delay, save, limit in ops:
            now += dt
            mine = sh.fit(copies[writer], now, max_requests=limit, window=WINDOW)
            mine = sh.take(mine, f"w{writer}", now, like=sh.total(mine))
            if delay:
                mine = sh.restamp(mine, f"w{writer}", now, now + delay)
                now += delay  # the response has arrived
            truth.append(now)
            if save == "blind":
                stored = mine
            elif save == "merge":
                stored = mine = sh.merge(mine, stored)
            elif save == "read":
                mine = sh.merge(mine, stored)
            copies[writer] = mine
    finally:
        rate_limit.LOG_MAX = saved
    merged = stored
    for copy in copies.values():
        merged = sh.merge(merged, copy)
    window = sh.total(merged)
    latest = max(truth, default=now)
    for k in range(0, 80, 2):
        t = latest + k
        assert len(rate_limit.prune(window, t, WINDOW)) >= sum(1 for r in truth if r > t - WINDOW), t
