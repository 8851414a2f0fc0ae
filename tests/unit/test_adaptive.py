"""The effective limit under a hidden limit (``policy.adaptive``): a fake clock, no sleeps."""

from __future__ import annotations

import json

import pytest

from airflow_sync_provider.policy import adaptive
from airflow_sync_provider.policy.adaptive import Adaptive, Aimd, Bounds, Cubic, SreThrottle

T0 = 1_800_000_000.0
BOUNDS = Bounds(ceiling=100, floor=5, window=60.0)
ALL = [Aimd(BOUNDS), Cubic(BOUNDS), SreThrottle(BOUNDS)]
IDS = [a.name for a in ALL]


def refuse(alg: Adaptive, state: adaptive.State, now: float, in_window: int | None = None) -> adaptive.State:
    return alg.on_refused(state, now, sent_at=now, in_window=in_window)


def succeed(
    alg: Adaptive, state: adaptive.State, start: float, seconds: float, per_second: float
) -> adaptive.State:
    """Successes at ``per_second`` for ``seconds`` (each with the current limit in use)."""
    n = int(seconds * per_second)
    for i in range(n):
        now = start + (i + 1) / per_second
        state = alg.on_success(state, now, in_window=alg.limit(state, now))
    return state


def roundtrip(state: adaptive.State) -> adaptive.State:
    return json.loads(json.dumps(state, allow_nan=False))


@pytest.mark.parametrize("alg", ALL, ids=IDS)
def test_a_fresh_source_starts_at_the_configured_limit(alg: Adaptive) -> None:
    assert alg.limit(alg.start(T0), T0) == 100


@pytest.mark.parametrize("alg", ALL, ids=IDS)
def test_a_refusal_lowers_the_limit(alg: Adaptive) -> None:
    state = alg.start(T0)
    for i in range(10):
        state = alg.on_success(state, T0 + i, in_window=i)
    state = refuse(alg, state, T0 + 11)
    assert alg.limit(state, T0 + 11) < 100


@pytest.mark.parametrize("alg", ALL, ids=IDS)
def test_sustained_success_raises_it_again(alg: Adaptive) -> None:
    state = alg.start(T0)
    state = succeed(alg, state, T0, 30, 1.0)
    state = refuse(alg, state, T0 + 31, in_window=40)
    low = alg.limit(state, T0 + 31)
    state = succeed(alg, state, T0 + 31, 600, 2.0)
    assert alg.limit(state, T0 + 631) > low


@pytest.mark.parametrize("alg", ALL, ids=IDS)
def test_never_above_the_configured_limit_nor_below_the_floor(alg: Adaptive) -> None:
    state = succeed(alg, alg.start(T0), T0, 600, 5.0)
    assert alg.limit(state, T0 + 600) == 100
    now = T0 + 600
    for _ in range(200):
        now += 1.0
        state = refuse(alg, state, now, in_window=1)
        assert 5 <= alg.limit(state, now) <= 100
    assert alg.limit(state, now) == 5
    state = succeed(alg, state, now, 3600, 5.0)
    assert alg.limit(state, now + 3600) <= 100


@pytest.mark.parametrize("alg", ALL, ids=IDS)
def test_the_state_survives_json_and_restore(alg: Adaptive) -> None:
    state = succeed(alg, alg.start(T0), T0, 20, 1.0)
    state = refuse(alg, state, T0 + 21, in_window=30)
    state = succeed(alg, state, T0 + 21, 10, 1.0)
    stored = roundtrip(state)
    assert stored == state
    restored = alg.restore(stored, T0 + 31)
    assert restored == state
    assert alg.limit(restored, T0 + 40) == alg.limit(state, T0 + 40)
    assert len(json.dumps(state)) < 512  # small enough to live in the source's state Variable


@pytest.mark.parametrize("alg", ALL, ids=IDS)
@pytest.mark.parametrize(
    "raw",
    [None, "cubic", [], {}, {"algorithm": "other", "limit": 3}, {"algorithm": "x"}],
    ids=["none", "str", "list", "empty", "foreign", "unknown"],
)
def test_anything_else_stored_restores_to_a_fresh_state(alg: Adaptive, raw: object) -> None:
    assert alg.restore(raw, T0) == alg.start(T0)


@pytest.mark.parametrize(
    ("alg", "raw"),
    [
        (Aimd(BOUNDS), {"algorithm": "aimd", "limit": "many", "decreased_at": None}),
        (Aimd(BOUNDS), {"algorithm": "aimd", "limit": 50.0, "decreased_at": "yesterday"}),
        (Aimd(BOUNDS), {"algorithm": "aimd", "limit": float("inf"), "decreased_at": None}),
        (Cubic(BOUNDS), {"algorithm": "cubic", "limit": 50.0, "w_max": -1, "decreased_at": None}),
        (SreThrottle(BOUNDS), {"algorithm": "sre", "counts": [[T0, "x", 1]]}),
        (SreThrottle(BOUNDS), {"algorithm": "sre", "counts": [[T0, 1, 1]] * 13}),
    ],
    ids=["aimd-limit", "aimd-time", "aimd-inf", "cubic-wmax", "sre-bucket", "sre-too-many"],
)
def test_a_corrupt_state_restores_to_a_fresh_one(alg: Adaptive, raw: object) -> None:
    assert alg.restore(raw, T0) == alg.start(T0)


