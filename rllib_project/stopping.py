"""When a trial stops: a budget runs out, or its policy is as good as asked.

Tune's dict stop criteria are OR-ed, one metric each; "as good as asked" needs two
metrics together (success rate *and* moves relative to the optimal planner), so this
is a small ``tune.Stopper`` that checks the budget limits and that target per result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ray import tune

ENV_STEPS = ("env_runners", "num_env_steps_sampled_lifetime")


@dataclass
class PlantStopper(tune.Stopper):
    training_iterations: int | None = None
    env_steps: int | None = None
    wall_time_s: float | None = None
    success_rate: float | None = None
    moves_ratio: float | None = None

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return self.out_of_budget(result) or self.target_met(result)

    def out_of_budget(self, result: dict[str, Any]) -> bool:
        steps = result.get(ENV_STEPS[0], {}).get(ENV_STEPS[1], 0)
        return (
            (
                self.training_iterations is not None
                and result.get("training_iteration", 0) >= self.training_iterations
            )
            or (self.env_steps is not None and steps >= self.env_steps)
            or (
                self.wall_time_s is not None and result.get("time_total_s", 0.0) >= self.wall_time_s
            )
        )

    def target_met(self, result: dict[str, Any]) -> bool:
        if self.success_rate is None:
            return False
        evaluation = result.get("evaluation", {})
        success = evaluation.get("success_rate_solvable", float("nan"))
        if not success >= self.success_rate:  # NaN (nothing solvable) never stops
            return False
        ratio = evaluation.get("moves_ratio", float("inf"))
        return self.moves_ratio is None or ratio <= self.moves_ratio

    def stop_all(self) -> bool:
        return False
