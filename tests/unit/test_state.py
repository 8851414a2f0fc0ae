"""state: one contract run against every store, then recovery from corrupt or foreign content."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_sync_provider.exceptions import SyncStateError
from airflow_sync_provider.policy.breaker import BreakerSnapshot, BreakerState
from airflow_sync_provider.policy.quota import Quota
from airflow_sync_provider.policy.shares import ANONYMOUS, Share
from airflow_sync_provider.state.store import (
    SCHEMA_VERSION,
    InMemoryStateStore,
    SourceState,
    VariableStateStore,
    merge,
    variable_key,
)

KEY = "sync_state_airdrops"
_NOTSET = object()


class FakeVariableApi:
    """Mimics ``airflow.sdk.Variable``: ``get(key, default)`` and ``set(key, value, description=...)``."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.descriptions: dict[str, str | None] = {}
        self.calls: list[tuple[str, str]] = []

    def get(self, key: str, default: Any = _NOTSET, deserialize_json: bool = False) -> Any:
        self.calls.append(("get", key))
        assert deserialize_json is False
        if key not in self.values:
            if default is _NOTSET:
                raise KeyError(f"Variable {key} does not exist")
            return default
        return self.values[key]

    def set(self, key: str, value: Any, description: str | None = None, serialize_json: bool = False) -> None:
        self.calls.append(("set", key))
        if serialize_json or not isinstance(value, str):
            raise TypeError(f"Variable.set needs a string, got {type(value).__name__}")
        self.values[key] = value
        self.descriptions[key] = description


def full_state() -> SourceState:
    return SourceState(
        source="airdrops",
        breaker=BreakerSnapshot(
            state=BreakerState.HALF_OPEN,
            failure_count=6,
            opened_at=1_764_390_000.25,
            half_open_since=1_764_390_300.5,
            probes_in_flight=1,
            last_error="HTTP 503: Service Unavailable",
            last_failure_at=1_764_390_299.125,
            failed_probes=2,
        ),
        window=(1_764_389_000.123456, 1_764_389_500.5, 1_764_390_300.0),
        last_result={
            "source": "airdrops",
            "success": False,
            "items_processed": 0,
            "duration_ms": 1234,
            "error": "TIMEOUT",
            "error_message": "read timed out",
            "retry_count": 3,
            "started_at": "2025-11-29T04:20:00+00:00",
        },
        updated_at=1_764_390_301.75,
        quota=Quota(
            remaining=0, reset_at=1_764_390_320.0, limit=10, window=60.0, observed_at=1_764_390_300.0
        ),
    )


@pytest.fixture(params=["memory", "variables"])
def store(request):
    if request.param == "memory":
        return InMemoryStateStore()
    return VariableStateStore(variable_api=FakeVariableApi())


class TestStateStoreContract:
    def test_missing_key_gives_a_fresh_closed_state(self, store):
        warnings: list[str] = []
        state = store.load("airdrops", on_warning=warnings.append)
        assert state == SourceState("airdrops")
        assert state.breaker.state is BreakerState.CLOSED
        assert state.breaker.failure_count == 0
        assert state.window == ()
        assert state.last_result is None
        assert state.schema_version == SCHEMA_VERSION
        assert warnings == []

    def test_round_trip_preserves_every_field(self, store):
        state = full_state()
        store.save(state)
        loaded = store.load("airdrops")
        assert loaded == state
        assert loaded.breaker.state is BreakerState.HALF_OPEN
        assert loaded.window == (1_764_389_000.123456, 1_764_389_500.5, 1_764_390_300.0)
        assert loaded.last_result == state.last_result
        assert loaded.updated_at == 1_764_390_301.75
        assert loaded.quota == Quota(
            remaining=0, reset_at=1_764_390_320.0, limit=10, window=60.0, observed_at=1_764_390_300.0
        )

    @pytest.mark.parametrize("breaker_state", list(BreakerState))
    def test_round_trip_of_each_breaker_state(self, store, breaker_state):
        snap = BreakerSnapshot(
            state=breaker_state,
            failure_count=2,
            opened_at=10.0 if breaker_state is not BreakerState.CLOSED else None,
        )
        store.save(SourceState("points", breaker=snap))
        assert store.load("points").breaker == snap

    def test_sources_are_kept_apart(self, store):
        store.save(full_state())
        store.save(SourceState("quests", window=(1.0,)))
        assert store.load("quests") == SourceState("quests", window=(1.0,))
        assert store.load("airdrops") == full_state()
        assert store.load("points") == SourceState("points")

    def test_save_overwrites(self, store):
        store.save(full_state())
        store.save(SourceState("airdrops"))
        assert store.load("airdrops") == SourceState("airdrops")

    def test_counts_reads_and_writes(self, store):
        assert (store.reads, store.writes) == (0, 0)
        store.load("airdrops")
        store.save(full_state())
        store.save(full_state())
        store.load("airdrops")
        store.load("quests")
        assert (store.reads, store.writes) == (3, 2)


