"""Settings that follow the plant's shape (rllib_project/shape_defaults.py): the
discount, SAC's entropy target and PPO's entropy coefficient."""

from __future__ import annotations

import dataclasses

from rllib_project.shape_defaults import (
    PlantShape,
    derived_settings,
)

SAMPLE_SHAPE = PlantShape(n_controls=4, horizon=30, mean_moves=2.1, max_moves=8)


def shape(k: int, max_moves: int = 8) -> PlantShape:
    return dataclasses.replace(SAMPLE_SHAPE, n_controls=k, max_moves=max_moves)


def test_the_sample_shape_gives_the_values_tuned_on_the_sample() -> None:
    assert derived_settings("PPO", SAMPLE_SHAPE).training == {"gamma": 0.95, "entropy_coeff": 0.005}
    assert derived_settings("SAC", SAMPLE_SHAPE).training == {"gamma": 0.95, "target_entropy": -8.0}
    assert derived_settings("DQN", SAMPLE_SHAPE).training == {"gamma": 0.95}


def test_deeper_and_wider_plants_get_a_longer_discount_and_per_control_entropy() -> None:
    deep_wide = shape(8, max_moves=28)
    assert derived_settings("DQN", deep_wide).training["gamma"] == 0.9821
    assert derived_settings("SAC", deep_wide).training["target_entropy"] == -16.0
    assert derived_settings("PPO", deep_wide).training["entropy_coeff"] == 0.0025
    assert derived_settings("DQN", shape(4, max_moves=200)).training["gamma"] == 0.99  # capped
