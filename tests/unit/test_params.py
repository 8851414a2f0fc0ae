"""Run-time overrides: declared params, or the same keys in the run's conf; tighten-only."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_sync_provider.authoring.params import apply_params, run_overrides
from airflow_sync_provider.config import DEFAULT_SYNC_CONFIGS
from airflow_sync_provider.exceptions import SyncConfigError

AIRDROPS = DEFAULT_SYNC_CONFIGS["airdrops"]


def test_conf_keys_count_when_no_params_are_declared() -> None:
    context = {"params": {}, "dag_run": SimpleNamespace(conf={"max_requests": 5, "dry_run": True, "x": 1})}
    assert run_overrides(context) == {"max_requests": 5, "dry_run": True}


def test_declared_params_win_over_conf() -> None:
    context = {"params": {"max_requests": 7}, "dag_run": SimpleNamespace(conf={"max_requests": 5})}
    assert run_overrides(context) == {"max_requests": 7}


def test_overrides_tighten_and_mark_dry_run() -> None:
    config, dry_run = apply_params(
        AIRDROPS, {"max_requests": 5, "max_retries": 1, "max_pages": 2, "dry_run": True}
    )
    assert (config.rate_limit.max_requests, config.max_retries, config.max_pages, dry_run) == (5, 1, 2, True)
    assert config.rate_limit.window == AIRDROPS.rate_limit.window


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"max_requests": 61}, "params.max_requests must be an integer in [1, 60]"),
        ({"max_requests": 0}, "params.max_requests must be an integer in [1, 60]"),
        ({"max_retries": "2"}, "params.max_retries must be an integer in [0, 3]"),
        ({"max_pages": True}, "params.max_pages must be an integer in [1, 100]"),
        ({"dry_run": "yes"}, "params.dry_run must be true or false, got 'yes'"),
    ],
)
def test_loosening_or_malformed_overrides_are_refused_by_name(params: dict, expected: str) -> None:
    with pytest.raises(SyncConfigError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        apply_params(AIRDROPS, params)


def test_factory_can_leave_the_trigger_form_empty() -> None:
    from airflow_sync_provider.authoring.dag_factory import build_sync_dags

    with_form = build_sync_dags([AIRDROPS])["sync_airdrops"]
    without = build_sync_dags([AIRDROPS], trigger_params=False)["sync_airdrops"]
    assert set(with_form.params) == {"dry_run", "max_requests", "max_retries", "max_pages"}
    assert with_form.params.get_param("max_requests").schema["maximum"] == 60
    assert dict(without.params) == {}