def test_variable_store_uses_the_documented_key_and_a_string_value():
    api = FakeVariableApi()
    store = VariableStateStore(variable_api=api)
    store.save(full_state())
    store.load("airdrops")
    assert api.calls == [("set", KEY), ("get", KEY)]
    body = json.loads(api.values[KEY])
    assert body["schema_version"] == 1
    assert body["source"] == "airdrops"
    assert body["breaker"]["state"] == "half-open"
    assert body["breaker"]["failure_count"] == 6
    assert "airdrops" in api.descriptions[KEY]


def test_in_memory_store_lists_sources():
    store = InMemoryStateStore({"other_var": "x"})
    store.save(SourceState("quests"))
    store.save(SourceState("airdrops"))
    assert store.sources() == ["airdrops", "quests"]
    assert variable_key("quests") == "sync_state_quests"


# --- from_json recovery -----------------------------------------------------------------------------


def good(**changes: Any) -> dict[str, Any]:
    body = json.loads(full_state().to_json())
    for path, value in changes.items():
        target = body
        *parents, leaf = path.split("__")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return body


def dumps(body: Any) -> str:
    return json.dumps(body)


RECOVERY = [
    ("not json", "{not json", "not valid JSON"),
    ("truncated json", dumps(good())[:-5], "not valid JSON"),
    ("json list", "[1, 2, 3]", "foreign content"),
    ("json string", '"hello"', "foreign content"),
    ("no schema_version", dumps({"source": "airdrops", "breaker": {}}), "foreign content"),
    ("schema_version string", dumps(good(schema_version="1")), "schema_version '1'"),
    ("schema_version 0", dumps(good(schema_version=0)), "schema_version 0"),
    ("schema_version null", dumps(good(schema_version=None)), "schema_version None"),
    ("schema_version true", dumps(good(schema_version=True)), "schema_version True"),
    ("source mismatch", dumps(good(source="quests")), "source is 'quests', expected 'airdrops'"),
    ("breaker state exploded", dumps(good(breaker__state="exploded")), "'exploded'"),
    ("breaker not an object", dumps(good(breaker=[1])), "breaker must be an object"),
    (
        "open without opened_at",
        dumps(good(breaker__state="open", breaker__opened_at=None)),
        "opened_at is missing for an open breaker",
    ),
    (
        "failure_count string",
        dumps(good(breaker__failure_count="3")),
        "breaker.failure_count must be an integer",
    ),
    (
        "failure_count float",
        dumps(good(breaker__failure_count=2.5)),
        "breaker.failure_count must be an integer",
    ),
    (
        "failed_probes float",
        dumps(good(breaker__failed_probes=1.5)),
        "breaker.failed_probes must be an integer",
    ),
    (
        "failure_count bool",
        dumps(good(breaker__failure_count=True)),
        "breaker.failure_count must be an integer",
    ),
    ("window not a list", dumps(good(window={"a": 1})), "window must be a list"),
    ("window string entry", dumps(good(window=[1.0, "2", 3.0])), "window[] must be a number, got '2'"),
    ("window NaN", dumps(good(window=[1.0, float("nan")])), "window[] must be a number, got nan"),
    ("window Infinity", dumps(good(window=[float("inf")])), "window[] must be a number, got inf"),
    ("opened_at NaN", dumps(good(breaker__opened_at=float("nan"))), "breaker.opened_at must be a number"),
    ("updated_at -Infinity", dumps(good(updated_at=float("-inf"))), "updated_at must be a number, got -inf"),
    ("opened_at string", dumps(good(breaker__opened_at="yesterday")), "breaker.opened_at must be a number"),
]


