"""The typed trial config crosses Tune as plain data and comes back the same; best.json
and checkpoint metadata round-trip through their one writer and one reader."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

import env
from env.errors import InputError
from env.evaluation import Rollouts
from rllib_project.checkpoints import CheckpointInfo
from rllib_project.evaluate import Evaluation, EvaluationRow, format_json
from rllib_project.experiment import StopSettings, load_experiment
from rllib_project.manifest import (
    BestCheckpoint,
    DatasetEntry,
    Manifest,
    RunRecord,
    TargetReached,
)
from rllib_project.resources import TrialResources
from rllib_project.scoring import PolicyMetrics
from rllib_project.trial_config import PlantSource, TrialConfig, param_space
from tests.conftest import REPO, SAMPLE_SPEC

PLAN = TrialResources(0.66, 0, 0.0, 3)
SOURCE = PlantSource("sample", str(SAMPLE_SPEC), "/models/m.json", {"noise_std": 0.5})
OTHER = PlantSource("other", "/data/other.yaml", "/models/o.json")


def metrics(**changes: float) -> PolicyMetrics:
    values = dict(
        episodes=48,
        success_rate=0.5,
        reached_rate=0.75,
        mean_moves_to_band=2.5,
        time_in_band=0.4,
        mean_return=-3.0,
        success_rate_solvable=0.5,
        moves_ratio=1.2,
        score=0.51,
        mean_actuations=2.0,
        actuations_ratio=1.1,
    )
    return PolicyMetrics(**{**values, **changes})


def test_param_space_resolves_into_trial_configs_per_algorithm_dataset_and_seed() -> None:
    """What Tune samples from the search YAML is what the trainable reads; every
    algorithm runs on every dataset with every seed."""
    from ray.tune.search.variant_generator import generate_variants

    experiment = load_experiment(REPO / "tune_configs" / "search.yaml")
    experiment_ppo = load_experiment(REPO / "tune_configs" / "compare.yaml")
    algorithms = [*experiment.algorithms.values(), experiment_ppo.algorithms["DQN"]]
    seeds = [11, 22]
    space = param_space(algorithms, [SOURCE, OTHER], PLAN, experiment.file.evaluation, seeds)
    assert set(space) == {f.name for f in dataclasses.fields(TrialConfig)}
    trials = [TrialConfig.from_tune(config) for _, config in generate_variants(space)]
    # PPO: a 2-value grid in its YAML; x 2 datasets x 2 seeds
    assert sorted(t.algorithm_name for t in trials) == ["DQN"] * 4 + ["PPO"] * 8
    for algorithm in ("PPO", "DQN"):
        combos = [(t.dataset, t.seed) for t in trials if t.algorithm_name == algorithm]
        assert set(combos) == {(d, s) for d in ("sample", "other") for s in seeds}
    ppo = [t for t in trials if t.algorithm_name == "PPO"]
    assert sorted(t.algorithm.training["num_epochs"] for t in ppo) == [6] * 4 + [10] * 4
    assert all(0.0003 <= t.algorithm.training["lr"] <= 0.003 for t in ppo)  # sampled number
    for trial in trials:
        assert trial.plant == (SOURCE if trial.dataset == "sample" else OTHER)
        assert trial.resources == PLAN
        assert trial.env_config.action_mode == trial.algorithm.action_mode
        assert json.loads(json.dumps(trial.to_tune())) == trial.to_tune()  # plain data
        assert TrialConfig.from_tune(trial.to_tune()) == trial


def test_trial_count_is_what_tune_expands() -> None:
    """The runner plans CPUs and prints "starting N trial(s)" from ``n_trials``; a grid
    inside one algorithm's YAML multiplies that algorithm's trials only."""
    from ray.tune.search.variant_generator import generate_variants

    search = load_experiment(REPO / "tune_configs" / "search.yaml")
    compare = load_experiment(REPO / "tune_configs" / "compare.yaml")
    mixed = dataclasses.replace(
        search, algorithms={**search.algorithms, "DQN": compare.algorithms["DQN"]}
    )
    for experiment in (search, compare, mixed):
        space = param_space(
            experiment.algorithms.values(),
            [SOURCE],
            PLAN,
            experiment.file.evaluation,
            experiment.seeds(),
        )
        expanded = len(list(generate_variants(space))) * experiment.file.samples_per_algorithm
        assert experiment.n_trials == expanded, experiment.source
    assert (search.n_trials, compare.n_trials, mixed.n_trials) == (4, 3, 6)


def test_a_config_that_does_not_fit_is_refused() -> None:
    experiment = load_experiment(REPO / "tune_configs" / "compare.yaml")
    good = TrialConfig(experiment.algorithms["SAC"], SOURCE, PLAN, experiment.file.evaluation)
    plain = good.to_tune()
    with pytest.raises(InputError, match="unknown key"):
        TrialConfig.from_tune({**plain, "trial": {}})
    with pytest.raises(InputError, match="action_mode"):
        TrialConfig.from_tune({**plain, "algorithm": {**plain["algorithm"], "action_mode": "x"}})


def test_manifest_round_trips_and_nan_survives(tmp_path: Path) -> None:
    experiment = load_experiment(REPO / "tune_configs" / "compare.yaml")
    trial = TrialConfig(experiment.algorithms["PPO"], SOURCE, PLAN, experiment.file.evaluation)
    entry = BestCheckpoint(
        "sample", "PPO", "discrete", str(tmp_path / "ckpt_1"), "abc_00000", 2, 2048, 9.5,
        metrics(), trial,
    )  # fmt: skip
    unsolved = dataclasses.replace(
        entry,
        algorithm="SAC",
        metrics=metrics(mean_moves_to_band=math.nan, moves_ratio=math.inf, score=0.9),
    )
    other = dataclasses.replace(entry, dataset="other", metrics=metrics(score=0.99))
    run = RunRecord(
        "sample",
        "PPO",
        "abc_00000",
        7,
        trial.configuration,
        3,
        3072,
        12.0,
        metrics(moves_ratio=math.nan),
        TargetReached(2, 9.5, 2048),
    )
    failed = dataclasses.replace(run, metrics=None, target_reached=None, error="boom")
    manifest = Manifest(
        str(tmp_path),  # read where it was written: nothing to rebase
        {"sample": DatasetEntry("d.yaml", "m.json"), "other": DatasetEntry("o.yaml", "o.json")},
        "s",
        StopSettings(env_steps=4096, success_rate=0.9),
        {"sample/PPO": entry, "sample/SAC": unsolved, "other/PPO": other},
        [run, failed],
        [],
        "t",
    )  # fmt: skip
    manifest.write(tmp_path)
    json.loads((tmp_path / "best.json").read_text(), parse_constant=pytest.fail)  # strict JSON
    back = Manifest.read(tmp_path)
    assert back == dataclasses.replace(
        manifest,
        best={**manifest.best, "sample/SAC": back.best["sample/SAC"]},
        runs=[back.runs[0], failed],
    )
    assert back.best_overall("sample").algorithm == "SAC"  # by score, within the dataset
    assert back.best_overall("other") == other
    # a checkpoint meeting the target outranks one that scores higher and misses it
    meets = dataclasses.replace(entry, metrics=metrics(success_rate_solvable=0.95, moves_ratio=1.0))
    misses = dataclasses.replace(unsolved, metrics=metrics(success_rate_solvable=1.0, score=1.0))
    targeted = dataclasses.replace(
        back,
        stop=StopSettings(env_steps=4096, success_rate=0.9, moves_ratio=1.05),
        best={"sample/PPO": meets, "sample/SAC": misses},
    )
    assert targeted.best_overall("sample").algorithm == "PPO"
    with pytest.raises(InputError, match="pick one with --dataset NAME"):
        back.best_overall()  # two datasets: scores on different plants do not rank
    with pytest.raises(InputError, match="no dataset 'x'"):
        back.entries("x")
    assert set(back.entries("sample")) == {"sample/PPO", "sample/SAC"}
    assert math.isnan(back.best["sample/SAC"].metrics.mean_moves_to_band)
    assert math.isnan(back.best["sample/SAC"].metrics.moves_ratio)  # inf: written as null
    assert back.runs[0].metrics is not None and math.isnan(back.runs[0].metrics.moves_ratio)
    (tmp_path / "best.json").write_text(json.dumps({"best": {"PPO": {"algorithm": "PPO"}}}))
    with pytest.raises(InputError):
        Manifest.read(tmp_path)


def test_checkpoint_info_round_trips(tmp_path: Path) -> None:
    config = env.EnvConfig(str(SAMPLE_SPEC), "/m.json", "continuous", {"horizon": 20})
    for evaluation in (None, metrics(success_rate_solvable=math.nan)):
        info = CheckpointInfo("SAC", "continuous", config, 3, evaluation)
        info.write(tmp_path)
        back = CheckpointInfo.read(tmp_path)
        assert back.env_config == config and back.training_iteration == 3
        if evaluation is None:
            assert back.evaluation is None
        else:
            assert back.evaluation is not None
            assert math.isnan(back.evaluation.success_rate_solvable)
            assert back.evaluation.score == evaluation.score


def test_evaluate_json_is_strict_json() -> None:
    """``evaluate --json`` writes null where a metric is NaN or infinite."""
    empty = Rollouts(*(np.zeros((1, 1)) for _ in range(4)))
    rows = [
        EvaluationRow("PPO", "trained", "discrete", metrics(moves_ratio=math.inf), empty),
        EvaluationRow(
            "random", "baseline", "discrete", metrics(mean_moves_to_band=math.nan), empty
        ),
    ]
    text = format_json(Evaluation(rows, None))
    parsed = json.loads(text, parse_constant=pytest.fail)["rows"]
    assert parsed[0]["moves_ratio"] is None and parsed[1]["mean_moves_to_band"] is None
    assert parsed[0]["success_rate"] == 0.5


def test_torch_threads_follow_where_the_trial_samples() -> None:
    """One intra-op thread while sampling and learning share the trial's process (at
    any CPU share below remote runners); the learner's CPUs once runners sample; the
    algorithm file's choice always wins."""
    experiment = load_experiment(REPO / "tune_configs" / "compare.yaml")
    sac = experiment.algorithms["SAC"]

    def threads(plan: TrialResources, chosen: int | None = None) -> int:
        algorithm = dataclasses.replace(sac, torch_threads=chosen)
        return TrialConfig(algorithm, SOURCE, plan, experiment.file.evaluation).torch_threads

    assert threads(PLAN) == 1
    assert threads(TrialResources(2.0, 0, 0.0, 1)) == 1
    assert threads(TrialResources(4.0, 4, 1.0, 1)) == 4
    assert threads(TrialResources(2.0, 0, 0.0, 1), chosen=3) == 3
