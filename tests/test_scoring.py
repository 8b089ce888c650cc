"""Trained policies are scored as they are served: under the advice's rule."""

from __future__ import annotations

import dataclasses
import itertools

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

    landed = scorer.rollouts(keep, hold_in_band=True, move_rule=True)
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
    off = PlantScorer(rule_off, "discrete", scorer.rows).rollouts(keep, True, move_rule=True)
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


def reference_centre(
    plant: env.Plant, controls: np.ndarray, offset: float, proposed: np.ndarray
) -> np.ndarray:
    """The advice's "centre" rule for one reading, written plainly: if the policy's
    settings settle in the band (or it keeps settings settling in the band's margin),
    the settings of one move of whole steps (or none) settling nearest the middle,
    when nearer."""
    mid = plant.band_mid

    def settles(settings: np.ndarray) -> float:
        return float(plant.model.predict(settings[None])[0]) + offset

    settled = settles(proposed)
    moved = bool(np.any(proposed != controls))
    half = 0.5 * plant.band_width
    in_margin = abs(settled - mid) > (1.0 - plant.hold_margin) * half
    if not plant.in_band(settled) or not (moved or in_margin):
        return proposed
    best, best_gap = proposed, abs(settled - mid)
    for move in itertools.product((-1, 0, 1), repeat=plant.n_controls):
        candidate = plant.apply_delta(controls, np.array(move) * plant.steps)
        gap = abs(settles(candidate) - mid)
        if gap < best_gap:
            best, best_gap = candidate, gap
    return best


def test_the_centre_rule_matches_its_plain_reference_on_a_lagging_plant() -> None:
    """Random readings and random policy moves on the sample with lag: the batch rule
    equals the plain one, it changes some moves and only ever into moves of one step
    per control settling nearer the middle (kept settings too, where they settle in the
    band's margin); it is off without lag or when disabled."""
    plant = env.load_plant(None, None, {"response_rate": 0.5, "hold_margin": 0.4})
    assert plant.lagging and plant.centres_settling
    rng = np.random.default_rng(3)
    rows = rng.integers(0, plant.rows.n_rows, 400)
    controls = plant.rows.controls[rows]
    steps = rng.integers(-2, 3, controls.shape)
    steps[::4] = 0  # some keep
    proposed = plant.apply_delta(controls, steps * plant.steps)
    offset = rng.normal(0.0, plant.band_width, len(rows))
    # offsets that put the proposed settings near the band, so that the rule has work
    offset[::2] = (
        plant.band_mid
        - plant.model.predict(proposed[::2])
        + rng.uniform(-0.6, 0.6, len(rows[::2])) * plant.band_width
    )

    result = plant.centre(controls, offset, proposed)
    for i in range(len(rows)):
        expected = reference_centre(plant, controls[i], float(offset[i]), proposed[i])
        np.testing.assert_allclose(result[i], expected, err_msg=f"reading {i}")
    changed = ~np.isclose(result, proposed).all(axis=1)
    assert 20 <= changed.sum() < len(rows)
    kept = (steps == 0).all(axis=1)
    assert (changed & kept).sum() >= 5  # kept settings settling in the margin
    assert (~changed & kept).sum() >= 5
    one_step = np.abs(result[changed] - controls[changed]) <= plant.steps + 1e-9
    assert one_step.all()
    settled = plant.model.predict(result) + offset
    before = plant.model.predict(proposed) + offset
    assert (
        np.abs(settled - plant.band_mid)[changed] < np.abs(before - plant.band_mid)[changed]
    ).all()
    assert plant.advice_move(plant.rows.state[rows], controls, offset, proposed) is not proposed

    off = dataclasses.replace(
        plant, settings=dataclasses.replace(plant.settings, centre_settling=False)
    )
    assert off.centre(controls, offset, proposed) is proposed
    static = env.load_plant()
    assert not static.centres_settling
    assert static.centre(controls, offset, proposed) is proposed


def test_the_centre_rule_settles_a_lagging_plant_nearer_the_middle() -> None:
    """The greedy baseline on the sample with lag, every start row, as served and as
    advised: with the rule its settled temperatures end nearer the middle, and it makes
    no more setting changes where it moved anyway."""
    from env.baselines import GreedyLookaheadPolicy

    plant = env.load_plant(None, None, {"response_rate": 0.5})
    scorer = PlantScorer(plant, "discrete", plant.start_indices)
    greedy = GreedyLookaheadPolicy(plant, scorer.codec)
    served = scorer.rollouts(greedy, hold_in_band=True)
    advised = scorer.rollouts(greedy, hold_in_band=True, move_rule=True)

    def settled_gap(result: object) -> np.ndarray:
        final = result.controls[:, -1]  # type: ignore[attr-defined]
        offset = plant.offset_for(scorer.temperatures, scorer.controls)
        return np.abs(plant.model.predict(final) + offset - plant.band_mid)

    both = served.success & advised.success
    assert both.sum() >= 50
    assert settled_gap(advised)[both].mean() < settled_gap(served)[both].mean()
    assert advised.success.mean() >= served.success.mean()
    assert scorer.advised(greedy) == scorer.metrics(advised)