@pytest.mark.parametrize(("raw", "problem"), [r[1:] for r in RECOVERY], ids=[r[0] for r in RECOVERY])
def test_corrupt_content_is_reported_and_replaced_by_a_fresh_state(raw, problem):
    warnings: list[str] = []
    state = SourceState.from_json(raw, "airdrops", on_warning=warnings.append)
    assert state == SourceState("airdrops")
    assert len(warnings) == 1
    assert KEY in warnings[0]
    assert problem in warnings[0]


@pytest.mark.parametrize("store_kind", ["memory", "variables"])
def test_stores_recover_from_corrupt_content(store_kind):
    if store_kind == "memory":
        store: Any = InMemoryStateStore({KEY: "[]"})
    else:
        api = FakeVariableApi()
        api.values[KEY] = "{oops"
        store = VariableStateStore(variable_api=api)
    warnings: list[str] = []
    assert store.load("airdrops", on_warning=warnings.append) == SourceState("airdrops")
    assert len(warnings) == 1 and KEY in warnings[0]


def test_without_callback_warnings_go_to_the_log(caplog):
    with caplog.at_level("WARNING", logger="airflow_sync_provider.state.store"):
        assert SourceState.from_json("nope", "airdrops") == SourceState("airdrops")
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert KEY in caplog.records[0].getMessage()


@pytest.mark.parametrize("raw", [None, ""])
def test_absent_value_is_fresh_without_warning(raw):
    warnings: list[str] = []
    assert SourceState.from_json(raw, "airdrops", on_warning=warnings.append) == SourceState("airdrops")
    assert warnings == []


def test_negative_failure_count_is_clamped_with_a_warning():
    warnings: list[str] = []
    state = SourceState.from_json(
        dumps(good(breaker__failure_count=-4)), "airdrops", on_warning=warnings.append
    )
    assert state == full_state().replace(
        breaker=BreakerSnapshot(**{**vars(full_state().breaker), "failure_count": 0})
    )
    assert state.breaker.state is BreakerState.HALF_OPEN  # the rest is kept: not a fresh state
    assert state.window == full_state().window
    assert len(warnings) == 1
    assert KEY in warnings[0]
    assert "breaker.failure_count" in warnings[0]
    assert "-4" in warnings[0]


def test_negative_probes_in_flight_is_clamped_with_a_warning():
    warnings: list[str] = []
    state = SourceState.from_json(
        dumps(good(breaker__probes_in_flight=-1)), "airdrops", on_warning=warnings.append
    )
    assert state.breaker.probes_in_flight == 0
    assert state.breaker.failure_count == 6
    assert len(warnings) == 1 and KEY in warnings[0] and "probes_in_flight" in warnings[0]


def test_state_written_before_failed_probes_existed_parses_as_zero():
    """schema_version 1 without ``breaker.failed_probes`` (older providers): the open wait starts over."""
    body = good()
    del body["breaker"]["failed_probes"]
    state = SourceState.from_json(dumps(body), "airdrops", on_warning=pytest.fail)
    assert state.breaker.failed_probes == 0
    assert state.breaker == BreakerSnapshot(**{**vars(full_state().breaker), "failed_probes": 0})
    assert json.loads(state.to_json())["schema_version"] == 1


def test_negative_failed_probes_is_clamped_with_a_warning():
    warnings: list[str] = []
    state = SourceState.from_json(
        dumps(good(breaker__failed_probes=-3)), "airdrops", on_warning=warnings.append
    )
    assert state.breaker.failed_probes == 0
    assert state.breaker.failure_count == 6
    assert len(warnings) == 1 and KEY in warnings[0] and "failed_probes" in warnings[0]


def test_newer_schema_version_raises_instead_of_overwriting():
    warnings: list[str] = []
    with pytest.raises(SyncStateError) as info:
        SourceState.from_json(dumps(good(schema_version=2)), "airdrops", on_warning=warnings.append)
    message = str(info.value)
    assert KEY in message
    assert "schema_version 2" in message
    assert warnings == []


def test_a_huge_window_is_truncated_to_its_newest_entries():
    window = [1_000_000.0 + i for i in range(10_001)]
    warnings: list[str] = []
    state = SourceState.from_json(dumps(good(window=window)), "airdrops", on_warning=warnings.append)
    assert len(state.window) == 10_000
    assert state.window[0] == 1_000_001.0
    assert state.window[-1] == 1_010_000.0
    assert state.breaker == full_state().breaker


