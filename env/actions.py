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

Actions outside the mode's space are refused with a ``ValueError`` naming the action and
the space: integers out of range, wrong shapes, non-integer discrete actions, and
continuous values that are not finite or lie beyond +/-1 (up to
:data:`CONTINUOUS_TOLERANCE` of float round-off is clipped to +/-1, since RLlib's
unsquashing and float64 policy arithmetic can land a hair outside). A refused action
changes nothing, so no NaN and no wrapped-around index ever reaches the plant.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, Literal

import numpy as np
from gymnasium import spaces

ActionMode = Literal["discrete", "discrete_flat", "continuous"]
ACTION_MODES: tuple[ActionMode, ...] = ("discrete", "discrete_flat", "continuous")
MAX_FLAT_CONTROLS = 10
"""``Discrete(3**k)`` beyond 10 controls (59,049 actions) is not a sensible DQN head."""
CONTINUOUS_TOLERANCE = 1e-6
"""Continuous values up to this far beyond +/-1 are taken as +/-1: float round-off of a
policy's own arithmetic (a float64 tanh, an unsquash) must not be refused. Anything
further out is refused, like NaN and infinity."""
_CONTINUOUS_LIMIT = 1.0 + CONTINUOUS_TOLERANCE
_INTEGER_SCALARS = frozenset({int, *(np.dtype(code).type for code in "bhilqpBHILQP")})
"""Python's int and NumPy's integer scalar types (bool excluded): one set look-up per step."""


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
    """Encode, decode and check actions of one mode for controls with the given steps.

    Every decoding method refuses an action outside :attr:`space` with a ``ValueError``
    naming the action and the space, as Gymnasium's own environments do: an integer
    out of range would otherwise wrap around (``-1`` is the last flat action) or move a
    control several steps, and a NaN would poison the temperature for the rest of the
    episode.
    """

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
        self._shape = (self.n_controls,)
        self._n_flat = 3**self.n_controls
        self._steps_list = self.steps.tolist()
        self._discrete_tables = [{0: -step, 1: 0.0, 2: step} for step in self._steps_list]
        self._flat_list = None if self._flat_deltas is None else self._flat_deltas.tolist()

    @functools.cached_property
    def space(self) -> spaces.Space:
        k = self.n_controls
        if self.mode == "discrete":
            return spaces.MultiDiscrete(np.full(k, 3, dtype=np.int64))
        if self.mode == "discrete_flat":
            return spaces.Discrete(3**k)
        return spaces.Box(-1.0, 1.0, shape=(k,), dtype=np.float32)

    # ------------------------------------------------------------------ checks
    def _refuse(self, action: Any, why: str) -> ValueError:
        return ValueError(f"action {action!r} is not in the action space {self.space}: {why}")

    def _discrete_deltas(self, action: Any) -> list[float]:
        """One ``discrete`` action's deltas, refused unless the action is in ``{0, 1, 2}^k``.

        One dict per control maps 0/1/2 to its change, so the look-up that decodes the
        action also rejects any other value (a KeyError), at no extra cost per step.
        """
        array = action if isinstance(action, np.ndarray) else np.asarray(action)
        if array.dtype.kind not in "iu":
            raise self._refuse(action, "expected integers 0, 1 or 2 (decrease, keep, increase)")
        if array.shape != self._shape:
            raise self._refuse(action, f"expected shape {self._shape}, got {array.shape}")
        try:
            tables = self._discrete_tables
            return [table[v] for table, v in zip(tables, array.tolist(), strict=True)]
        except KeyError:
            raise self._refuse(
                action, "each value must be 0, 1 or 2 (decrease, keep, increase)"
            ) from None

    def _flat_index(self, action: Any) -> int:
        """One ``discrete_flat`` action as a Python int, refused unless in ``[0, 3**k)``."""
        if type(action) in _INTEGER_SCALARS or (
            isinstance(action, np.ndarray) and action.shape == () and action.dtype.kind in "iu"
        ):
            index = int(action)
        else:
            raise self._refuse(action, "expected one integer")
        if not 0 <= index < self._n_flat:
            raise self._refuse(action, f"expected an integer from 0 to {self._n_flat - 1}")
        return index

    def _continuous_values(self, action: Any) -> list[float]:
        """One ``continuous`` action as Python floats in [-1, 1] (see CONTINUOUS_TOLERANCE)."""
        array = action if isinstance(action, np.ndarray) else np.asarray(action)
        if array.dtype.kind not in "fiu":
            raise self._refuse(action, "expected real numbers")
        if array.shape != self._shape:
            raise self._refuse(action, f"expected shape {self._shape}, got {array.shape}")
        values = array.tolist()
        limit = _CONTINUOUS_LIMIT
        for value in values:
            if not -limit <= value <= limit:  # also catches NaN
                raise self._refuse(action, "values must be finite and within [-1, 1]")
        return values

    def check_batch(self, actions: Any) -> np.ndarray:
        """A batch of actions (leading axes) as an array, refused if any is outside the
        space; continuous values within the tolerance beyond +/-1 are clipped."""
        array = np.asarray(actions)
        if self.mode == "discrete_flat":
            if array.dtype.kind not in "iu":
                raise self._refuse(actions, "expected integers")
            bad = (array < 0) | (array >= self._n_flat)
            why = f"expected integers from 0 to {self._n_flat - 1}"
        elif array.shape[-1:] != self._shape:
            raise self._refuse(actions, f"expected shape (..., {self.n_controls})")
        elif self.mode == "discrete":
            if array.dtype.kind not in "iu":
                raise self._refuse(actions, "expected integers 0, 1 or 2")
            bad = ((array < 0) | (array > 2)).any(axis=-1)
            why = "each value must be 0, 1 or 2 (decrease, keep, increase)"
        else:
            if array.dtype.kind not in "fiu":
                raise self._refuse(actions, "expected real numbers")
            bad = (~(np.abs(array) <= _CONTINUOUS_LIMIT)).any(axis=-1)
            why = "values must be finite and within [-1, 1]"
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise self._refuse(array[first], f"{why} (at batch index {first})")
        return np.clip(array, -1.0, 1.0) if self.mode == "continuous" else array

    # ------------------------------------------------------------------ decoding
    def to_delta(self, action: np.ndarray | int) -> np.ndarray:
        """Physical change of each control, shape (..., k), for one action or a batch."""
        action = self.check_batch(action)
        if self.mode == "discrete_flat":
            return self._flat_deltas[action.astype(np.intp)]  # type: ignore[index]
        if self.mode == "discrete":
            return (action.astype(np.float64) - 1.0) * self.steps
        fraction = action.astype(np.float64)
        if self.deadband > 0.0:
            fraction = np.where(np.abs(fraction) < self.deadband, 0.0, fraction)
        return fraction * self.steps

    def to_delta_scalar(self, action: Any) -> list[float]:
        """Python-float twin of :meth:`to_delta` for one action (the env's hot path)."""
        if self.mode == "discrete_flat":
            return self._flat_list[self._flat_index(action)]  # type: ignore[index]
        if self.mode == "discrete":
            return self._discrete_deltas(action)
        deadband = self.deadband
        deltas = []
        for a, s in zip(self._continuous_values(action), self._steps_list, strict=True):
            a = -1.0 if a < -1.0 else 1.0 if a > 1.0 else float(a)
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
