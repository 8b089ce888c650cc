"""The trial stopper: budgets, the planner-relative target (success AND moves), and
finish requests."""

from __future__ import annotations

from pathlib import Path

from rllib_project.finish_request import (
    EVERY_TRIAL,
    FINISH_REQUEST,
    read_finish_request,
    request_finish,
)
from rllib_project.metrics import (
    ALGORITHM,
    DATASET,
    ENV_RUNNER_RESULTS,
    EVALUATION,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    STEP_WALL_SECONDS,
    TIME_TOTAL_S,
    TRAINING_ITERATION,
    TRIAL,
    WALL_SECONDS,
)
from rllib_project.stopping import PlantStopper


def result(
    iteration=1, steps=0, seconds=0.0, success=0.0, ratio=2.0, algorithm="PPO", dataset="a"
) -> dict:
    """A trial result as Tune hands it to the stopper (evaluation fields left out: NaN)."""
    return {
        DATASET: dataset,
        TRAINING_ITERATION: iteration,
        TIME_TOTAL_S: seconds,
        ENV_RUNNER_RESULTS: {NUM_ENV_STEPS_SAMPLED_LIFETIME: steps},
        EVALUATION: {"success_rate_solvable": success, "moves_ratio": ratio},
        ALGORITHM: algorithm,
    }


def test_budgets_stop_each_on_its_own() -> None:
    assert PlantStopper(training_iterations=3)("t", result(iteration=3))
    assert not PlantStopper(training_iterations=3)("t", result(iteration=2))
    assert PlantStopper(env_steps=1000)("t", result(steps=1000))
    assert PlantStopper(wall_time_s=60)("t", result(seconds=60.5))
    assert not PlantStopper(wall_time_s=60)("t", result(seconds=59))


def test_wall_time_counts_the_trials_own_clock_and_the_next_iteration() -> None:
    """With the trial's wall clock in the result, Tune's training time is not what
    counts (it leaves out set-up); a trial stops before an iteration that would end
    past the budget."""
    stopper = PlantStopper(wall_time_s=60)

    def clocked(wall: float, step: float) -> dict:
        return {**result(seconds=1.0), TRIAL: {WALL_SECONDS: wall, STEP_WALL_SECONDS: step}}

    assert stopper("t", clocked(wall=55.0, step=5.0))  # the next one would end at 60
    assert not stopper("t", clocked(wall=50.0, step=5.0))
    assert stopper("t", clocked(wall=61.0, step=0.0))  # set-up alone took it over
    # training time alone (1 s) would never have stopped it
    assert not PlantStopper(wall_time_s=60)("t", result(seconds=1.0))


def test_target_needs_success_and_moves_together() -> None:
    stopper = PlantStopper(wall_time_s=600, success_rate=0.99, moves_ratio=1.05)
    assert not stopper("t", result(success=1.0, ratio=1.2))  # solves, but slowly
    assert not stopper("t", result(success=0.95, ratio=1.0))  # fast, but misses rows
    assert stopper("t", result(success=0.99, ratio=1.05))
    assert PlantStopper(success_rate=0.9)("t", result(success=0.91, ratio=9.0))


def test_target_with_actuations_needs_few_setting_changes_too() -> None:
    stopper = PlantStopper(success_rate=0.98, moves_ratio=1.1, actuations_ratio=1.2)
    chattering = result(success=1.0, ratio=1.0)
    chattering[EVALUATION]["actuations_ratio"] = 2.5
    assert not stopper("t", chattering)
    calm = result(success=1.0, ratio=1.0)
    calm[EVALUATION]["actuations_ratio"] = 1.2
    assert stopper("t", calm)
    assert not stopper("t", result(success=1.0, ratio=1.0))  # not measured (NaN): not met


def test_nothing_solvable_never_counts_as_success() -> None:
    assert not PlantStopper(success_rate=0.5)("t", result(success=float("nan"), ratio=1.0))


def test_finish_request_stops_the_trials_it_names(tmp_path: Path) -> None:
    stopper = PlantStopper(training_iterations=10**6, experiment_dir=str(tmp_path))
    ppo, sac = result(algorithm="PPO"), result(algorithm="SAC")
    assert not stopper("a_00000", ppo)  # no request yet
    request_finish(tmp_path, ["PPO_a_b_00001"])  # one trial, by its name
    assert stopper("b_00001", ppo) and not stopper("a_00000", ppo)
    request_finish(tmp_path, ["SAC"])  # every trial of an algorithm
    assert stopper("c_00002", sac) and not stopper("a_00000", ppo)
    request_finish(tmp_path, ["other"])  # every trial on a dataset
    assert stopper("d_00003", result(dataset="other")) and not stopper("a_00000", ppo)
    request_finish(tmp_path)  # everything
    assert stopper("a_00000", ppo)
    assert read_finish_request(tmp_path) == {"PPO_a_b_00001", "SAC", "other", EVERY_TRIAL}


def test_an_empty_request_file_means_every_trial_and_none_is_never_read(tmp_path: Path) -> None:
    (tmp_path / FINISH_REQUEST).touch()  # `touch DIR/finish_request.txt` works too
    assert PlantStopper(training_iterations=5, experiment_dir=str(tmp_path))("t", result())
    assert not PlantStopper(training_iterations=5)("t", result())  # not told where to look
