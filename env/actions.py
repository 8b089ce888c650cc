"""Action modes: how an agent's action becomes a change of every control.

Three encodings of the same decision ("for each control: decrease, keep or increase,
and by how much"), because the algorithms need different spaces:

========================  ============================  ============================
mode                      space                         meaning
========================  ============================  ============================
``discrete``              ``MultiDiscrete([3] * k)``    per control 0 = decrease by one
                                                        step, 1 = keep, 2 = increase
``discrete_flat``         ``Discrete(3 ** k)``          the same k digits as one base-3
                                                        number, control 0 the most
                                                        significant digit (for DQN)
``continuous``            ``Box(-1, 1, (k,))``          fraction of one step per control;
                                                        |a| below the dead-band is "keep"
========================  ============================  ============================

Every function here works on a single action or a batch (leading axis).
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

import numpy as np
from gymnasium import spaces

ActionMode = Literal["discrete", "discrete_flat", "continuous"]
ACTION_MODES: tuple[ActionMode, ...] = ("discrete", "discrete_flat", "continuous")
MAX_FLAT_CONTROLS = 10
"""``Discrete(3**k)`` beyond 10 controls (59,049 actions) is not a sensible DQN head."""


def direction_table(n_controls: int) -> np.ndarray:
    """All 3**k direction vectors in {-1, 0, +1}^k, in flat-index order."""
    return np.array(list(itertools.product((-1, 0, 1), repeat=n_controls)), dtype=np.int8)


def candidate_directions(n_controls: int, max_full: int = 729) -> np.ndarray:
    """Direction vectors a look-ahead search tries, "keep all" first.

    Up to ``max_full`` (6 controls) every combination; beyond, "keep", each control
    alone up or down, and all controls together up or down (2k + 3 candidates).
    """
    if 3**n_controls <= max_full:
        table = direction_table(n_controls)
        keep = (3**n_controls - 1) // 2
        return np.concatenate([table[keep : keep + 1], np.delete(table, keep, axis=0)])
    eye = np.eye(n_controls, dtype=np.int8)
    ones = np.ones((1, n_controls), dtype=np.int8)
    return np.concatenate([np.zeros_like(ones), eye, -eye, ones, -ones])


class ActionCodec:
    """Encode and decode actions of one mode for controls with the given steps."""

    def __init__(self, mode: ActionMode, steps: np.ndarray, deadband: float = 0.0) -> None:
        if mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {', '.join(ACTION_MODES)}, got {mode!r}")
        self.mode = mode
        self.steps = np.asarray(steps, dtype=np.float64)
        self.n_controls = len(self.steps)
        self.deadband = float(deadband)
        if mode == "discrete_flat" and self.n_controls > MAX_FLAT_CONTROLS:
            raise ValueError(
                f"discrete_flat supports at most {MAX_FLAT_CONTROLS} controls "
                f"(3**{self.n_controls} actions); use 'discrete' or 'continuous'"
            )
        self._flat_deltas = (
            direction_table(self.n_controls) * self.steps if mode == "discrete_flat" else None
        )
        self._powers = 3 ** np.arange(self.n_controls - 1, -1, -1)
        self._steps_list = self.steps.tolist()
        self._flat_list = None if self._flat_deltas is None else self._flat_deltas.tolist()

    @property
    def space(self) -> spaces.Space:
        k = self.n_controls
        if self.mode == "discrete":
            return spaces.MultiDiscrete(np.full(k, 3, dtype=np.int64))
        if self.mode == "discrete_flat":
            return spaces.Discrete(3**k)
        return spaces.Box(-1.0, 1.0, shape=(k,), dtype=np.float32)

    def to_delta(self, action: np.ndarray | int) -> np.ndarray:
        """Physical change of each control, shape (..., k)."""
        if self.mode == "discrete_flat":
            return self._flat_deltas[np.asarray(action, dtype=np.intp)]  # type: ignore[index]
        if self.mode == "discrete":
            return (np.asarray(action, dtype=np.float64) - 1.0) * self.steps
        fraction = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        if self.deadband > 0.0:
            fraction = np.where(np.abs(fraction) < self.deadband, 0.0, fraction)
        return fraction * self.steps

    def to_delta_scalar(self, action: Any) -> list[float]:
        """Python-float twin of :meth:`to_delta` for one action (the env's hot path)."""
        if self.mode == "discrete_flat":
            return self._flat_list[int(action)]
        values = action.tolist() if isinstance(action, np.ndarray) else list(action)
        if self.mode == "discrete":
            return [(a - 1.0) * s for a, s in zip(values, self._steps_list, strict=True)]
        deadband = self.deadband
        deltas = []
        for a, s in zip(values, self._steps_list, strict=True):
            a = min(max(float(a), -1.0), 1.0)
            deltas.append(0.0 if abs(a) < deadband else a * s)
        return deltas

    def from_directions(self, directions: np.ndarray) -> np.ndarray:
        """The action that moves each control by ``directions`` (-1, 0, +1) steps."""
        directions = np.asarray(directions)
        if self.mode == "discrete":
            return (directions + 1).astype(np.int64)
        if self.mode == "discrete_flat":
            return ((directions + 1).astype(np.int64) * self._powers).sum(axis=-1)
        return directions.astype(np.float32)

    def from_delta(self, delta: np.ndarray) -> np.ndarray:
        """Nearest action to a physical change (continuous: exact up to one step)."""
        fraction = np.asarray(delta, dtype=np.float64) / self.steps
        if self.mode == "continuous":
            return np.clip(fraction, -1.0, 1.0).astype(np.float32)
        return self.from_directions(np.clip(np.rint(fraction), -1, 1).astype(np.int8))

    def keep(self, batch: int | None = None) -> np.ndarray:
        """The "keep every control" action (optionally as a batch)."""
        zeros = np.zeros(self.n_controls if batch is None else (batch, self.n_controls), np.int8)
        return self.from_directions(zeros)
