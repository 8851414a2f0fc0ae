"""results: SyncResult's dict form (the XCom value), its summary line, and SyncErrorKind."""

from __future__ import annotations

import dataclasses
import json

import pytest

from airflow_sync_provider.results import SyncErrorKind, SyncResult

OK = SyncResult(
    source="airdrops",
    success=True,
    items_processed=42,
    duration_ms=1234,
    error=None,
    error_message=None,
    retry_count=0,
    started_at="2025-11-29T04:20:00+00:00",
)
FAILED = SyncResult(
    source="airdrops",
    success=False,
    items_processed=0,
    duration_ms=30_512,
    error=SyncErrorKind.TIMEOUT,
    error_message="read timed out after 30s",
    retry_count=3,
    started_at="2025-11-29T05:00:00+00:00",
)


def test_to_dict_keys_are_exactly_the_contract():
    assert list(OK.to_dict()) == [
        "source",
        "success",
        "items_processed",
        "duration_ms",
        "error",
        "error_message",
        "retry_count",
        "started_at",
        "truncated",  # optional, added for max_pages (issue 10)
        "items_loaded",
        "destination",
        "bookmark",
    ]


def test_to_dict_values():
    assert FAILED.to_dict() == {
        "source": "airdrops",
        "success": False,
        "items_processed": 0,
        "duration_ms": 30_512,
        "error": "TIMEOUT",
        "error_message": "read timed out after 30s",
        "retry_count": 3,
        "started_at": "2025-11-29T05:00:00+00:00",
        "truncated": False,
        "items_loaded": 0,
        "destination": None,
        "bookmark": None,
    }
    assert OK.to_dict()["error"] is None


def test_error_is_serialised_as_the_plain_enum_value():
    error = FAILED.to_dict()["error"]
    assert type(error) is str
    assert error == "TIMEOUT"
    assert json.loads(json.dumps(FAILED.to_dict()))["error"] == "TIMEOUT"


@pytest.mark.parametrize("kind", [None, *SyncErrorKind])
def test_from_dict_round_trip(kind):
    result = SyncResult(
        source="yield",
        success=kind is None,
        items_processed=7,
        duration_ms=99,
        error=kind,
        error_message=None if kind is None else f"{kind} happened",
        retry_count=2,
        started_at="2025-01-01T00:00:00+00:00",
    )
    assert SyncResult.from_dict(result.to_dict()) == result
    assert SyncResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_truncated_round_trips_and_defaults_to_false_for_older_results():
    truncated = dataclasses.replace(OK, truncated=True)
    assert SyncResult.from_dict(json.loads(json.dumps(truncated.to_dict()))) == truncated
    older = {k: v for k, v in OK.to_dict().items() if k != "truncated"}  # stored before the field existed
    assert SyncResult.from_dict(older).truncated is False


def test_from_dict_defaults_and_coercion():
    data = {
        "source": "points",
        "success": 1,
        "items_processed": "5",
        "duration_ms": 12.0,
        "started_at": "2025-01-01T00:00:00+00:00",
    }
    result = SyncResult.from_dict(data)
    assert result == SyncResult("points", True, 5, 12, None, None, 0, "2025-01-01T00:00:00+00:00")


def test_from_dict_rejects_an_unknown_error_kind():
    with pytest.raises(ValueError, match="EXPLODED"):
        SyncResult.from_dict({**FAILED.to_dict(), "error": "EXPLODED"})


def test_summary_of_a_success():
    assert OK.summary() == "✓ airdrops: 42 items in 1234 ms"


def test_summary_of_a_truncated_success_says_so():
    truncated = dataclasses.replace(OK, truncated=True)
    assert truncated.summary() == "✓ airdrops: 42 items in 1234 ms (truncated at max_pages)"


def test_summary_of_a_failure():
    assert FAILED.summary() == "✗ airdrops: TIMEOUT: read timed out after 30s"  # the message says the retries


def test_summary_of_a_failure_without_kind():
    result = SyncResult("quests", False, 0, 5, None, "?", 0, "2025-01-01T00:00:00+00:00")
    assert result.summary() == "✗ quests: UNKNOWN: ?"


def test_summary_of_one_item_says_item():
    assert dataclasses.replace(OK, items_processed=1).summary() == "✓ airdrops: 1 item in 1234 ms"


def test_error_kind_has_exactly_the_eight_members_of_the_design():
    assert [(k.name, k.value) for k in SyncErrorKind] == [
        ("RATE_LIMITED", "RATE_LIMITED"),
        ("TIMEOUT", "TIMEOUT"),
        ("CIRCUIT_BREAKER_OPEN", "CIRCUIT_BREAKER_OPEN"),
        ("RATE_LIMIT_EXCEEDED", "RATE_LIMIT_EXCEEDED"),
        ("HTTP_ERROR", "HTTP_ERROR"),
        ("CONNECTION_ERROR", "CONNECTION_ERROR"),
        ("INVALID_RESPONSE", "INVALID_RESPONSE"),
        ("HANDLER_ERROR", "HANDLER_ERROR"),
    ]
    assert SyncErrorKind("TIMEOUT") is SyncErrorKind.TIMEOUT
    assert SyncErrorKind.TIMEOUT == "TIMEOUT"


def test_result_is_frozen():
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        OK.success = False  # type: ignore[misc]
