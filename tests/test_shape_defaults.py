"""Settings that follow the plant's shape (rllib_project/shape_defaults.py): the
discount, SAC's entropy target, PPO's entropy coefficient and DQN's ``action_mode: auto``."""

from __future__ import annotations

import dataclasses

import pytest

from env.actions import ACTION_MODES
from rllib_project.algorithms import build_algorithm_config
from rllib_project.experiment import load_experiment
from rllib_project.resources import TrialResources
from rllib_project.shape_defaults import (
    PlantShape,
    derived_settings,
    describe_derived,
    resolve_action_mode,
)
from rllib_project.trial_config import PlantSource, TrialConfig
from tests.conftest import REPO, SAMPLE_SPEC

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


@pytest.mark.parametrize(
    ("k", "mode"),
    [
        (1, "discrete_flat"),
        (4, "discrete_flat"),
        (5, "discrete"),
        (8, "discrete"),
        (None, "discrete"),
    ],
)
def test_dqn_auto_is_flat_up_to_81_actions_and_branching_beyond(k: int | None, mode: str) -> None:
    assert resolve_action_mode("auto", k) == mode


def test_an_explicit_action_mode_is_kept_whatever_the_shape() -> None:
    for mode in ACTION_MODES:
        assert resolve_action_mode(mode, 4) == mode
        assert resolve_action_mode(mode, 8) == mode


@pytest.mark.parametrize(("k", "mode"), [(4, "discrete_flat"), (6, "discrete")])
def test_the_shipped_dqn_file_chooses_per_dataset_and_the_trial_builds_that(
    k: int, mode: str
) -> None:
    """``tune_configs/dqn.yaml`` says ``auto``; each trial's env and RLlib config follow
    its own dataset's controls (the branching Q-network only on the wide plant)."""
    dqn = load_experiment(REPO / "tune_configs" / "compare.yaml").algorithms["DQN"]
    assert dqn.action_mode == "auto"
    plant = PlantSource("p", str(SAMPLE_SPEC), "/models/m.json", shape=shape(k))
    trial = TrialConfig(
        dqn,
        plant,
        TrialResources(1.0, 0, 0.0, 1),
        load_experiment(REPO / "tune_configs" / "compare.yaml").file.evaluation,
    )
    assert trial.action_mode == mode and trial.env_config.action_mode == mode
    learner = build_algorithm_config(trial).learner_class.__name__
    assert (learner == "BranchingQTorchLearner") == (mode == "discrete"), learner
    assert f"DQN gamma 0.95, actions {mode}" in describe_derived([dqn], shape(k))
