"""Trained policies are scored as they are served: under the advice's rule."""

from __future__ import annotations

import dataclasses

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


def test_the_advice_lands_where_one_move_reaches_the_band(sample_plant: env.Plant) -> None:
    """A policy that never moves, from rows one move from the band: the advice's "land"
    rule makes that move (on the model the reading is in the band after it), so the
    advice takes exactly the planner's one move there; the score judges the policy
    without the rule (its "keep" stands and none arrives), and so does the advice with
    ``env.land_in_one_move: false``."""
    scorer = PlantScorer(sample_plant, "discrete", fixed_start_rows(sample_plant, 300, seed=1))
    codec = scorer.codec
    keep = FunctionPolicy("keep", lambda obs: codec.keep(len(obs)))
    one_move = scorer.optimal_moves == 1
    assert one_move.sum() >= 10

    landed = scorer.rollouts(keep, hold_in_band=True, land=True)
    np.testing.assert_array_equal(landed.moves_to_band[one_move], 1.0)
    assert (landed.actuations[one_move] == 1).all()
    assert scorer.advised(keep) == scorer.metrics(landed)

    scored = scorer.rollouts(keep, hold_in_band=True)
    assert not scored.success[one_move].any()
    assert scorer.evaluate(keep) == scorer.metrics(scored)
    assert scorer.evaluate(keep).success_rate < scorer.advised(keep).success_rate

    rule_off = dataclasses.replace(
        sample_plant,
        settings=dataclasses.replace(sample_plant.settings, land_in_one_move=False),
    )
    off = PlantScorer(rule_off, "discrete", scorer.rows).rollouts(keep, True, land=True)
    assert not off.success[one_move].any()
    assert (off.actuations == 0).all()


def test_the_land_rule_is_off_on_a_lagging_plant() -> None:
    """With lag a move's effect arrives over several readings: "land in one move" would
    judge the wrong thing, so the rule leaves the policy's move as it is there."""
    plant = env.load_plant(None, None, {"response_rate": 0.5})
    assert plant.lagging
    rows = plant.start_indices[:50]
    temperatures, controls = plant.rows.state[rows], plant.start_controls(rows)
    offset = plant.offset_for(temperatures, controls)
    assert not plant.lands_in_one_move
    assert plant.land(temperatures, controls, offset, controls) is controls
