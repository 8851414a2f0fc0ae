"""The package's public surface: fixed names, cheap import, provider metadata."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import airflow_sync_provider
from airflow_sync_provider.provider_info import get_provider_info

CONTRACT = {
    "SyncConfig",
    "RateLimitConfig",
    "BackoffConfig",
    "CircuitBreakerConfig",
    "DEFAULT_SYNC_CONFIGS",
    "build_sync_dags",
    "SyncResult",
    "SyncErrorKind",
    "RateLimitedSyncOperator",
    "RateLimitedSyncHook",
}
HOMES = {
    "SyncConfig": "airflow_sync_provider.config",
    "RateLimitConfig": "airflow_sync_provider.config",
    "BackoffConfig": "airflow_sync_provider.config",
    "CircuitBreakerConfig": "airflow_sync_provider.config",
    "DEFAULT_SYNC_CONFIGS": "airflow_sync_provider.config",
    "build_sync_dags": "airflow_sync_provider.authoring.dag_factory",
    "SyncResult": "airflow_sync_provider.results",
    "SyncErrorKind": "airflow_sync_provider.results",
    "RateLimitedSyncOperator": "airflow_sync_provider.operators.sync",
    "RateLimitedSyncHook": "airflow_sync_provider.hooks.sync",
}


def run_python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON document."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


AIRFLOW_MODULES = (
    "import json, sys; "
    "print(json.dumps(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))))"
)


def test_all_is_exactly_the_contract_plus_version():
    assert set(airflow_sync_provider.__all__) == CONTRACT | {"__version__"}
    assert len(airflow_sync_provider.__all__) == len(CONTRACT) + 1
    assert airflow_sync_provider.__version__ == "0.1.0"


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_each_public_name_resolves_to_its_home(name):
    value = getattr(airflow_sync_provider, name)
    assert value is getattr(importlib.import_module(HOMES[name]), name)


def test_operator_and_hook_at_their_documented_paths():
    from airflow_sync_provider.hooks.sync import RateLimitedSyncHook
    from airflow_sync_provider.operators.sync import RateLimitedSyncOperator

    assert airflow_sync_provider.RateLimitedSyncOperator is RateLimitedSyncOperator
    assert airflow_sync_provider.RateLimitedSyncHook is RateLimitedSyncHook
    assert RateLimitedSyncOperator.__module__ == "airflow_sync_provider.operators.sync"
    assert RateLimitedSyncHook.__module__ == "airflow_sync_provider.hooks.sync"


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        airflow_sync_provider.Nope  # noqa: B018


def test_dir_lists_the_public_names():
    assert set(dir(airflow_sync_provider)) >= CONTRACT


def test_importing_the_package_does_not_import_airflow():
    code = f"import airflow_sync_provider, airflow_sync_provider.provider_info; {AIRFLOW_MODULES}"
    assert run_python(code) == []


def test_policy_package_imports_no_airflow_module():
    code = (
        "import airflow_sync_provider.policy, airflow_sync_provider.policy.backoff, "
        "airflow_sync_provider.policy.breaker, airflow_sync_provider.policy.rate_limit; " + AIRFLOW_MODULES
    )
    assert run_python(code) == []


def test_config_results_state_and_durations_import_no_airflow_module():
    code = (
        "import airflow_sync_provider.config, airflow_sync_provider.results, "
        "airflow_sync_provider.state.store, airflow_sync_provider.config.durations, "
        "airflow_sync_provider.exceptions; " + AIRFLOW_MODULES
    )
    assert run_python(code) == []


def test_provider_info():
    info = get_provider_info()
    assert info["package-name"] == "airflow-sync-provider"
    assert info["versions"] == [airflow_sync_provider.__version__]
    (connection,) = info["connection-types"]
    assert connection["hook-class-name"] == "airflow_sync_provider.hooks.sync.RateLimitedSyncHook"
    assert connection["connection-type"] == "sync_http"
    assert "api_key_header" in connection["conn-fields"]
    assert connection["conn-fields"]["api_key_header"]["schema"]["type"] == ["string", "null"]
    assert connection["conn-fields"]["api_key_param"]["schema"]["type"] == ["string", "null"]
    assert "ui-field-behaviour" in connection
    modules = {
        kind: [m for entry in info[kind] for m in entry["python-modules"]]
        for kind in ("operators", "hooks", "triggers")
    }
    assert modules == {
        "operators": ["airflow_sync_provider.operators.sync"],
        "hooks": ["airflow_sync_provider.hooks.sync"],
        "triggers": ["airflow_sync_provider.triggers.wait"],
    }


def test_provider_info_is_json_serialisable():
    assert json.loads(json.dumps(get_provider_info())) == get_provider_info()


def test_every_module_in_provider_info_imports_and_the_hook_class_matches():
    info = get_provider_info()
    for kind in ("operators", "hooks", "triggers"):
        for entry in info[kind]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for connection in info["connection-types"]:
        module, _, cls = connection["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), cls)
        assert hook.conn_type == connection["connection-type"]
        assert hook.hook_name == connection["hook-name"]
