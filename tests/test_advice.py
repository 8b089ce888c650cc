"""Vectorised advice (many readings at once) against a one-reading-at-a-time reference.

The policy here is a fixed rule (move every control the way the model says heats when
below the band, cools when above): advice is policy-agnostic, and a rule makes the
expected moves known without training anything.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import env
from env.plant import LANDING_ALL_MOVES_MAX_CONTROLS, LANDING_MAX_CHANGED
from env.support import fit_data_support
from rllib_project.recommendation import Advisor, format_recommendation
from tests.datasets import write_dataset


def rule_policy(plant: env.Plant, mode: str) -> Callable[[np.ndarray], np.ndarray]:
    codec = plant.codec(mode)

    def act(obs: np.ndarray) -> np.ndarray:
        controls = plant.lower + (obs[:, 2:] + 1.0) / 2.0 * (plant.upper - plant.lower)
        base = plant.model.predict(controls)
        heats = np.stack(
            [
                plant.model.predict(controls + np.eye(plant.n_controls)[i] * 1e-3 * plant.steps)
                > base
                for i in range(plant.n_controls)
            ],
            axis=1,
        )
        wanted = -np.sign(obs[:, 1])[:, None] * np.where(heats, 1, -1)
        if mode == "continuous":
            return (0.7 * wanted).astype(np.float32)
        return codec.from_directions(wanted.astype(np.int8))

    return act


def reference_land(
    plant: env.Plant, temperature: float, controls: np.ndarray, offset: float, new: np.ndarray
) -> np.ndarray:
    """The advice's "land" rule for one reading, written plainly: if the policy's move
    does not land in the band and a move of whole steps does (every move up to
    ``LANDING_ALL_MOVES_MAX_CONTROLS`` controls, at most ``LANDING_MAX_CHANGED``
    controls changed beyond), the landing nearest the middle."""
    if plant.in_band(temperature) or plant.in_band(
        float(plant.next_temperature(temperature, new, offset))
    ):
        return new
    best, best_gap = new, np.inf
    k = plant.n_controls
    for move in itertools.product((-1, 0, 1), repeat=k):
        changed = sum(abs(m) for m in move)
        if changed == 0 or (k > LANDING_ALL_MOVES_MAX_CONTROLS and changed > LANDING_MAX_CHANGED):
            continue
        candidate = plant.apply_delta(controls, np.array(move) * plant.steps)
        reached = float(plant.next_temperature(temperature, candidate, offset))
        if plant.in_band(reached) and abs(reached - plant.band_mid) < best_gap:
            best, best_gap = candidate, abs(reached - plant.band_mid)
    return best


def reference_advice(plant: env.Plant, mode: str, act, temperature: float, controls: np.ndarray):
    """The one-reading roll-out, written plainly: (first move's settings, path, moves)."""
    codec = plant.codec(mode)
    clipped = np.clip(controls, plant.lower, plant.upper)
    offset = float(plant.offset_for(temperature, clipped))
    temp, ctrl, path = float(temperature), clipped.copy(), [float(temperature)]
    if plant.in_band(temp):
        return clipped, path, 0
    first, moves = None, None
    for move in range(1, plant.settings.horizon + 1):
        new = plant.apply_delta(ctrl, codec.to_delta(act(plant.observe(temp, ctrl)[None])[0]))
        new = reference_land(plant, temp, ctrl, offset, new)
        first = new if first is None else first
        temp, ctrl = float(plant.next_temperature(temp, new, offset)), new
        path.append(temp)
        if plant.in_band(temp):
            moves = move
            break
    return first, path, moves


def _plants(tmp_path: Path) -> list[env.Plant]:
    wide = write_dataset(tmp_path / "six", 6, rows=300, seed=4, band=(497.0, 499.0))
    return [env.load_plant(), env.load_plant(wide)]


def _readings(plant: env.Plant, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, plant.rows.n_rows, count)
    low, high = plant.band
    temps = rng.uniform(low - 4 * plant.band_width, high + 4 * plant.band_width, count)
    temps[:3] = plant.band_mid  # some already in the band
    controls = plant.rows.controls[rows].copy()
    controls[3] = plant.upper + 0.5 * (plant.upper - plant.lower)  # outside the bounds
    return temps, controls


@pytest.mark.parametrize("mode", ["discrete", "discrete_flat", "continuous"])
def test_batch_advice_equals_the_one_reading_reference(tmp_path: Path, mode: str) -> None:
    for plant in _plants(tmp_path):
        if mode == "discrete_flat" and plant.n_controls > 4:
            continue
        act = rule_policy(plant, mode)
        advisor = Advisor("rule", plant, plant.codec(mode), act, fit_data_support(plant.rows))
        temps, controls = _readings(plant, 40, seed=plant.n_controls)
        batch = advisor.advise(temps, controls)
        for i in range(len(temps)):
            first, path, moves = reference_advice(plant, mode, act, temps[i], controls[i])
            rec = batch.recommendation(i)
            np.testing.assert_allclose([c.new for c in rec.controls], first, rtol=1e-12)
            np.testing.assert_allclose([p.temperature for p in rec.path], path, rtol=1e-12)
            assert rec.moves_to_band == moves
            assert rec.in_band == (moves == 0)
            alone = advisor.recommend(temps[i], controls[i])
            assert_same_advice(alone.to_dict(), rec.to_dict())


def assert_same_advice(a: object, b: object, rel: float = 1e-9, where: str = "") -> None:
    """Equal advice, floats up to rounding: a reading advised alone or among others goes
    through matrix products of different shapes, whose last bits may differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_same_advice(a[key], b[key], rel, f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_advice(x, y, rel, f"{where}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        assert b == pytest.approx(a, rel=rel, abs=1e-12), where
    else:
        assert a == b, where


def test_directions_amounts_and_notes(sample_plant: env.Plant) -> None:
    plant = sample_plant
    act = rule_policy(plant, "discrete")
    advisor = Advisor("rule", plant, plant.codec("discrete"), act, fit_data_support(plant.rows))
    below = plant.rows.controls[0]
    rec = advisor.recommend(plant.band[0] - 6.0, below)
    assert not rec.in_band and not rec.keep_all
    for control, step in zip(rec.controls, plant.steps, strict=True):
        if control.direction != "keep":
            assert control.amount == pytest.approx(step)
            sign = 1 if control.direction == "increase" else -1
            assert control.new == pytest.approx(control.current + sign * step)
    inside = advisor.recommend(plant.band_mid, below)
    assert inside.keep_all and inside.moves_to_band == 0 and len(inside.path) == 1
    outside = advisor.recommend(plant.band[0] - 6.0, plant.upper * 3.0)
    assert any("outside the model's bounds" in note for note in outside.notes)
    assert outside.warning is not None and not outside.support.inside
    assert "WARNING: outside the data" in format_recommendation(outside)
    assert "data support:" in format_recommendation(inside)


def test_without_paths_the_first_move_is_the_same(tmp_path: Path) -> None:
    for plant in _plants(tmp_path):
        act = rule_policy(plant, "discrete")
        advisor = Advisor("r", plant, plant.codec("discrete"), act, fit_data_support(plant.rows))
        temps, controls = _readings(plant, 30, seed=1)
        full, quick = (
            advisor.advise(temps, controls),
            advisor.advise(temps, controls, with_path=False),
        )
        np.testing.assert_array_equal(full.new, quick.new)
        np.testing.assert_array_equal(full.direction, quick.direction)
        assert (quick.path.length == 1).all() and not quick.path.rolled_out
        moves = quick.path.moves_to_band
        assert ((moves == 0) == quick.in_band).all() and (moves[~quick.in_band] == -1).all()


def test_to_dict_is_plain_json_and_matches_asdict(sample_plant: env.Plant) -> None:
    act = rule_policy(sample_plant, "continuous")
    advisor = Advisor(
        "rule",
        sample_plant,
        sample_plant.codec("continuous"),
        act,
        fit_data_support(sample_plant.rows),
    )
    rec = advisor.recommend(sample_plant.band[1] + 5.0, sample_plant.rows.controls[7])
    expected = dataclasses.asdict(rec)
    expected["keep_all"] = rec.keep_all
    assert json.loads(json.dumps(rec.to_dict())) == json.loads(json.dumps(expected))
    assert set(rec.to_dict()["support"]) == {
        "distance",
        "threshold",
        "inside",
        "nearest_row",
        "furthest_control",
    }


def test_a_reading_one_move_from_the_band_is_advised_the_landing_move() -> None:
    """A policy that never moves: where one move lands the reading in the band on the
    model, the advice makes that move, says so, and its path arrives after one move;
    where none does, the policy's "keep" stands."""
    plant = env.load_plant()
    codec = plant.codec("discrete")
    advisor = Advisor(
        "keep", plant, codec, lambda obs: codec.keep(len(obs)), fit_data_support(plant.rows)
    )
    rows = plant.start_indices
    batch = advisor.advise(plant.rows.state[rows], plant.start_controls(rows))
    landed = np.flatnonzero(batch.ruled)
    assert landed.size >= 10
    for i in landed[:5]:
        rec = batch.recommendation(i)
        assert rec.moves_to_band == 1 and rec.path[1].in_band
        assert any("lands in the band" in note for note in rec.notes)
        assert any(c.direction != "keep" for c in rec.controls)
    elsewhere = ~batch.ruled
    assert (batch.direction[elsewhere] == 0).all()
    assert (batch.path.moves_to_band[elsewhere & ~batch.in_band] == -1).all()


def test_a_lagging_plant_is_advised_the_settings_settling_nearest_the_middle() -> None:
    """A policy that never moves, on the sample with lag and a hold margin: readings
    settled in the band's margin are advised the one move whose settings settle nearest
    the middle, with a note saying so; readings settled near the middle keep."""
    plant = env.load_plant(None, None, {"response_rate": 0.5, "hold_margin": 0.4})
    codec = plant.codec("discrete")
    advisor = Advisor(
        "keep", plant, codec, lambda obs: codec.keep(len(obs)), fit_data_support(plant.rows)
    )
    rows = plant.start_indices[:60]
    half = 0.5 * plant.band_width
    temps = np.where(np.arange(len(rows)) % 2 == 0, plant.band_mid + 0.8 * half, plant.band_mid)
    controls = plant.rows.controls[rows]
    batch = advisor.advise(temps, controls)
    margin = np.arange(len(rows)) % 2 == 0
    assert not batch.ruled[~margin].any()
    assert (batch.direction[~margin] == 0).all()
    ruled = np.flatnonzero(batch.ruled)
    assert ruled.size >= 10
    offset = plant.offset_for(temps, controls)
    settles = plant.model.predict(batch.new) + offset
    assert (np.abs(settles - plant.band_mid)[ruled] < 0.8 * half).all()
    for i in ruled[:5]:
        rec = batch.recommendation(int(i))
        assert any("settle nearest the band's middle" in note for note in rec.notes)
        assert any(c.direction != "keep" for c in rec.controls)
