"""Nothing about the sample data is hard-coded: other column names and 1 to 8 controls."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import env
from env.baselines import baseline_policies
from env.evaluation import evaluate_policy
from env.planner import plan_discrete
from tests.datasets import write_dataset
from tests.test_fit_cli import run_cli

SIX_NAMES = [
    "Zone A heater (kW)",
    "valve_2 %",
    "O2 trim",
    "Förderband speed",
    "damper-7",
    "recycle ratio",
]


def test_six_controls_with_other_names_end_to_end(tmp_path: Path) -> None:
    spec = write_dataset(tmp_path, 6, names=SIX_NAMES, state="Bed Temp [C]", rows=300)
    model_path = tmp_path / "six.model.json"
    fitted = run_cli("fit", spec, "--out", model_path)
    assert fitted.returncode == 0, fitted.stderr

    for mode in env.ACTION_MODES:
        environment = gym.make(
            env.ENV_ID, spec_path=str(spec), model_path=str(model_path), action_mode=mode
        )
        check_env(environment.unwrapped)
        _, info = environment.reset(seed=0)
        assert list(info["controls"]) == SIX_NAMES
    assert (
        gym.make(env.ENV_ID, spec_path=str(spec), action_mode="discrete_flat").action_space.n == 729
    )

    plant = env.load_plant(spec, model_path)
    rows = plant.start_indices[:30]
    plans = [plan_discrete(plant, plant.data.controls[i], plant.data.state[i]) for i in rows]
    assert all(p.reachable for p in plans)
    codec = plant.codec("discrete")
    results = {
        p.name: evaluate_policy(plant, codec, p, rows) for p in baseline_policies(plant, codec)
    }
    (planner, planned), (_, greedy) = results["planner"], results["greedy"]
    assert planner.success_rate == 1.0
    np.testing.assert_array_equal(planned.moves_to_band, [p.moves for p in plans])
    reached = ~np.isnan(greedy.moves_to_band)
    assert np.all(planned.moves_to_band[reached] <= greedy.moves_to_band[reached])


@pytest.mark.parametrize("n_controls", [1, 3, 8])
def test_any_number_of_controls(n_controls: int, tmp_path: Path) -> None:
    spec = write_dataset(tmp_path, n_controls, rows=40 + 15 * n_controls)
    for mode in ("discrete", "continuous"):
        environment = gym.make(env.ENV_ID, spec_path=str(spec), action_mode=mode)
        check_env(environment.unwrapped)
        assert environment.observation_space.shape == (n_controls + 2,)
        environment.action_space.seed(0)
        obs, _ = environment.reset(seed=0)
        for _ in range(25):
            obs, reward, _, truncated, _ = environment.step(environment.action_space.sample())
            assert environment.observation_space.contains(obs) and np.isfinite(reward)
            if truncated:
                obs, _ = environment.reset()
    plant = env.load_plant(spec)
    index = plant.start_indices[~plant.in_band(plant.data.state[plant.start_indices])][0]
    plan = plan_discrete(plant, plant.data.controls[index], plant.data.state[index])
    assert plan.reachable
    # exact up to the lattice limit, labelled approximate beyond it
    assert plan.exact == ("approximate" not in plan.method)
