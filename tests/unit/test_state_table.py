"""``states`` / ``show_states`` table: times as Airflow shows them, in UTC and saying so; plain words."""

from __future__ import annotations

from typing import Any

from airflow_sync_provider.state.table import format_states, format_utc

OPENED = 1_796_000_000.0  # 2026-11-30 00:53:20 UTC


def state(**changes: Any) -> dict[str, Any]:
    return {
        "source": "airdrops",
        "state": "open",
        "failure_count": 5,
        "failure_threshold": 5,
        "opened_at": OPENED,
        "next_probe_at": OPENED + 300,
        "window_requests": 3,
        "window_max_requests": 60,
        "last_result": {"success": True, "items_processed": 1},
        **changes,
    }


def test_times_are_utc_in_airflows_format_and_the_header_says_so() -> None:
    header, _, line = format_states([state()]).splitlines()
    assert "opened at (UTC)" in header and "next probe (UTC)" in header
    assert "2026-11-30 00:53:20  2026-11-30 00:58:20" in line


def test_one_item_is_one_item() -> None:
    assert format_states([state()]).endswith("ok, 1 item")
    assert format_states([state(last_result={"success": True, "items_processed": 2})]).endswith("ok, 2 items")


def test_a_time_in_a_sentence_names_its_zone() -> None:
    assert format_utc(OPENED) == "2026-11-30 00:53:20 UTC"
