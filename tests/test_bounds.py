"""Model bounds over boxes contain every prediction inside the box (the planner's proofs)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

import env
from env.bounds import box_bounder
from tests.datasets import write_synthetic


def fitted(tmp_path: Path, k: int, family: str) -> env.Plant:
    spec = write_synthetic(tmp_path, k, seed=k, candidates=(family,))
    plant = env.load_plant(spec)
    assert plant.model.family == family
    return plant


def random_boxes(plant: env.Plant, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Boxes from the whole control range down to a fraction of one step."""
    span = plant.upper - plant.lower
    centre = rng.uniform(plant.lower, plant.upper, (n, plant.n_controls))
    scale = 10.0 ** rng.uniform(-3, 0, (n, 1))
    half = 0.5 * span * scale * rng.uniform(0.2, 1.0, (n, plant.n_controls))
    return centre - half, centre + half


@pytest.mark.parametrize(
    ("k", "family"),
    [(1, "cubic"), (3, "linear"), (3, "quadratic"), (4, "cubic"), (2, "rbf"), (5, "rbf")],
)
def test_bounds_contain_every_sampled_prediction(k: int, family: str, tmp_path: Path) -> None:
    plant = fitted(tmp_path, k, family)
    rng = np.random.default_rng(0)
    lower, upper = random_boxes(plant, 300, rng)
    bounds = box_bounder(plant.model)(lower, upper)
    corners = np.array(list(itertools.product((0.0, 1.0), repeat=k)))
    inside = np.concatenate([corners[None].repeat(300, 0), rng.uniform(0, 1, (300, 400, k))], 1)
    points = lower[:, None, :] + (upper - lower)[:, None, :] * inside
    values = plant.model.predict(points.reshape(-1, k)).reshape(points.shape[:2])
    slack = 1e-9 * np.abs(values).max()
    assert (bounds.low <= values.min(axis=1) + slack).all()
    assert (bounds.high >= values.max(axis=1) - slack).all()
    # not vacuous: small boxes are bounded tightly (within 2x their sampled range + slack)
    small = (upper - lower).max(axis=1) < 0.01 * (plant.upper - plant.lower).max()
    assert small.sum() >= 20
    sampled = values.max(axis=1) - values.min(axis=1)
    assert ((bounds.high - bounds.low)[small] <= 2.0 * sampled[small] + 1e-6).mean() > 0.9


@pytest.mark.parametrize("family", ["cubic", "rbf"])
def test_point_boxes_give_value_and_gradient(family: str, tmp_path: Path) -> None:
    plant = fitted(tmp_path, 3, family)
    u = plant.data.controls[:20]
    bounds = box_bounder(plant.model)(u, u)
    expected = plant.model.predict(u)
    np.testing.assert_allclose(bounds.low, expected, rtol=0, atol=1e-8)
    np.testing.assert_allclose(bounds.high, expected, rtol=0, atol=1e-8)
    eps = 1e-6 * (plant.upper - plant.lower)
    numeric = np.stack(
        [
            (
                plant.model.predict(u + eps * np.eye(3)[i])
                - plant.model.predict(u - eps * np.eye(3)[i])
            )
            / (2 * eps[i])
            for i in range(3)
        ],
        axis=1,
    )
    np.testing.assert_allclose(bounds.slope, numeric, rtol=1e-4, atol=1e-6)
