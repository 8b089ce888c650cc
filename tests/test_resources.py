"""Trial resources derived from the cluster: never more than fits, scales out when it can."""

from __future__ import annotations

import pytest

from rllib_project.experiment import ResourceSettings
from rllib_project.resources import TrialResources, plan_trial_resources


def fits(nodes: list[float], plan: TrialResources) -> bool:
    """First-fit placement of every concurrent trial's bundles onto the nodes."""
    free = sorted(nodes, reverse=True)
    for _ in range(plan.max_concurrent_trials):
        bundles = [plan.main_cpus] + [plan.cpus_per_env_runner] * plan.num_env_runners
        for bundle in bundles:
            index = next((i for i, f in enumerate(free) if f + 1e-9 >= bundle), None)
            if index is None:
                return False
            free[index] -= bundle
    return True


@pytest.mark.parametrize(
    ("nodes", "trials", "main", "runners"),
    [
        ([2.0], 3, 0.66, 0),  # this machine: three algorithms at once, local sampling
        ([2.0], 1, 2.0, 0),  # one trial: local sampling beats one remote runner
        ([1.0, 1.0], 3, 0.5, 0),  # two one-CPU nodes: two trials on one, one on the other
        ([1.0, 1.0], 4, 0.5, 0),
        ([16.0], 3, 1.0, 4),  # a bigger machine: remote env runners, capped at 4
        ([8.0, 8.0, 8.0], 3, 4.0, 4),  # one trial per node, the rest for the learner
        ([4.0], 1, 1.0, 3),
    ],
)
def test_plans_fit_the_cluster(nodes: list[float], trials: int, main: float, runners: int) -> None:
    plan = plan_trial_resources(nodes, trials, ResourceSettings())
    assert plan.main_cpus == pytest.approx(main)
    assert plan.num_env_runners == runners
    assert plan.max_concurrent_trials == trials
    assert fits(nodes, plan)


def test_max_concurrent_trials_gives_each_trial_more() -> None:
    plan = plan_trial_resources([2.0], 6, ResourceSettings(max_concurrent_trials=2))
    assert plan.max_concurrent_trials == 2 and plan.main_cpus == pytest.approx(1.0)


def test_cpus_setting_overrides_the_cluster_and_runner_cap_applies() -> None:
    plan = plan_trial_resources([2.0], 1, ResourceSettings(cpus=32, max_env_runners_per_trial=6))
    assert plan.num_env_runners == 6 and plan.main_cpus == 26.0


def test_trainable_asks_tune_for_exactly_the_plan() -> None:
    from rllib_project.experiment import load_experiment
    from rllib_project.trainable import PlantTrainable
    from rllib_project.trial_config import PlantSource, TrialConfig
    from tests.conftest import REPO, SAMPLE_SPEC

    experiment = load_experiment(REPO / "tune_configs" / "compare.yaml")
    for plan in (TrialResources(0.66, 0, 0.0, 3), TrialResources(2.0, 3, 1.0, 1)):
        trial = TrialConfig(
            algorithm=experiment.algorithms["PPO"],
            plant=PlantSource("sample", str(SAMPLE_SPEC), "unused.json"),
            resources=plan,
            evaluation=experiment.file.evaluation,
        )
        request = PlantTrainable.default_resource_request(trial.to_tune())
        cpus = [bundle.get("CPU", 0) for bundle in request.bundles]
        assert cpus == [plan.main_cpus] + [1.0] * plan.num_env_runners
