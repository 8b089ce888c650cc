"""The seeded synthetic-plant generator: reproducible, shaped as asked, its own truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import env
from env.planner import plan_rows
from env.synthetic import SyntheticSettings, make_synthetic_plant


def test_same_seed_same_files_other_seed_other_plant(tmp_path: Path) -> None:
    settings = SyntheticSettings(n_controls=3, mean_depth=6, rows=100, seed=4)
    a = make_synthetic_plant(settings).write(tmp_path / "a")
    b = make_synthetic_plant(settings).write(tmp_path / "b")
    c = make_synthetic_plant(settings, seed=5).write(tmp_path / "c")
    assert (a.parent / "plant.csv").read_bytes() == (b.parent / "plant.csv").read_bytes()
    assert a.read_text() == b.read_text()
    assert (a.parent / "plant.csv").read_bytes() != (c.parent / "plant.csv").read_bytes()


def test_csv_is_the_truth_plus_noise(tmp_path: Path) -> None:
    plant = make_synthetic_plant(n_controls=4, mean_depth=5, rows=300, seed=2)
    frame = pd.read_csv(plant.write(tmp_path).parent / "plant.csv")
    assert list(frame.columns) == ["temperature", "u0", "u1", "u2", "u3"]
    residual = frame["temperature"] - plant.steady_temperature(frame[list(plant.names)].to_numpy())
    spread = plant.steady_temperature(frame[list(plant.names)].to_numpy()).std()
    assert abs(residual.mean()) < 0.01 * spread
    assert 0.5 < residual.std() / (plant.settings.noise_fraction * spread) < 1.5
    # non-linear with interactions: a linear fit of the truth leaves a clear residual
    u = plant.controls
    design = np.c_[np.ones(len(u)), u]
    truth = plant.steady_temperature(u)
    linear = design @ np.linalg.lstsq(design, truth, rcond=None)[0]
    assert np.std(truth - linear) > 0.03 * truth.std()


@pytest.mark.parametrize(("k", "depth"), [(2, 2), (3, 8), (4, 16)])
def test_depth_knob_sets_the_planners_mean_moves(k: int, depth: float, tmp_path: Path) -> None:
    spec = make_synthetic_plant(
        n_controls=k, mean_depth=depth, rows=150, seed=k, ensemble_size=2
    ).write(tmp_path)
    plant = env.load_plant(spec)
    rows = plant.start_indices
    plans = plan_rows(plant, plant.data.state[rows], plant.data.controls[rows])
    moves = np.array([np.nan if p.moves is None else p.moves for p in plans])
    assert np.isnan(moves).mean() <= 0.02  # deep plants keep their rows solvable
    assert abs(np.nanmean(moves) - depth) <= 0.25 * depth + 0.5
    # steps are the knob: deeper plants take smaller steps relative to each range
    spans = plant.upper - plant.lower
    assert np.allclose(plant.steps / spans, (plant.steps / spans)[0], rtol=0.3)


def test_extra_env_settings_reach_the_spec(tmp_path: Path) -> None:
    spec = make_synthetic_plant(
        n_controls=2, rows=60, env={"response_rate": 0.6, "noise_std": 0.1}
    ).write(tmp_path)
    plant = env.load_plant(spec)
    assert plant.settings.response_rate == 0.6 and plant.settings.noise_std == 0.1


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="mean_depth"):
        SyntheticSettings(mean_depth=40)
    with pytest.raises(ValueError, match="n_controls"):
        SyntheticSettings(n_controls=0)
