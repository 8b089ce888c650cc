"""ASHA per dataset x algorithm: Tune's own AsyncHyperBandScheduler, fed real Tune
trials and results, never compares across groups (the real run is in
tests/test_seeds_datasets.py)."""

from __future__ import annotations

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from rllib_project.experiment import SchedulerSettings, StopSettings, load_experiment
from rllib_project.metrics import ENV_STEPS, SCORE, TRAINING_ITERATION
from rllib_project.resources import TrialResources
from rllib_project.scheduling import (
    UNLIMITED,
    PerGroupASHA,
    asha_arguments,
    build_scheduler,
)
from rllib_project.trial_config import PlantSource, TrialConfig
from tests.conftest import REPO, SAMPLE_SPEC

EXPERIMENT = load_experiment(REPO / "tune_configs" / "compare.yaml")


def trial(algorithm: str, dataset: str, number: int) -> Trial:
    config = TrialConfig(
        EXPERIMENT.algorithms[algorithm],
        PlantSource(dataset, str(SAMPLE_SPEC), "m.json"),
        TrialResources(0.5, 0, 0.0, 4),
        EXPERIMENT.file.evaluation,
    )
    return Trial("PlantTrainable", config=config.to_tune(), trial_id=f"t{number}", stub=True)


def report(scheduler: TrialScheduler, subject: Trial, iteration: int, score: float) -> str:
    return scheduler.on_trial_result(None, subject, {TRAINING_ITERATION: iteration, SCORE: score})


def test_each_dataset_and_algorithm_is_its_own_competition() -> None:
    scheduler = build_scheduler(
        SchedulerSettings(grace_period=1, reduction_factor=2), StopSettings(training_iterations=8)
    )
    assert isinstance(scheduler, PerGroupASHA)
    strong, weak_sac, weak_other_plant, weak_ppo = (
        trial("PPO", "a", 0),
        trial("SAC", "a", 1),
        trial("PPO", "b", 2),
        trial("PPO", "a", 3),
    )
    for subject in (strong, weak_sac, weak_other_plant, weak_ppo):
        scheduler.on_trial_add(None, subject)
    assert report(scheduler, strong, 1, 0.9) == TrialScheduler.CONTINUE
    # far below the PPO trial on 'a', but alone in their own groups: they go on
    assert report(scheduler, weak_sac, 1, 0.1) == TrialScheduler.CONTINUE
    assert report(scheduler, weak_other_plant, 1, 0.1) == TrialScheduler.CONTINUE
    # in the same group as the strong one, below the top half at the rung: stopped
    assert report(scheduler, weak_ppo, 1, 0.1) == TrialScheduler.STOP
    assert set(scheduler.groups) == {"a/PPO", "a/SAC", "b/PPO"}
    # the stop budget is ASHA's max_t: a trial reaching it stops
    assert report(scheduler, strong, 8, 0.95) == TrialScheduler.STOP
    scheduler.on_trial_complete(None, strong, {TRAINING_ITERATION: 8, SCORE: 0.95})


def test_max_t_comes_from_the_file_or_the_budget_in_the_same_unit() -> None:
    stop = StopSettings(training_iterations=50, env_steps=20_000)
    by_steps = asha_arguments(SchedulerSettings(time_attr="env_steps", grace_period=2000), stop)
    assert by_steps.time_attr == ENV_STEPS and by_steps.max_t == 20_000
    assert asha_arguments(SchedulerSettings(max_t=9), stop).max_t == 9
    assert asha_arguments(SchedulerSettings(time_attr="time_total_s"), stop).max_t == UNLIMITED
    assert type(build_scheduler(None, stop)) is FIFOScheduler


def test_bad_scheduler_settings_are_refused() -> None:
    for bad in ({"grace_period": 0}, {"reduction_factor": 1}, {"max_t": 1, "grace_period": 2}):
        with pytest.raises(ValueError, match="scheduler"):
            SchedulerSettings(**bad)  # type: ignore[arg-type]
