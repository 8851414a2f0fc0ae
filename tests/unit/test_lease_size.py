"""How many slots a lease reserves (``hooks.lease.lease_size``): pure, from the page rate and the room."""

from __future__ import annotations

from airflow_sync_provider.hooks.lease import LEASE_MAX, RECENT, PageRate, lease_size


def rate(*admitted: float, response: float = 0.0) -> PageRate:
    r = PageRate()
    for t in admitted:
        r.admitted(t)
        r.answered(t, t + response)
    return r


def test_the_first_request_of_a_sync_takes_one_slot() -> None:
    assert lease_size(rate(0.0), room=10_000, margin=1.0) == 1


def test_the_pages_due_within_the_margin_bound_a_lease() -> None:
    # one page per 0.1 s, answered in 0.05 s: slots for the pages whose responses are due within 1 s
    assert lease_size(rate(0.0, 0.1, response=0.05), room=10_000, margin=1.0) == 1 + 9


def test_a_quarter_of_the_room_left_at_most() -> None:
    assert lease_size(rate(0.0, 0.0), room=40, margin=1.0) == 10
    assert lease_size(rate(0.0, 0.0), room=7, margin=1.0) == 1  # nearly full or a small limit


def test_never_more_than_the_cap() -> None:
    assert lease_size(rate(0.0, 0.0), room=10_000, margin=1.0) == LEASE_MAX


def test_responses_slower_than_the_margin_take_one_slot_at_a_time() -> None:
    assert lease_size(rate(0.0, 2.0, response=1.5), room=10_000, margin=1.0) == 1


def test_one_pause_does_not_shrink_the_next_lease() -> None:
    """A batch load's pause between two pages: the rate is the shortest of the latest intervals."""
    steady = rate(*(0.1 * n for n in range(RECENT)))
    paused = rate(*(0.1 * n for n in range(RECENT)), 30.0)
    assert lease_size(paused, room=10_000, margin=1.0) == lease_size(steady, room=10_000, margin=1.0)
