"""``policy.skew``: what a response's ``Date`` proves about this worker's clock (issue 17 item 13)."""

from __future__ import annotations

import pytest

from airflow_sync_provider.policy.skew import date_of, offset

T0 = 1_800_000_000.0  # a whole second


def test_date_of_reads_the_imf_fixdate_and_refuses_garbage():
    assert date_of("Fri, 15 Jan 2027 08:00:00 GMT") == 1_800_000_000.0
    for bad in (None, "", "yesterday", "Fri, 15 Jan 2027 08:00:00", "x" * 100):
        assert date_of(bad) is None


@pytest.mark.parametrize(
    "date, sent, received, expected",
    [
        (T0, T0 - 0.2, T0 + 0.3, 0.0),  # in sync
        (T0, T0 + 0.9, T0 + 0.95, 0.0),  # the API's clock read up to T0 + 0.999: still fits
        (T0, T0 - 5.2, T0 - 5.0, 5.0),  # we are 5 s behind
        (T0, T0 + 6.0, T0 + 6.1, -5.0),  # we are 5 s ahead
        (T0, T0 - 30.0, T0 + 30.0, 0.0),  # a slow response hides up to its own duration
    ],
)
def test_offset_is_only_what_the_date_proves(date, sent, received, expected):
    assert offset(date, sent, received) == pytest.approx(expected)
