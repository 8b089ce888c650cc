"""Hyper-parameters that follow the plant's shape instead of the sample's.

Placeholder: filled in with the measured defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from env.plant import Plant
from env.yardstick import Yardstick


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


def _unused() -> float:  # pragma: no cover - replaced by the defaults
    return math.nan
