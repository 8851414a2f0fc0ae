"""The run note a sync run gets from its result (``run_notes.note_for``); the listener itself runs in
the real scheduler in tests/e2e/test_scheduler_e2e.py."""

from __future__ import annotations

from typing import Any

from airflow_sync_provider.plugins.run_notes import note_for


def _result(**overrides: Any) -> dict[str, Any]:
    base = {
        "source": "airdrops",
        "success": True,
        "items_processed": 120,
        "duration_ms": 84,
        "error": None,
        "error_message": None,
        "retry_count": 0,
        "started_at": "2026-11-29T20:00:00+00:00",
    }
    return {**base, **overrides}


def test_a_complete_sync_gets_no_note() -> None:
    assert note_for(_result(), "success") is None
    assert note_for(_result(truncated=False), "success") is None


def test_skipped_by_an_open_breaker_says_nothing_synced() -> None:
    result = _result(success=False, items_processed=0, error="CIRCUIT_BREAKER_OPEN", error_message="open")
    note = note_for(result, "skipped")
    assert note is not None
    assert note.startswith("Nothing synced from airdrops: its circuit breaker is open, no request was sent.")
    assert note.endswith("CIRCUIT_BREAKER_OPEN: open")


def test_skipped_by_a_full_window_says_so() -> None:
    result = _result(success=False, items_processed=0, error="RATE_LIMIT_EXCEEDED", error_message="full")
    assert "rate-limit window is full" in (note_for(result, "skipped") or "")


def test_truncated_sync_is_partial() -> None:
    note = note_for(_result(truncated=True, items_processed=50), "success")
    assert note is not None and note.startswith("Partial sync of airdrops: stopped at max_pages after 50")


def test_failed_sync_names_the_error() -> None:
    result = _result(success=False, error="TIMEOUT", error_message="read timed out; gave up after 3 retries")
    assert note_for(result, "failed") == (
        "Sync of airdrops failed: TIMEOUT: read timed out; gave up after 3 retries"
    )


def test_failed_without_a_result_points_at_the_log() -> None:
    assert "see the sync task's log" in (note_for(None, "failed") or "")
    assert note_for(None, "success") is None


def test_dry_run_is_labelled() -> None:
    result = _result(success=False, items_processed=0, error="CIRCUIT_BREAKER_OPEN", error_message="open")
    assert (note_for(result, "skipped", dry_run=True) or "").startswith("Dry run: Nothing synced")


def test_a_run_refused_by_a_learned_quota_says_so_with_its_reset_and_cap() -> None:
    message = (
        "the API's quota is spent (remaining 0); it resets in 3600.0s (the API said 31536000s; a learned "
        "reset is trusted at most rate_limit.max_learned_wait=3600s, then one request goes out), beyond "
        "max_wait=300s"
    )
    result = _result(success=False, items_processed=0, error="RATE_LIMIT_EXCEEDED", error_message=message)
    note = note_for(result, "skipped") or ""
    assert "the API said its quota is spent (learned from its headers" in note
    assert "rate-limit window is full" not in note
    assert "max_learned_wait=3600s" in note
