"""The trial stopper: budgets, and the planner-relative target (success AND moves)."""

from __future__ import annotations

from rllib_project.stopping import PlantStopper


def result(iteration=1, steps=0, seconds=0.0, success=0.0, ratio=2.0) -> dict:
    return {
        "training_iteration": iteration,
        "time_total_s": seconds,
        "env_runners": {"num_env_steps_sampled_lifetime": steps},
        "evaluation": {"success_rate_solvable": success, "moves_ratio": ratio},
    }


def test_budgets_stop_each_on_its_own() -> None:
    assert PlantStopper(training_iterations=3)("t", result(iteration=3))
    assert not PlantStopper(training_iterations=3)("t", result(iteration=2))
    assert PlantStopper(env_steps=1000)("t", result(steps=1000))
    assert PlantStopper(wall_time_s=60)("t", result(seconds=60.5))
    assert not PlantStopper(wall_time_s=60)("t", result(seconds=59))


def test_target_needs_success_and_moves_together() -> None:
    stopper = PlantStopper(wall_time_s=600, success_rate=0.99, moves_ratio=1.05)
    assert not stopper("t", result(success=1.0, ratio=1.2))  # solves, but slowly
    assert not stopper("t", result(success=0.95, ratio=1.0))  # fast, but misses rows
    assert stopper("t", result(success=0.99, ratio=1.05))
    assert PlantStopper(success_rate=0.9)("t", result(success=0.91, ratio=9.0))


def test_nothing_solvable_never_counts_as_success() -> None:
    assert not PlantStopper(success_rate=0.5)("t", result(success=float("nan"), ratio=1.0))
