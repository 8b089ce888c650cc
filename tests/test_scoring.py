"""Trained policies are scored as they are served: under the advice's rule."""

from __future__ import annotations

import numpy as np

import env
from env.baselines import FunctionPolicy
from env.evaluation import fixed_start_rows
from rllib_project.scoring import PlantScorer


def test_a_policy_that_keeps_moving_in_the_band_is_scored_as_its_advice(
    sample_plant: env.Plant,
) -> None:
    """A policy that moves every control up one step at every reading enters the band
    from below and would leave it on the other side; the advice holds it there, and
    the score (checkpoint choice, stopping, comparison) is the advice's."""
    scorer = PlantScorer(sample_plant, "discrete", fixed_start_rows(sample_plant, 200, seed=0))
    codec = scorer.codec

    def always_up(obs: np.ndarray) -> np.ndarray:
        return codec.from_directions(np.ones((len(obs), sample_plant.n_controls)))

    policy = FunctionPolicy("up", always_up)
    served = scorer.evaluate(policy)
    raw = scorer.metrics(scorer.rollouts(policy))
    held = scorer.metrics(scorer.rollouts(policy, hold_in_band=True))

    assert served == held
    assert served.success_rate > raw.success_rate
    assert served.mean_actuations < raw.mean_actuations
