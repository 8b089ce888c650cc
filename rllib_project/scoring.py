"""Score a policy on a fixed set of start rows against the optimal planner.

Used inside every Tune trial (to choose checkpoints) and by ``evaluate`` and the
report, so all three show the same numbers.

A trained policy is scored **as it is served**: under the advice's rule, the one
``recommend`` and the server apply (inside the band and staying there when nothing is
touched: keep every setting, :meth:`env.plant.Plant.holds`). What an operator is told
to do is what the checkpoint choice, the stopping target and the comparison judge; a
policy whose network would still nudge settings inside the band (its reward for
keeping there is only the small move cost higher) is not judged on moves it is never
allowed to advise. ``evaluate`` shows the network's own actions too (``NAME (raw)``).
Measured on the sample (branching DQN, 102,400 env steps): as served 100% success and
1.06x the planner's moves; its raw actions 96.0% and 2.08x, from settings nudged
inside the band until a reading left it (counted from the last entry).

The advice's other rule, "land" (``env.land_in_one_move``: on a plant without lag, a
move that lands in the band on the model replaces a policy's move that would not), is
**not** in the score: it would judge the model's one-step look-ahead instead of what
the policy learned. Scored with it (2026-11-29, ``scripts/bench_shapes.py``, 8 generated
shapes), trials met the stopping target early, with policies that alone reached e.g.
71.6% success at 1.36x the planner's moves (DQN, 2 controls) where the rule made 99.2%
at 1.04x, and Stable-Baselines3's untrained DQN scored 95% after 4 env steps
(``bench_train.py``). So the score judges the policy under the hold rule, trials learn
as long as before, and :meth:`PlantScorer.advised` gives the advice's figures
(``evaluate``'s ``NAME (advised)`` row, ``bench_shapes.py``'s second table). The same
holds for the move rule of a lagging plant, "centre" (``env.centre_settling``).

Metrics, all greedy and deterministic:

* ``success_rate``: reached the band within the horizon and ended inside it;
* ``success_rate_solvable``: the same over the rows the planner can solve;
* ``mean_moves_to_band``: over the episodes that reached the band;
* ``moves_ratio``: total moves to band ÷ the planner's, over rows both solve (1 = optimal);
* ``mean_actuations``: moves that changed a setting, per episode; ``actuations_ratio``:
  their total ÷ the planner's over the rows it solves (a policy that saws at the valves
  scores high);
* ``time_in_band``, ``mean_return``;
* ``score``: success rate with ties broken by mean return (see :func:`score`): a
  policy that solves one more row always scores higher, and among equally successful
  ones the one that gets there faster and stays. Checkpoints are ranked by it after
  the experiment's target (:func:`rllib_project.ranking.checkpoint_rank`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from env.baselines import FunctionPolicy, PlannerPolicy
from env.evaluation import (
    BatchPolicy,
    Rollouts,
    Summary,
    actuations_ratio,
    moves_ratio,
    rollout,
    start_pending,
    start_states,
    summarize,
)
from env.plant import Plant
from env.yardstick import Yardstick


def score(success_rate: float, mean_return: float, plant: Plant, n_rows: int) -> float:
    """Lexicographic (success, return) folded into one number for Tune.

    The return, normalised to [0, 1] by its bounds over the horizon, is divided by
    ``n_rows + 1``, so it can never outweigh one more successful row (1 / n_rows).
    """
    s = plant.settings
    worst = (
        -(s.out_of_band_penalty + s.distance_weight * s.distance_cap + s.move_cost)
        - plant.actuation_cost
    )
    horizon = s.horizon
    low, high = worst * horizon, s.in_band_reward * horizon
    normalised = float(np.clip((mean_return - low) / (high - low), 0.0, 1.0))
    return success_rate + normalised / (n_rows + 1)


@dataclass(frozen=True)
class PolicyMetrics(Summary):
    """A policy's scores on a scorer's start rows (see the module docstring).

    The evaluation every Tune result carries (as a dict of these fields, see
    :mod:`rllib_project.metrics`), the rows of ``evaluate`` and the manifest's entries.
    """

    moves_ratio: float
    """Total moves to band ÷ the planner's over rows both solve (1 = optimal; NaN if
    no row is shared, inf if the planner needs no move there but the policy moves)."""
    score: float
    actuations_ratio: float = dataclasses.field(default=float("nan"), kw_only=True)
    """Total actuations ÷ the planner's over the rows it solves (NaN: none)."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PolicyMetrics:
        """From a result's or manifest's dict; other keys (timings) are ignored, JSON's
        null (a NaN or inf written out) is read back as NaN."""
        fields: dict[str, Any] = {
            f.name: float("nan") if values.get(f.name) is None else values[f.name]
            for f in dataclasses.fields(cls)
        }
        return cls(**fields)

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


class PlantScorer:
    """Fixed start rows, their optimal move counts, and the metrics of any policy.

    With the experiment's ``yardstick`` (:mod:`env.yardstick`, holding at least
    ``rows``) the planner's moves are replayed from it instead of planned again.
    """

    def __init__(
        self,
        plant: Plant,
        action_mode: str,
        rows: np.ndarray,
        yardstick: Yardstick | None = None,
    ) -> None:
        self.plant = plant
        self.codec = plant.codec(action_mode)
        self.rows = np.asarray(rows)
        self.temperatures, self.controls = start_states(plant, self.rows)
        self.pending = start_pending(plant, self.rows)
        saved = None if yardstick is None else yardstick.select(self.rows)
        self.planner = PlannerPolicy(plant, self.codec, saved)
        self.planner_rollouts = self.rollouts(self.planner)
        self.optimal_moves = self.planner_rollouts.moves_to_band
        self.solvable = ~np.isnan(self.optimal_moves)

    def rollouts(
        self, policy: BatchPolicy, hold_in_band: bool = False, move_rule: bool = False
    ) -> Rollouts:
        """``policy`` from every start row; ``hold_in_band``: under the advice's rule,
        ``move_rule``: its move rule too ("land" or "centre", :func:`env.evaluation.rollout`)."""
        return rollout(
            self.plant,
            self.codec,
            policy,
            self.temperatures,
            self.controls,
            pending=self.pending,
            hold_in_band=hold_in_band,
            move_rule=move_rule,
        )

    def metrics(self, result: Rollouts) -> PolicyMetrics:
        summary = summarize(result, self.solvable)
        fields: dict[str, Any] = dataclasses.asdict(summary)
        return PolicyMetrics(
            **fields,
            moves_ratio=moves_ratio(result.moves_to_band, self.optimal_moves),
            score=score(summary.success_rate, summary.mean_return, self.plant, len(self.rows)),
            actuations_ratio=actuations_ratio(
                result.actuations, self.planner_rollouts.actuations, self.solvable
            ),
        )

    def evaluate(self, policy: BatchPolicy) -> PolicyMetrics:
        """``policy``'s metrics as it is served (under the advice's rule: module docstring)."""
        return self.metrics(self.rollouts(policy, hold_in_band=True))

    def advised(self, policy: BatchPolicy) -> PolicyMetrics:
        """The metrics of the advice built on ``policy``: :meth:`evaluate` plus the
        advice's move rule ("land" without lag, ``env.land_in_one_move``; "centre" on a
        lagging plant, ``env.centre_settling``), which the score leaves out (module
        docstring)."""
        return self.metrics(self.rollouts(policy, hold_in_band=True, move_rule=True))

    def evaluate_function(
        self, name: str, act: Callable[[np.ndarray], np.ndarray]
    ) -> PolicyMetrics:
        return self.evaluate(FunctionPolicy(name, act))
