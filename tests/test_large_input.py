"""A million-row CSV fits and builds the environment (time and memory: bench_large.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import env
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.without_ray]  # runs beside the Ray tests


def test_million_row_csv_fits_and_steps(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "bench_large", REPO / "scripts" / "bench_large.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)  # type: ignore[union-attr]
    spec_path = bench.make_large_dataset(tmp_path, 1_000_000)
    plant = env.load_plant(spec_path)
    assert plant.data.n_rows == 1_000_000
    assert plant.model.n_rows == 1_000_000 and plant.model.family != "linear"
    environment = gym.make(env.ENV_ID, spec_path=str(spec_path))
    obs, _ = environment.reset(seed=0)
    for _ in range(100):
        obs, reward, _, truncated, _ = environment.step(environment.action_space.sample())
        assert environment.observation_space.contains(obs) and np.isfinite(reward)
        if truncated:
            obs, _ = environment.reset()
