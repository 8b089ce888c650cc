"""Early stopping of poor trials in a search: Tune's ASHA, one per dataset x algorithm.

With ``scheduler: {kind: asha}`` in the experiment file, Tune's
``AsyncHyperBandScheduler`` (asynchronous successive halving) watches every trial's
evaluation score (``evaluation/score``) and, at each rung
(``grace_period``, then ``reduction_factor`` times further, in ``time_attr`` units),
stops a trial that is below the top ``1/reduction_factor`` of the trials that reached
that rung before it. A cluster run can then try many search-space samples and spend
its time on the promising ones.

One ASHA for all trials would compare unlike things: a SAC trial with a PPO trial
(they learn at different paces), a trial on an easy plant with one on a hard plant.
:class:`PerGroupASHA` therefore keeps one ASHA per dataset x algorithm and hands each
trial's events to its group's. The best checkpoint per dataset x algorithm is still
chosen over every trial, those meeting the target first, then by the evaluation score
(:mod:`rllib_project.run_records`). A trial meeting the target stops there, so the
scheduler compares by the score alone.

How it combines with the rest of a run:

* the project's stopper (budget, target, ``tune --finish``) is asked first, by Tune
  itself, on every result; the scheduler decides only for trials the stopper lets go
  on, so a finish request always ends a trial, and a trial at its budget is never kept;
* a trial stopped by the scheduler ends like a finished one (its checkpoints are kept
  and count for ``best.json``); ``--resume`` restarts the scheduler's bookkeeping from
  the trials' results after the restore, the stopper's budgets stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from rllib_project.experiment import SchedulerSettings, StopSettings
from rllib_project.metrics import ENV_STEPS, SCORE, TIME_TOTAL_S, TRAINING_ITERATION
from rllib_project.trial_config import TrialConfig

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

TIME_ATTRIBUTES = {
    "training_iteration": TRAINING_ITERATION,
    "env_steps": ENV_STEPS,
    "time_total_s": TIME_TOTAL_S,
}
"""The experiment file's ``scheduler.time_attr`` -> the (flattened) result key."""
UNLIMITED = 1e15
"""``max_t`` when neither the file nor the stop budget gives one (ASHA needs a number)."""


@dataclass(frozen=True)
class AshaArguments:
    """The arguments of each group's ``AsyncHyperBandScheduler``."""

    time_attr: str
    max_t: float
    grace_period: float
    reduction_factor: float


def asha_arguments(settings: SchedulerSettings, stop: StopSettings) -> AshaArguments:
    """ASHA's arguments from the file; ``max_t`` defaults to the stop budget in the same
    unit (past it the stopper ends the trial anyway), else unlimited."""
    budgets = {
        "training_iteration": stop.training_iterations,
        "env_steps": stop.env_steps,
        "time_total_s": stop.wall_time_s,
    }
    max_t = settings.max_t or budgets[settings.time_attr] or UNLIMITED
    return AshaArguments(
        TIME_ATTRIBUTES[settings.time_attr],
        float(max(max_t, settings.grace_period)),
        float(settings.grace_period),
        float(settings.reduction_factor),
    )


def group_of(trial: Trial) -> str:
    """The competition a trial is in: its dataset and algorithm."""
    config = TrialConfig.from_tune(trial.config)
    return f"{config.dataset}/{config.algorithm_name}"


class PerGroupASHA(FIFOScheduler):
    """One ASHA per dataset x algorithm (see the module docstring); trials start in
    submission order, as with Tune's default scheduler."""

    def __init__(self, arguments: AshaArguments) -> None:
        super().__init__()
        self.arguments = arguments
        self.groups: dict[str, AsyncHyperBandScheduler] = {}
        self._metric = SCORE

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """The score is fixed here; Tune's own ``metric``/``mode`` stay unset."""
        return metric in (None, SCORE) and mode in (None, "max")

    def _asha(self, trial: Trial) -> AsyncHyperBandScheduler:
        group = group_of(trial)
        if group not in self.groups:
            a = self.arguments
            self.groups[group] = AsyncHyperBandScheduler(
                time_attr=a.time_attr,
                metric=SCORE,
                mode="max",
                max_t=a.max_t,  # type: ignore[arg-type]  # Tune takes floats (env steps, s)
                grace_period=a.grace_period,  # type: ignore[arg-type]
                reduction_factor=a.reduction_factor,
            )
        return self.groups[group]

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self._asha(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        return self._asha(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        self._asha(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._asha(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return f"ASHA per dataset x algorithm ({len(self.groups)} group(s))"


def build_scheduler(settings: SchedulerSettings | None, stop: StopSettings) -> TrialScheduler:
    """The run's trial scheduler: Tune's FIFO default, or ASHA per group."""
    if settings is None:
        return FIFOScheduler()
    return PerGroupASHA(asha_arguments(settings, stop))
