"""The optimal planner against brute force, and the baselines."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import env
from env.actions import direction_table
from env.baselines import baseline_policies
from env.evaluation import evaluate_policy
from env.lagged_planner import settle_lower_bound, simulate_lagged
from env.lattice import axis_lattices
from env.planner import APPROXIMATE, plan_beam, plan_continuous, plan_discrete, plan_rows
from tests.conftest import SAMPLE_SPEC
from tests.datasets import write_dataset, write_synthetic


def brute_force_moves(
    plant: env.Plant, controls: np.ndarray, temperature: float, limit: int
) -> int | None:
    """Breadth-first search over the full state graph, all 3**k moves from every state.

    Knows nothing of lattices, bounds or relaxations: a level's new settings are every
    setting one move away (clipped) not seen before, and the first level with a
    reading in the band is the answer.
    """
    offset = float(plant.offset_for(temperature, controls))
    if plant.in_band(temperature):
        return 0
    moves = direction_table(plant.n_controls) * plant.steps
    seen = {tuple(np.round(controls, 9))}
    frontier = controls[None].copy()
    for depth in range(1, limit + 1):
        candidates = plant.apply_delta(frontier[:, None, :], moves).reshape(-1, plant.n_controls)
        fresh = []
        for point in np.unique(np.round(candidates, 9), axis=0):
            key = tuple(point)
            if key not in seen:
                seen.add(key)
                fresh.append(point)
        if not fresh:
            return None
        frontier = np.array(fresh)
        if plant.in_band(plant.model.predict(frontier) + offset).any():
            return depth
    return None


def synthetic_plant(folder: Path, k: int, family: str, seed: int, horizon: int = 12) -> env.Plant:
    spec = write_synthetic(
        folder, k, mean_depth=0.5 * horizon, rows=120, horizon=horizon, seed=seed,
        candidates=(family,),
    )  # fmt: skip
    return env.load_plant(spec)


@pytest.mark.parametrize(
    ("k", "family", "seed"), [(2, "cubic", 0), (2, "rbf", 1), (3, "quadratic", 2), (3, "rbf", 3)]
)
def test_minimum_matches_brute_force_on_generated_plants(
    k: int, family: str, seed: int, tmp_path: Path
) -> None:
    plant = synthetic_plant(tmp_path, k, family, seed)
    assert plant.model.family == family
    rows = plant.start_indices
    plans = plan_rows(plant, plant.data.state[rows], plant.data.controls[rows])
    rng = np.random.default_rng(seed)
    checked = []
    for index in rng.choice(len(rows), size=25, replace=False):
        u, t = plant.data.controls[rows[index]], float(plant.data.state[rows[index]])
        plan = plans[index]
        assert plan.exact  # these plants are small: every row must be proven
        assert plan.moves == brute_force_moves(plant, u, t, limit=12)
        checked.append(plan.moves)
    # the comparison covered deep plans and, when the horizon is short, unreachable rows
    assert max(m for m in checked if m is not None) >= 6


def test_planner_brute_force_near_bounds(small_spec: Path) -> None:
    """Clipping creates extra lattice points; starts next to a bound exercise them."""
    plant = env.load_plant(small_spec, settings={"horizon": 8})
    for corner in ([0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]):
        u = plant.lower + (plant.upper - plant.lower) * np.array(corner)
        u = u + np.where(np.array(corner) == 0, 0.3, -0.3) * plant.steps  # inside, off-lattice
        for temperature in (480.0, 490.0, 510.0, 520.0):
            plan = plan_discrete(plant, u, temperature)
            assert plan.exact
            assert plan.moves == brute_force_moves(plant, u, temperature, limit=8)


def test_axis_lattice_matches_breadth_first_search() -> None:
    """The closed-form reachable values of one control equal a BFS with clipping."""
    rng = np.random.default_rng(0)
    for _ in range(60):
        lower, upper = 0.0, float(rng.uniform(0.5, 10.0))
        step, horizon = float(rng.uniform(0.05, 3.0)), int(rng.integers(1, 31))
        starts = np.clip(
            np.r_[rng.uniform(lower, upper, 4), lower, upper, upper - step], lower, upper
        )
        lattice = axis_lattices(starts, lower, upper, step, horizon)
        for row, start in enumerate(starts):
            best = {round(start, 7): 0}
            frontier = [start]
            for depth in range(1, horizon + 1):
                frontier = [min(max(v + d, lower), upper) for v in frontier for d in (-step, step)]
                frontier = [v for v in frontier if round(v, 7) not in best]
                best.update({round(v, 7): depth for v in frontier})
            count = lattice.count[row]
            got = dict(
                zip(
                    np.round(lattice.values[row, :count], 7),
                    lattice.distance[row, :count],
                    strict=True,
                )
            )
            assert got == best


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


def test_continuous_moves_beat_coarse_lattices_and_their_proofs_hold(tmp_path: Path) -> None:
    """Steps far coarser than the band: continuous moves land where lattice ones cannot."""
    spec = write_dataset(tmp_path, 2, band=(499.8, 500.2), steps=[0.5, 0.5])
    plant = env.load_plant(spec, settings={"horizon": 10})
    rows = plant.start_indices
    temps, controls = plant.data.state[rows], plant.data.controls[rows]
    lattice = plan_rows(plant, temps, controls)
    box = plan_rows(plant, temps, controls, "continuous")
    shorter = 0
    rng = np.random.default_rng(0)
    environment = gym.make(env.ENV_ID, spec_path=str(spec), action_mode="continuous").unwrapped
    for i, (a, b) in enumerate(zip(lattice, box, strict=True)):
        assert b.moves is not None and a.moves is not None and b.moves <= a.moves
        shorter += b.moves < a.moves
        if i % 10 == 0 and b.moves > 0:  # the plan does what it says in the environment
            environment.reset(options={"row": int(plant.data.row_numbers[rows[i]])})
            for delta in b.deltas:
                info = environment.step(environment.codec.from_delta(delta))[4]
            assert info["in_band"]
        offset = temps[i] - plant.model.predict(controls[i])
        if b.exact and b.moves > 0:  # no setting within moves - 1 may reach the band
            reach = (b.moves - 1) * plant.steps
            low = np.maximum(plant.lower, controls[i] - reach)
            high = np.minimum(plant.upper, controls[i] + reach)
            samples = rng.uniform(low, high, (4000, 2))
            assert not plant.in_band(plant.model.predict(samples) + offset).any()
    assert shorter >= 10
    assert np.mean([p.exact for p in box]) >= 0.95


def test_exhausted_budget_is_labelled_approximate(sample_plant: env.Plant) -> None:
    outside = sample_plant.start_indices[~sample_plant.in_band(sample_plant.data.state)]
    deep = outside[
        np.argsort(-np.abs(sample_plant.distance_to_band(sample_plant.data.state[outside])))[:20]
    ]
    temps, controls = sample_plant.data.state[deep], sample_plant.data.controls[deep]
    exact = plan_rows(sample_plant, temps, controls)
    starved = plan_rows(sample_plant, temps, controls, budget=1)
    assert all(p.exact for p in exact)
    assert not all(p.exact for p in starved)  # a budget of one sub-box cannot prove them all
    for full, short in zip(exact, starved, strict=True):
        assert short.exact or APPROXIMATE in short.method
        assert short.moves >= full.moves  # still a valid plan, never shorter than optimal
        if short.exact:
            assert short.moves == full.moves


def test_beam_is_a_valid_plan(sample_plant: env.Plant) -> None:
    outside = sample_plant.start_indices[~sample_plant.in_band(sample_plant.data.state)]
    for index in outside[:10]:
        u, t = sample_plant.data.controls[index], float(sample_plant.data.state[index])
        beam = plan_beam(sample_plant, u, t)
        assert not beam.exact and APPROXIMATE in beam.method
        assert beam.moves >= plan_discrete(sample_plant, u, t).moves
        assert sample_plant.in_band(beam.temperatures[-1])


def test_lagged_plant_plans_are_simulated_and_exact_only_when_proven(
    sample_plant: env.Plant,
) -> None:
    lagged = env.load_plant(SAMPLE_SPEC, settings={"response_rate": 0.5})
    outside = lagged.start_indices[~lagged.in_band(lagged.data.state)][:40]
    temps, controls = lagged.data.state[outside], lagged.data.controls[outside]
    plans = plan_rows(lagged, temps, controls)
    steady = plan_rows(sample_plant, temps, controls)
    bound = settle_lower_bound(lagged, temps, controls, lagged.no_pending(controls), 30)
    for i, (plan, fast) in enumerate(zip(plans, steady, strict=True)):
        assert plan.exact == (plan.moves == bound[i])
        assert plan.reachable
        assert plan.moves >= fast.moves  # inertia never helps
        # replayed on the lagging plant, the reading stays in the band from plan.moves on
        deltas = plan.deltas[None] if len(plan.deltas) else np.zeros((1, 0, lagged.n_controls))
        _, readings = simulate_lagged(
            lagged, temps[i : i + 1], controls[i : i + 1], lagged.no_pending(controls[i]),
            deltas, 30,
        )  # fmt: skip
        inside = lagged.in_band(readings[0])
        assert inside[plan.moves :].all() and not inside[plan.moves - 1]
    assert any(p.exact for p in plans) and not all(p.exact for p in plans)


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
