"""The two config fields of issue 10's items 2 and 7: ``max_redirects``, ``invalid_response_is_failure``."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_sync_provider.config import SyncConfig
from airflow_sync_provider.exceptions import SyncConfigError


def test_defaults_and_the_dict_form_round_trip() -> None:
    config = SyncConfig(source="points")
    assert (config.max_redirects, config.invalid_response_is_failure) == (5, True)
    changed = SyncConfig.from_dict(
        {"source": "points", "max_redirects": 0, "invalid_response_is_failure": False}
    )
    assert (changed.max_redirects, changed.invalid_response_is_failure) == (0, False)
    assert SyncConfig.from_dict(changed.to_dict()) == changed


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_redirects", -1, "max_redirects must be an integer >= 0, got -1"),
        ("max_redirects", 21, "max_redirects must be <= 20, got 21"),
        ("max_redirects", "5", "max_redirects must be an integer >= 0, got '5'"),
        ("max_redirects", True, "max_redirects must be an integer >= 0, got True"),
        (
            "invalid_response_is_failure",
            "yes",
            "invalid_response_is_failure must be true or false, got 'yes'",
        ),
        ("invalid_response_is_failure", 1, "invalid_response_is_failure must be true or false, got 1"),
    ],
)
def test_bad_values_are_named(field: str, value: Any, message: str) -> None:
    with pytest.raises(SyncConfigError) as raised:
        SyncConfig.from_dict({"source": "points", field: value})
    assert (raised.value.field, str(raised.value)) == (field, message)
