"""One line per trial when it starts training and when it ends, between Tune's tables.

Tune's progress table comes every 30 s and says PENDING until a trial reports; these
lines say at once that a trial is up (how long loading and set-up took, whether it
replayed the experiment's yardstick) and, at the end, what it reached in how much
wall time. The trial's names are those of the table.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

from rllib_project.metrics import (
    ALGORITHM,
    DATASET,
    ROWS_PLANNED,
    SETUP_SECONDS,
    START_SECONDS,
    TRAINING_ITERATION,
    TRIAL,
    WALL_SECONDS,
    evaluation_of,
)
from rllib_project.preparation import say
from rllib_project.stopping import trial_name


def _name(trial: Any, result: dict[str, Any]) -> str:
    return trial_name(
        str(result.get(ALGORITHM, "trial")), str(result.get(DATASET, "")), trial.trial_id
    )


def describe_start(name: str, result: dict[str, Any]) -> str:
    clock = result.get(TRIAL, {})
    planned = int(clock.get(ROWS_PLANNED, 0))
    yardstick = "yardstick replayed" if planned == 0 else f"planned {planned} rows itself"
    return (
        f"{name}: training (code loaded in {clock.get(START_SECONDS, float('nan')):.1f} s, "
        f"set up in {clock.get(SETUP_SECONDS, float('nan')):.1f} s, {yardstick})"
    )


def describe_end(name: str, result: dict[str, Any]) -> str:
    clock = result.get(TRIAL, {})
    evaluation = evaluation_of(result)
    reached = (
        ""
        if evaluation is None
        else f": success {evaluation.success_rate:.1%}, moves/opt {evaluation.moves_ratio:.2f}"
    )
    return (
        f"{name}: ended after {clock.get(WALL_SECONDS, float('nan')):.0f} s of wall time, "
        f"{result.get(TRAINING_ITERATION, 0)} iterations{reached}"
    )


class TrialLines(Callback):
    """Prints :func:`describe_start` at a trial's first result in this run and
    :func:`describe_end` when it completes."""

    def __init__(self) -> None:
        self._started: set[str] = set()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        if trial.trial_id not in self._started:
            self._started.add(trial.trial_id)
            say(describe_start(_name(trial, result), result))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        say(describe_end(_name(trial, result), result))