def test_a_stored_limit_outside_the_bounds_is_clamped_on_restore() -> None:
    alg = Aimd(BOUNDS)
    assert alg.limit(alg.restore({"algorithm": "aimd", "limit": 5000.0, "decreased_at": None}, T0), T0) == 100
    assert alg.limit(alg.restore({"algorithm": "aimd", "limit": 0.5, "decreased_at": None}, T0), T0) == 5


def test_aimd_halves_multiplicatively_and_adds_one_step_per_window_of_successes() -> None:
    alg = Aimd(BOUNDS, decrease=0.5, increase=10.0)
    state = refuse(alg, alg.start(T0), T0)
    assert alg.limit(state, T0) == 50
    for i in range(50):  # one window's worth at the lowered limit
        state = alg.on_success(state, T0 + 1 + i)
    assert 59 <= alg.limit(state, T0 + 60) <= 60


@pytest.mark.parametrize("alg", [Aimd(BOUNDS), Cubic(BOUNDS)], ids=["aimd", "cubic"])
def test_the_count_the_api_refused_at_caps_the_base_of_the_decrease(alg: Adaptive) -> None:
    state = refuse(alg, alg.start(T0), T0, in_window=40)
    assert alg.limit(state, T0) == 28  # 0.7 x 40, not 0.7 x 100


@pytest.mark.parametrize("alg", [Aimd(BOUNDS), Cubic(BOUNDS)], ids=["aimd", "cubic"])
def test_one_decrease_per_round_trip(alg: Adaptive) -> None:
    """A refusal of a request sent before the last decrease is old news: it lowers nothing."""
    state = alg.on_refused(alg.start(T0), T0 + 10, sent_at=T0 + 9.9)
    once = alg.limit(state, T0 + 10)
    late = alg.on_refused(state, T0 + 10.1, sent_at=T0 + 9.95)  # in flight when we decreased
    assert alg.limit(late, T0 + 10.1) == once
    fresh = alg.on_refused(state, T0 + 12, sent_at=T0 + 11)
    assert alg.limit(fresh, T0 + 12) < once


def test_cubic_returns_to_the_last_refused_limit_then_probes_beyond() -> None:
    alg = Cubic(Bounds(ceiling=600, floor=1, window=60.0), headroom=10.0)
    state = refuse(alg, alg.start(T0), T0, in_window=300)  # w_max 300/min = 5/s
    assert alg.limit(state, T0) == 210
    k = (5 * 0.3 / 0.4) ** (1 / 3)  # seconds to climb back to w_max, AWS constants
    at_k = alg.on_success(state, T0 + k, in_window=None)
    assert alg.limit(at_k, T0 + k) == 300
    later = alg.on_success(state, T0 + k + 3, in_window=None)
    assert alg.limit(later, T0 + k + 3) > 300


def test_cubic_grows_at_most_one_slot_above_what_is_in_use() -> None:
    alg = Cubic(BOUNDS)
    state = refuse(alg, alg.start(T0), T0, in_window=80)
    state = alg.on_success(state, T0 + 600, in_window=30)
    assert alg.limit(state, T0 + 600) == 32  # 30 in the window + this request + one more
    aws = Cubic(BOUNDS, headroom=2.0)
    state = refuse(aws, aws.start(T0), T0, in_window=80)
    state = aws.on_success(state, T0 + 600, in_window=30)
    assert aws.limit(state, T0 + 600) == 62  # the AWS SDKs: twice the measured use


def test_sre_sends_at_most_k_times_the_accepted_rate_and_forgets_after_its_history() -> None:
    alg = SreThrottle(BOUNDS, k=2.0, history=120.0)
    state = alg.start(T0)
    for i in range(60):  # two minutes: 60 requests, 30 accepted
        state = alg.on_success(state, T0 + 2 * i) if i % 2 else refuse(alg, state, T0 + 2 * i)
    assert len(state["counts"]) <= alg.buckets
    assert alg.limit(state, T0 + 119) == 30  # 2 x 30 accepts per 120 s = 30 per 60 s window
    assert alg.limit(state, T0 + 400) == 100  # all forgotten: no throttling


def test_two_clients_share_one_state() -> None:
    """Two workers of one source read and write the same stored dict: one's refusal binds the other."""
    alg = Cubic(BOUNDS)
    shared = roundtrip(alg.start(T0))
    a = alg.restore(shared, T0 + 1)
    shared = roundtrip(refuse(alg, a, T0 + 1, in_window=50))  # worker A is refused at 50
    b = alg.restore(shared, T0 + 1.01)
    assert alg.limit(b, T0 + 1.01) == 35  # worker B obeys it at once
    # B's refusal of a request it sent before A's decrease changes nothing more
    shared = roundtrip(alg.on_refused(b, T0 + 1.02, sent_at=T0 + 0.99, in_window=51))
    assert alg.limit(alg.restore(shared, T0 + 1.03), T0 + 1.03) == 35


def test_bounds_and_names_are_checked() -> None:
    with pytest.raises(ValueError, match="floor <= ceiling, got 50 and 10"):
        Bounds(ceiling=10, floor=50, window=60.0)
    with pytest.raises(ValueError, match="unknown adaptive algorithm 'pid'"):
        adaptive.make("pid", BOUNDS)
    assert isinstance(adaptive.make(adaptive.DEFAULT_ALGORITHM, BOUNDS), Cubic)


def test_no_airflow_import() -> None:
    import ast
    from pathlib import Path

    tree = ast.parse(Path(adaptive.__file__).read_text())
    modules = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m.startswith("airflow") or m in {"time", "random"} for m in modules)
