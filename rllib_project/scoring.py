"""Score a policy on a fixed set of start rows against the optimal planner.

Used inside every Tune trial (to choose checkpoints) and by ``evaluate`` and the
report, so all three show the same numbers. Metrics, all greedy and deterministic:

* ``success_rate``: reached the band within the horizon and ended inside it;
* ``success_rate_solvable``: the same over the rows the planner can solve;
* ``mean_moves_to_band``: over the episodes that reached the band;
* ``moves_ratio``: total moves to band ÷ the planner's, over rows both solve (1 = optimal);
* ``time_in_band``, ``mean_return``;
* ``score``: success rate with ties broken by mean return (see :func:`score`). This is
  the checkpoint score: a checkpoint that solves one more row always wins, and among
  equally successful ones the one that gets there faster and stays wins.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from env.baselines import FunctionPolicy, PlannerPolicy
from env.evaluation import BatchPolicy, Rollouts, moves_ratio, rollout, start_states, summarize
from env.plant import Plant


def score(success_rate: float, mean_return: float, plant: Plant, n_rows: int) -> float:
    """Lexicographic (success, return) folded into one number for Tune.

    The return, normalised to [0, 1] by its bounds over the horizon, is divided by
    ``n_rows + 1``, so it can never outweigh one more successful row (1 / n_rows).
    """
    s = plant.settings
    worst = -(s.out_of_band_penalty + s.distance_weight * s.distance_cap + s.move_cost)
    horizon = s.horizon
    low, high = worst * horizon, s.in_band_reward * horizon
    normalised = float(np.clip((mean_return - low) / (high - low), 0.0, 1.0))
    return success_rate + normalised / (n_rows + 1)


class PlantScorer:
    """Fixed start rows, their optimal move counts, and the metrics of any policy."""

    def __init__(self, plant: Plant, action_mode: str, rows: np.ndarray) -> None:
        self.plant = plant
        self.codec = plant.codec(action_mode)
        self.rows = np.asarray(rows)
        self.temperatures, self.controls = start_states(plant, self.rows)
        self.planner_rollouts = self.rollouts(PlannerPolicy(plant, self.codec))
        self.optimal_moves = self.planner_rollouts.moves_to_band
        self.solvable = ~np.isnan(self.optimal_moves)

    def rollouts(self, policy: BatchPolicy) -> Rollouts:
        return rollout(self.plant, self.codec, policy, self.temperatures, self.controls)

    def metrics(self, result: Rollouts) -> dict[str, float]:
        summary = summarize(result, self.solvable)
        summary.setdefault("success_rate_solvable", float("nan"))
        summary["moves_ratio"] = moves_ratio(result.moves_to_band, self.optimal_moves)
        summary["score"] = score(
            summary["success_rate"], summary["mean_return"], self.plant, len(self.rows)
        )
        return summary

    def evaluate(self, policy: BatchPolicy) -> dict[str, float]:
        return self.metrics(self.rollouts(policy))

    def evaluate_function(self, name: str, act: Callable[[np.ndarray], np.ndarray]) -> dict:
        return self.evaluate(FunctionPolicy(name, act))
