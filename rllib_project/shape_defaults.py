"""Hyper-parameters that follow the plant's shape instead of the sample's.

The algorithm YAMLs were tuned on the bundled sample: 4 controls, rows 2.1 moves from
the band on average (8 at most), horizon 30. A user's plant may have 8 controls and
rows 20 moves out. Every setting that depends on that shape is derived here from the
:class:`PlantShape` measured before the trials (controls ``k``, horizon, the planner's
depths from the experiment's yardstick). The others stay in the YAMLs as tuned on the
sample: network width (64 x 64: the inputs are k + 2 numbers, so width is not what a
wider plant lacks), batch sizes (counted in transitions, which do not grow with k)
and DQN's exploration schedule (in env steps; with one head per control a random
action is k independent random moves, as on the sample). ``scripts/bench_shapes.py``
is the check whether they hold on other shapes. A value written in an algorithm's
YAML always wins over the derived one.

Derived, and why (the sample's values in brackets, which the formulas reproduce):

``gamma`` (all three) [0.95]
    The discount must let a move's value reach as far as the deepest plan: with
    ``1 / (1 - gamma)`` at least twice the planner's largest move count, the return
    of arriving one move earlier is still clearly visible after the whole approach.
    ``gamma = 1 - 1 / max(20, 2 * max_moves)``, at most 0.99 (the sample's 8 moves
    stay at 0.95; a 28-move plant gets 0.982).
``target_entropy`` (SAC) [-8]
    SAC keeps its policy's entropy near this target. The optimal moves are full
    steps, so a nearly deterministic policy is wanted; RLlib's "auto" (``-k``) left
    moves/opt at 1.4-1.5 on the sample, ``-2 k`` reached 1.09. Entropy adds up over
    the action's dimensions, so the target is per control: ``-2 k``.
``entropy_coeff`` (PPO) [0.005]
    The entropy of a ``MultiDiscrete`` policy is the sum over its k controls, so a
    fixed coefficient would push twice as hard towards random moves on 8 controls as
    on 4. Per control it stays the sample's: ``0.02 / k``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from env.plant import Plant
from env.yardstick import Yardstick
from rllib_project.experiment import AlgorithmSettings

MIN_DISCOUNT_HORIZON = 20
"""Moves of the shortest discount horizon ``1 / (1 - gamma)``: the sample's 0.95."""
MAX_GAMMA = 0.99
SAC_ENTROPY_PER_CONTROL = -2.0
PPO_ENTROPY_COEFF_TIMES_K = 0.02


@dataclass(frozen=True)
class PlantShape:
    """What the defaults depend on, measured once per experiment before any trial."""

    n_controls: int
    """k: the number of controls (the action's dimensions)."""
    horizon: int
    """Moves per episode."""
    mean_moves: float
    """The planner's mean fewest moves over the solvable start rows (0 if none)."""
    max_moves: int
    """The planner's largest fewest moves over the solvable start rows (0 if none)."""

    @classmethod
    def of(cls, plant: Plant, yardstick: Yardstick) -> PlantShape:
        moves = yardstick.moves[yardstick.solvable]
        return cls(
            n_controls=plant.n_controls,
            horizon=plant.settings.horizon,
            mean_moves=float(np.mean(moves)) if len(moves) else 0.0,
            max_moves=int(np.max(moves)) if len(moves) else 0,
        )

    def describe(self) -> str:
        return (
            f"{self.n_controls} controls, horizon {self.horizon}, planner depth mean "
            f"{self.mean_moves:.1f} / max {self.max_moves} moves"
        )


@dataclass(frozen=True)
class DerivedSettings:
    """Defaults of an algorithm's YAML sections, from the plant's shape."""

    training: dict[str, Any]
    model: dict[str, Any]


def discount(shape: PlantShape) -> float:
    """``gamma``: a discount horizon of at least twice the deepest plan (docstring)."""
    horizon = max(MIN_DISCOUNT_HORIZON, 2 * shape.max_moves)
    return round(min(MAX_GAMMA, 1.0 - 1.0 / horizon), 4)


def derived_settings(algorithm: str, shape: PlantShape) -> DerivedSettings:
    """The shape-derived defaults of one algorithm (see the module docstring)."""
    k = shape.n_controls
    training: dict[str, Any] = {"gamma": discount(shape)}
    if algorithm == "SAC":
        training["target_entropy"] = SAC_ENTROPY_PER_CONTROL * k
    if algorithm == "PPO":
        training["entropy_coeff"] = round(PPO_ENTROPY_COEFF_TIMES_K / k, 6)
    return DerivedSettings(training=training, model={})


def describe_derived(algorithms: Iterable[AlgorithmSettings], shape: PlantShape) -> str:
    """One line: the settings the shape gave each algorithm (those its YAML does not set)."""
    parts = []
    for settings in algorithms:
        derived = derived_settings(settings.algorithm, shape)
        used = {k: v for k, v in derived.training.items() if k not in settings.training}
        used |= {k: v for k, v in derived.model.items() if k not in settings.model}
        if used:
            values = ", ".join(f"{k} {v}" for k, v in used.items())
            parts.append(f"{settings.algorithm} {values}")
    return "from the plant's shape: " + ("; ".join(parts) or "nothing (the YAMLs set it all)")
