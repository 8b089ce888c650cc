"""Property-based tests of the environment over random datasets and action sequences."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import env
from tests.datasets import write_dataset

NAME_ALPHABET = "abcxyzABCXYZ0123456789 _-.()%/[]#:°µäöüßé"


@st.composite
def datasets(draw: st.DrawFn) -> dict:
    n_controls = draw(st.integers(1, 4))
    names = draw(
        st.lists(
            st.text(NAME_ALPHABET, min_size=1, max_size=12).map(str.strip).filter(bool),
            min_size=n_controls,
            max_size=n_controls,
            unique=True,
        ).filter(lambda ns: "temp" not in ns)
    )
    return {
        "n_controls": n_controls,
        "names": names,
        "rows": draw(st.integers(60, 160)),
        "steps": draw(st.lists(st.floats(0.05, 2.0), min_size=n_controls, max_size=n_controls)),
        "noise": draw(st.floats(0.0, 2.0)),
        "seed": draw(st.integers(0, 10_000)),
        "mode": draw(st.sampled_from(env.ACTION_MODES)),
        "env": {
            "response_rate": draw(st.floats(0.2, 1.0)),
            "noise_std": draw(st.sampled_from([0.0, 0.5])),
            "drift_std": draw(st.sampled_from([0.0, 0.1])),
        },
        "actions_seed": draw(st.integers(0, 2**31 - 1)),
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=datasets())
def test_random_datasets_and_actions_keep_the_env_sane(case: dict) -> None:
    with tempfile.TemporaryDirectory() as folder:
        spec = write_dataset(
            Path(folder),
            case["n_controls"],
            names=case["names"],
            rows=case["rows"],
            steps=case["steps"],
            noise=case["noise"],
            seed=case["seed"],
            band=(495.0, 505.0),
            spec_extra={"env": case["env"]},
        )
        environment = gym.make(env.ENV_ID, spec_path=str(spec), action_mode=case["mode"])
        plant = environment.unwrapped.plant
        environment.action_space.seed(case["actions_seed"])
        rng = np.random.default_rng(case["actions_seed"])
        obs, info = environment.reset(seed=case["seed"])
        for step in range(60):
            assert environment.observation_space.contains(obs), obs
            assert np.isfinite(obs).all() and np.isfinite(info["temperature"])
            controls = np.array(list(info["controls"].values()))
            assert np.all(controls >= plant.lower) and np.all(controls <= plant.upper)
            if case["mode"] == "continuous" and step % 3 == 0:  # the space's corners
                action = rng.choice([-1.0, 1.0], size=plant.n_controls).astype(np.float32)
            else:
                action = environment.action_space.sample()
            obs, reward, terminated, truncated, info = environment.step(action)
            assert np.isfinite(reward) and (info["in_band"] or not terminated)
            if terminated or truncated:
                obs, info = environment.reset()
