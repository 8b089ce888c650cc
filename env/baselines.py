"""Reference policies every trained agent is measured against.

* :class:`DoNothingPolicy`: never touches a control (what happens without an agent);
* :class:`RandomPolicy`: uniform random actions (the floor);
* :class:`GreedyLookaheadPolicy`: the move whose *predicted* next reading is closest to
  the band, using the model one move ahead (a sensible hand-written rule); on a lagging
  plant, the move whose settling temperature is closest to the band (the next reading
  there depends little, or with a dead time not at all, on the move);
* :class:`PlannerPolicy`: replays the optimal planner's move sequence, then keeps
  (the ceiling: :mod:`env.planner`).

All follow :class:`env.evaluation.BatchPolicy` and act on batches.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from env.actions import ActionCodec, candidate_directions
from env.planner import Plan, plan_rows
from env.plant import Plant


class DoNothingPolicy:
    """Keep every control where it is."""

    name = "do-nothing"

    def __init__(self, codec: ActionCodec) -> None:
        self.codec = codec

    def reset(
        self, temperatures: np.ndarray, controls: np.ndarray, pending: np.ndarray | None = None
    ) -> None:
        del temperatures, controls, pending

    def act(
        self, obs: np.ndarray, temperatures: np.ndarray, controls: np.ndarray, t: int
    ) -> np.ndarray:
        return self.codec.keep(len(obs))


class RandomPolicy:
    """Uniformly random actions from the action space, seeded."""

    name = "random"

    def __init__(self, codec: ActionCodec, seed: int = 0) -> None:
        self.codec = codec
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def reset(
        self, temperatures: np.ndarray, controls: np.ndarray, pending: np.ndarray | None = None
    ) -> None:
        self.rng = np.random.default_rng(self.seed)

    def act(
        self, obs: np.ndarray, temperatures: np.ndarray, controls: np.ndarray, t: int
    ) -> np.ndarray:
        n, k = len(obs), self.codec.n_controls
        if self.codec.mode == "continuous":
            return self.rng.uniform(-1.0, 1.0, size=(n, k)).astype(np.float32)
        return self.codec.from_directions(self.rng.integers(-1, 2, size=(n, k)))


class GreedyLookaheadPolicy:
    """One-move look-ahead on the model: minimise the predicted distance to the band.

    The next reading is predicted as ``T + (f(u') - f(u))``: the model's *change*
    applied to the current reading, which needs no knowledge of the row's offset.
    On a lagging plant the target is the settling temperature ``f(u') + offset``
    instead (the offset fixed at the start, as in the environment). Ties (for instance
    every move that stays inside the band) go to the fewest controls moved, so "keep"
    wins inside the band.
    """

    name = "greedy"

    def __init__(self, plant: Plant, codec: ActionCodec) -> None:
        self.plant = plant
        self.codec = codec
        self.directions = candidate_directions(plant.n_controls)
        self._effort = np.abs(self.directions).sum(axis=1)
        self._offset: np.ndarray | None = None

    def reset(
        self, temperatures: np.ndarray, controls: np.ndarray, pending: np.ndarray | None = None
    ) -> None:
        self._offset = self.plant.offset_for(temperatures, controls)

    def act(
        self, obs: np.ndarray, temperatures: np.ndarray, controls: np.ndarray, t: int
    ) -> np.ndarray:
        plant = self.plant
        candidates = plant.apply_delta(controls[:, None, :], self.directions * plant.steps)
        if plant.lagging:
            offset = (
                self._offset
                if self._offset is not None
                else plant.offset_for(temperatures, controls)
            )
            predicted = plant.model.predict(candidates) + offset[:, None]
        else:
            change = plant.model.predict(candidates) - plant.model.predict(controls)[:, None]
            predicted = temperatures[:, None] + change
        gap = np.abs(plant.distance_to_band(predicted))
        # lexicographic: smallest gap first, then fewest controls moved
        score = gap * (1.0 + self._effort.max()) + self._effort
        best = self.directions[np.argmin(score, axis=1)]
        return self.codec.from_directions(best)


class PlannerPolicy:
    """Replays the optimal plan of each start state, then keeps."""

    name = "planner"

    def __init__(self, plant: Plant, codec: ActionCodec) -> None:
        self.plant = plant
        self.codec = codec
        self.plans: list[Plan] = []

    @property
    def _planning_mode(self) -> str:
        return "continuous" if self.codec.mode == "continuous" else "discrete"

    def plan(self, temperature: float, controls: np.ndarray) -> Plan:
        return plan_rows(self.plant, [temperature], [controls], self._planning_mode)[0]

    def reset(
        self, temperatures: np.ndarray, controls: np.ndarray, pending: np.ndarray | None = None
    ) -> None:
        # all start states in one batch: the planner shares its searches across rows
        self.plans = plan_rows(
            self.plant, temperatures, controls, self._planning_mode, pending=pending
        )

    def act(
        self, obs: np.ndarray, temperatures: np.ndarray, controls: np.ndarray, t: int
    ) -> np.ndarray:
        deltas = np.zeros((len(self.plans), self.codec.n_controls))
        for i, plan in enumerate(self.plans):
            if plan.moves is not None and t < len(plan.deltas):
                deltas[i] = plan.deltas[t]
        if self.codec.mode == "continuous":
            return self.codec.from_delta(deltas)
        return self.codec.from_directions(np.sign(np.round(deltas / self.plant.steps, 9)))


class FunctionPolicy:
    """Adapts ``obs batch -> action batch`` (a trained network) to BatchPolicy."""

    def __init__(self, name: str, function: Callable[[np.ndarray], np.ndarray]) -> None:
        self.name = name
        self.function = function

    def reset(
        self, temperatures: np.ndarray, controls: np.ndarray, pending: np.ndarray | None = None
    ) -> None:
        del temperatures, controls, pending

    def act(
        self, obs: np.ndarray, temperatures: np.ndarray, controls: np.ndarray, t: int
    ) -> np.ndarray:
        return self.function(obs)


def baseline_policies(plant: Plant, codec: ActionCodec, seed: int = 0) -> list:
    """The four yardsticks, planner first."""
    return [
        PlannerPolicy(plant, codec),
        GreedyLookaheadPolicy(plant, codec),
        DoNothingPolicy(codec),
        RandomPolicy(codec, seed),
    ]
