"""``bench/adaptive_sim.py``: deterministic, and the chosen algorithm meets the issue's goals there."""

from __future__ import annotations

from bench import adaptive_sim


def test_the_simulation_repeats_exactly() -> None:
    assert adaptive_sim.simulate(adaptive_sim.CHOSEN, 2) == adaptive_sim.simulate(adaptive_sim.CHOSEN, 2)


def test_the_chosen_algorithm_meets_both_goals_with_one_and_two_clients() -> None:
    for clients in (1, 2):
        r = adaptive_sim.simulate(adaptive_sim.CHOSEN, clients)
        assert r["ratio_429"] < 0.01 and r["utilization"] >= 0.85, (clients, r)


def test_the_fixed_config_does_not() -> None:
    fixed = adaptive_sim.simulate("fixed", 2)
    assert fixed["ratio_429"] > 0.01 and fixed["utilization"] < 0.85


def test_the_hidden_limit_moves_at_the_changes() -> None:
    s = adaptive_sim.HEADLINE
    assert [s.hidden_limit(t) for t in (0, 179.9, 180, 359.9, 360, 599)] == [300, 300, 120, 120, 240, 240]
