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
from env.evaluation import start_pending, start_states
from env.planner import plan_rows
from env.plant import Plant
from env.yardstick import Yardstick, planning_mode


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
    instead, with the offset the observation shows (the start's, as in the
    environment, or a disturbance observer's estimate in a closed loop). Ties (for instance
    every move that stays inside the band) go to the fewest controls moved, so "keep"
    wins inside the band.
    """

    name = "greedy"

    def __init__(self, plant: Plant, codec: ActionCodec) -> None:
        self.plant = plant
        self.codec = codec
        self.directions = candidate_directions(plant.n_controls)
        self._effort = np.abs(self.directions).sum(axis=1)

    def reset(
        self, temperatures: np.ndarray, controls: np.ndarray, pending: np.ndarray | None = None
    ) -> None:
        """Nothing to remember: the offset is read from each observation."""

    def act(
        self, obs: np.ndarray, temperatures: np.ndarray, controls: np.ndarray, t: int
    ) -> np.ndarray:
        plant = self.plant
        candidates = plant.apply_delta(controls[:, None, :], self.directions * plant.steps)
        if plant.lagging:
            # the offset the observation shows: the start's, or a disturbance
            # observer's current estimate where one runs (env.observer)
            offset = plant.settle_seen(obs) - plant.model.predict(controls)
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
    """Replays the optimal plan of each start state, then keeps.

    Planning every start row takes from a fraction of a second to seconds, so a
    ``yardstick`` (the plans of a set of start rows, saved once per experiment,
    :mod:`env.yardstick`) can be given: when the policy is reset with exactly those
    rows' start states it replays the saved per-move changes and plans nothing.
    Any other start states are planned as usual.
    """

    name = "planner"

    def __init__(
        self, plant: Plant, codec: ActionCodec, yardstick: Yardstick | None = None
    ) -> None:
        self.plant = plant
        self.codec = codec
        if yardstick is not None and yardstick.mode != planning_mode(codec.mode):
            raise ValueError(
                f"a {yardstick.mode} yardstick cannot replay {codec.mode} actions "
                f"(needs {planning_mode(codec.mode)})"
            )
        self.yardstick = yardstick
        self.replayed = False
        """Whether the last reset replayed the yardstick (False: it planned)."""
        self.exact = np.zeros(0, dtype=bool)
        """Per start state of the last reset: the plan's move count is proven minimal."""
        self._schedule = np.zeros((0, 0, codec.n_controls))

    def _is_yardstick_start(
        self, temperatures: np.ndarray, controls: np.ndarray, pending: np.ndarray | None
    ) -> bool:
        """Whether these start states are the saved yardstick's rows, settings in flight
        included (the yardstick was planned from the rows' logged moves in flight)."""
        saved = self.yardstick
        if saved is None or len(saved.rows) != len(temperatures):
            return False
        # the rows' episode starts as the scorer builds them (one definition: on a log
        # with dynamics an episode starts from the settings before its row)
        saved_temperatures, saved_controls = start_states(self.plant, saved.rows)
        saved_pending = start_pending(self.plant, saved.rows)
        same_pending = (
            saved_pending.size == 0 if pending is None else np.array_equal(saved_pending, pending)
        )
        return bool(
            np.array_equal(saved_temperatures, temperatures)
            and np.array_equal(saved_controls, controls)
            and same_pending
        )

    def reset(
        self, temperatures: np.ndarray, controls: np.ndarray, pending: np.ndarray | None = None
    ) -> None:
        temperatures, controls = np.asarray(temperatures), np.asarray(controls)
        self.replayed = self._is_yardstick_start(temperatures, controls, pending)
        if self.yardstick is not None and self.replayed:
            moves, deltas = self.yardstick.moves, list(self.yardstick.deltas)
            self.exact = self.yardstick.exact.copy()
        else:
            # all start states in one batch: the planner shares its searches across rows
            mode = planning_mode(self.codec.mode)
            plans = plan_rows(self.plant, temperatures, controls, mode, pending=pending)
            moves = np.array([np.nan if p.moves is None else p.moves for p in plans])
            deltas = [p.deltas for p in plans]
            self.exact = np.array([p.exact for p in plans], dtype=bool)
        # (rows, longest plan, k): move t of every row at once; rows past their plan keep.
        # A plan's deltas may outlast its move count (on a lagging plant moves count
        # until the temperature stays in the band; later moves hold it there).
        plans_of = [
            # a saved yardstick's empty plan (a row already in the band) reads back as []
            np.zeros((0, self.codec.n_controls))
            if np.isnan(count)
            else np.asarray(plan, dtype=np.float64).reshape(-1, self.codec.n_controls)
            for count, plan in zip(moves, deltas, strict=True)
        ]
        longest = max((len(plan) for plan in plans_of), default=0)
        schedule = np.zeros((len(moves), longest, self.codec.n_controls))
        for i, plan in enumerate(plans_of):
            schedule[i, : len(plan)] = plan
        self._schedule = schedule

    def act(
        self, obs: np.ndarray, temperatures: np.ndarray, controls: np.ndarray, t: int
    ) -> np.ndarray:
        schedule = self._schedule
        deltas = (
            schedule[:, t] if t < schedule.shape[1] else np.zeros((len(obs), schedule.shape[2]))
        )
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


def baseline_policies(
    plant: Plant, codec: ActionCodec, seed: int = 0, yardstick: Yardstick | None = None
) -> list:
    """The four yardsticks, planner first (replaying ``yardstick`` where it applies)."""
    return [
        PlannerPolicy(plant, codec, yardstick),
        GreedyLookaheadPolicy(plant, codec),
        DoNothingPolicy(codec),
        RandomPolicy(codec, seed),
    ]