def test_an_unordered_window_keeps_its_newest_entries_by_time_not_by_position():
    """A foreign or hand-edited log need not be sorted: cutting by list position dropped live entries."""
    newest_first = [2_000_000.0 - i for i in range(10_001)]
    state = SourceState.from_json(dumps(good(window=newest_first)), "airdrops", on_warning=pytest.fail)
    assert len(state.window) == 10_000
    assert (state.window[0], state.window[-1]) == (1_990_001.0, 2_000_000.0)
    assert list(state.window) == sorted(state.window)


def test_writer_round_trips_and_is_optional():
    state = SourceState("points", updated_at=5.0, writer="sync_points/manual__1")
    assert SourceState.from_json(state.to_json(), "points", on_warning=pytest.fail) == state
    assert '"writer"' not in SourceState("points").to_json()  # older readers see the old shape
    body = json.loads(state.to_json())
    assert body["writer"] == "sync_points/manual__1" and body["schema_version"] == SCHEMA_VERSION


def test_merge_unites_windows_and_keeps_the_severe_breaker_and_our_result():
    opened = BreakerSnapshot(state=BreakerState.OPEN, failure_count=5, opened_at=10.0)
    old = Share(ANONYMOUS, 0, (1.0,))
    # they hold our share as we first wrote it (2.0, our pre-send stamp) and one request of their own
    theirs = SourceState(
        "points",
        breaker=opened,
        shares=(old, Share("me", 1, (2.0,)), Share("them", 1, (3.0,))),
        writer="other",
    )
    # we have since re-stamped 2.0 to our response time 2.5 and taken 4.0
    ours = SourceState(
        "points", shares=(old, Share("me", 3, (2.5, 4.0))), last_result={"success": True}, writer="me"
    )
    merged = merge(ours, theirs)
    assert merged.window == (1.0, 2.5, 3.0, 4.0)
    assert merged.breaker == opened
    assert (merged.last_result, merged.writer) == ({"success": True}, "me")
    learned = Quota(remaining=3, limit=10, observed_at=8.0)
    assert merge(ours, theirs.replace(quota=learned)).quota == learned  # the newer learned quota wins
    assert (
        merge(ours.replace(quota=learned), theirs.replace(quota=Quota(remaining=9, observed_at=1.0))).quota
        == learned
    )


def test_missing_optional_fields_take_defaults():
    body = {"schema_version": 1, "source": "airdrops"}
    warnings: list[str] = []
    assert SourceState.from_json(dumps(body), "airdrops", on_warning=warnings.append) == SourceState(
        "airdrops"
    )
    assert warnings == []


def test_non_dict_last_result_is_dropped():
    state = SourceState.from_json(dumps(good(last_result=[1, 2])), "airdrops", on_warning=pytest.fail)
    assert state.last_result is None
    assert state.breaker == full_state().breaker


def test_long_last_error_is_truncated():
    state = SourceState.from_json(
        dumps(good(breaker__last_error="e" * 2000)), "airdrops", on_warning=pytest.fail
    )
    assert state.breaker.last_error == "e" * 500


def test_to_json_is_canonical():
    state = SourceState("points", window=(1.1234567891,))
    raw = state.to_json()
    assert raw == (
        '{"breaker":{"failed_probes":0,"failure_count":0,"half_open_since":null,"last_error":null,'
        '"last_failure_at":null,"opened_at":null,"probes_in_flight":0,"state":"closed"},"last_result":null,'
        '"schema_version":1,'
        '"source":"points","updated_at":null,"window":[1.123457]}'
    )


@pytest.mark.parametrize(
    "quota", ["nope", {"remaining": -1}, {"remaining": 1.5}, {"limit": "10"}, {"reset_at": True}]
)
def test_malformed_quota_is_dropped_with_a_warning_and_the_rest_kept(quota):
    data = json.loads(full_state().to_json())
    data["quota"] = quota
    warnings: list[str] = []
    state = SourceState.from_json(json.dumps(data), "airdrops", on_warning=warnings.append)
    assert state.quota is None
    assert state.breaker == full_state().breaker
    assert any("quota is malformed" in w for w in warnings)


def test_a_state_without_quota_has_none_and_writes_no_key():
    assert "quota" not in json.loads(SourceState("airdrops").to_json())
