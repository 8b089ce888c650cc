"""The optimal planner against brute force, and the baselines."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import env
from env.actions import direction_table
from env.baselines import baseline_policies
from env.evaluation import evaluate_policy
from env.planner import plan_beam, plan_continuous, plan_discrete


def brute_force_moves(plant: env.Plant, controls: np.ndarray, temperature: float, limit: int):
    """Breadth-first search over the full product state graph, all 3**k moves per state."""
    offset = float(plant.offset_for(temperature, controls))
    if plant.in_band(temperature):
        return 0
    moves = direction_table(plant.n_controls) * plant.steps
    seen = {tuple(np.round(controls, 9))}
    queue = deque([(controls, 0)])
    while queue:
        u, depth = queue.popleft()
        if depth == limit:
            continue
        for delta in moves:
            nxt = plant.apply_delta(u, delta)
            key = tuple(np.round(nxt, 9))
            if key in seen:
                continue
            seen.add(key)
            if plant.in_band(plant.model.predict(nxt) + offset):
                return depth + 1
            queue.append((nxt, depth + 1))
    return None


def test_planner_minimum_matches_brute_force(small_spec: Path) -> None:
    plant = env.load_plant(small_spec, settings={"horizon": 8})
    rng = np.random.default_rng(0)
    checked = 0
    for index in rng.choice(plant.start_indices, size=40, replace=False):
        u, t = plant.data.controls[index], float(plant.data.state[index])
        plan = plan_discrete(plant, u, t)
        assert plan.exact
        assert plan.moves == brute_force_moves(plant, u, t, limit=8)
        checked += plan.moves is not None and plan.moves > 1
    assert checked >= 10  # the comparison covered non-trivial starts


def test_planner_brute_force_near_bounds(small_spec: Path) -> None:
    """Clipping creates extra lattice points; starts next to a bound exercise them."""
    plant = env.load_plant(small_spec, settings={"horizon": 8})
    for corner in ([0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]):
        u = plant.lower + (plant.upper - plant.lower) * np.array(corner)
        u = u + np.where(np.array(corner) == 0, 0.3, -0.3) * plant.steps  # inside, off-lattice
        for temperature in (480.0, 490.0, 510.0, 520.0):
            plan = plan_discrete(plant, u, temperature)
            assert plan.moves == brute_force_moves(plant, u, temperature, limit=8)


def test_start_inside_band_needs_zero_moves(sample_plant: env.Plant) -> None:
    index = sample_plant.start_indices[sample_plant.in_band(sample_plant.data.state)][0]
    plan = plan_discrete(
        sample_plant, sample_plant.data.controls[index], sample_plant.data.state[index]
    )
    assert plan.moves == 0 and plan.exact and len(plan.deltas) == 0


@pytest.mark.parametrize("mode", ["discrete", "discrete_flat"])
def test_executing_the_plan_in_the_env_reaches_band_in_planned_moves(
    mode: str, sample_plant: env.Plant
) -> None:
    environment = gym.make(env.ENV_ID, action_mode=mode).unwrapped
    outside = sample_plant.start_indices[~sample_plant.in_band(sample_plant.data.state)]
    for index in outside[:30]:
        u, t = sample_plant.data.controls[index], float(sample_plant.data.state[index])
        plan = plan_discrete(sample_plant, u, t)
        environment.reset(options={"row": int(sample_plant.data.row_numbers[index])})
        in_band = []
        for direction in plan.directions(sample_plant.steps):
            in_band.append(
                environment.step(environment.codec.from_directions(direction))[4]["in_band"]
            )
        assert in_band[-1] and not any(in_band[:-1])


def test_continuous_plan_is_verified_and_never_longer(sample_plant: env.Plant) -> None:
    environment = gym.make(env.ENV_ID, action_mode="continuous").unwrapped
    outside = sample_plant.start_indices[~sample_plant.in_band(sample_plant.data.state)]
    for index in outside[:15]:
        u, t = sample_plant.data.controls[index], float(sample_plant.data.state[index])
        plan = plan_continuous(sample_plant, u, t)
        assert plan.moves <= plan_discrete(sample_plant, u, t).moves
        environment.reset(options={"row": int(sample_plant.data.row_numbers[index])})
        for delta in plan.deltas:
            info = environment.step(environment.codec.from_delta(delta))[4]
        assert info["in_band"]


def test_beam_fallback_is_labelled_approximate(sample_plant: env.Plant) -> None:
    outside = sample_plant.start_indices[~sample_plant.in_band(sample_plant.data.state)]
    index = outside[0]
    u, t = sample_plant.data.controls[index], float(sample_plant.data.state[index])
    fallback = plan_discrete(sample_plant, u, t, max_points=10)
    assert not fallback.exact and "approximate" in fallback.method
    assert fallback.moves >= plan_discrete(sample_plant, u, t).moves
    assert plan_beam(sample_plant, u, t).moves == fallback.moves


def test_unreachable_within_horizon_reports_none(sample_plant: env.Plant) -> None:
    outside = sample_plant.start_indices[~sample_plant.in_band(sample_plant.data.state)]
    far = outside[
        np.argmax(np.abs(sample_plant.distance_to_band(sample_plant.data.state[outside])))
    ]
    plan = plan_discrete(
        sample_plant, sample_plant.data.controls[far], sample_plant.data.state[far], max_moves=1
    )
    assert plan.moves is None and not plan.reachable


@pytest.mark.parametrize("mode", env.ACTION_MODES)
def test_planner_beats_or_equals_every_baseline(mode: str, sample_plant: env.Plant) -> None:
    codec = sample_plant.codec(mode)
    rows = sample_plant.start_indices[::5]
    results = {
        p.name: evaluate_policy(sample_plant, codec, p, rows)
        for p in baseline_policies(sample_plant, codec)
    }
    planner_summary, planner = results.pop("planner")
    assert planner_summary.success_rate == 1.0  # every sample row can reach the band
    assert np.isfinite(planner.moves_to_band).all()
    for name, (summary, rollouts) in results.items():
        # row by row: wherever a baseline reaches the band, the planner needs no more moves
        reached = ~np.isnan(rollouts.moves_to_band)
        behind = planner.moves_to_band[reached] > rollouts.moves_to_band[reached]
        assert not behind.any(), (name, np.flatnonzero(reached)[behind])
        assert summary.mean_return <= planner_summary.mean_return + 1e-9, name
    assert results["greedy"][0].success_rate > results["random"][0].success_rate
    assert results["do-nothing"][0].success_rate == pytest.approx(
        sample_plant.in_band(sample_plant.data.state[rows]).mean()
    )
