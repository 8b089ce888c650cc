"""When a trial stops: a budget runs out, its policy is as good as asked, or it is told to.

Tune's dict stop criteria are OR-ed, one metric each; "as good as asked" needs two
metrics together (success rate *and* moves relative to the optimal planner), so this
is a small ``tune.Stopper`` that checks the budget limits and that target per result.

**Wall time.** ``wall_time_s`` bounds the trial's *wall* time: set-up, training,
evaluation and checkpoints, as the trial's own clock counts it (``trial/wall_s``;
Tune's ``time_total_s`` counts only the time inside iterations, so a 240 s budget
became 414 s of wall time on a 6-control plant). A stopper can only act between
iterations, so it stops a trial when the *next* iteration would end past the budget,
taking the last one's wall time as the estimate: trials end at or just under their
budget instead of an iteration over it.

It also honours a **finish request** (:mod:`rllib_project.finish_request`: the
trials, algorithms or datasets ``rllib-project tune --finish DIR`` names). A
trial it names stops after its current iteration as if its budget had run out: it
counts as finished, so once every trial has ended the run writes ``best.json`` from
the checkpoints kept so far. Trials not started yet run one iteration first. A request
stays in force: a run resumed later honours it too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray import tune

from rllib_project.experiment import StopSettings
from rllib_project.finish_request import EVERY_TRIAL, FINISH_REQUEST, read_finish_request
from rllib_project.metrics import (
    ALGORITHM,
    DATASET,
    TIME_TOTAL_S,
    TRAINING_ITERATION,
    env_steps,
    evaluation_of,
    trial_wall_seconds,
)
from rllib_project.ranking import target_met


def trial_name(algorithm: str, dataset: str, trial_id: str) -> str:
    """A trial's name: its folder, its row in the progress table, its finish-request name."""
    return f"{algorithm}_{dataset}_{trial_id}"


@dataclass
class PlantStopper(tune.Stopper):
    """The experiment file's ``stop`` settings, plus the finish request.

    Tune pickles it with the Tuner and ``Tuner.restore`` brings it back as it was, so
    ``experiment_dir`` is the folder the run was started in: a finish request for a
    run resumed from a moved folder goes to the original path.
    """

    training_iterations: int | None = None
    env_steps: int | None = None
    wall_time_s: float | None = None
    success_rate: float | None = None
    moves_ratio: float | None = None
    actuations_ratio: float | None = None
    experiment_dir: str | None = None
    """Where to look for a finish request (None: never look)."""
    _request: tuple[tuple[int, ...], frozenset[str] | None] = field(default=((), None), repr=False)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return (
            self.out_of_budget(result)
            or self.target_met(result)
            or self.finish_requested(trial_id, result)
        )

    def out_of_budget(self, result: Mapping[str, Any]) -> bool:
        return (
            (
                self.training_iterations is not None
                and result.get(TRAINING_ITERATION, 0) >= self.training_iterations
            )
            or (self.env_steps is not None and env_steps(result) >= self.env_steps)
            or self.out_of_wall_time(result)
        )

    def out_of_wall_time(self, result: Mapping[str, Any]) -> bool:
        """The next iteration, as long as the last one, would end past the budget."""
        if self.wall_time_s is None:
            return False
        clock = trial_wall_seconds(result)
        if clock is None:  # a result without the trial's own clock: Tune's training time
            return float(result.get(TIME_TOTAL_S, 0.0)) >= self.wall_time_s
        wall, last_step = clock
        return wall + last_step >= self.wall_time_s

    def target_met(self, result: Mapping[str, Any]) -> bool:
        evaluation = evaluation_of(result)
        if self.success_rate is None or evaluation is None:
            return False
        target = StopSettings(
            success_rate=self.success_rate,
            moves_ratio=self.moves_ratio,
            actuations_ratio=self.actuations_ratio,
        )
        return target_met(target, evaluation)

    def finish_requested(self, trial_id: str, result: Mapping[str, Any]) -> bool:
        names = self._finish_request()
        if names is None:
            return False
        algorithm, dataset = str(result.get(ALGORITHM, "")), str(result.get(DATASET, ""))
        own = {EVERY_TRIAL, algorithm, dataset, trial_name(algorithm, dataset, trial_id)}
        return bool(own & names)

    def _finish_request(self) -> frozenset[str] | None:
        """The request file's names, read again only when the file changed."""
        if self.experiment_dir is None:
            return None
        directory = Path(self.experiment_dir)
        try:
            stat = os.stat(directory / FINISH_REQUEST)
        except FileNotFoundError:
            return None
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # a rewrite is a new inode
        if stamp != self._request[0]:
            self._request = (stamp, read_finish_request(directory))
        return self._request[1]

    def stop_all(self) -> bool:
        return False
