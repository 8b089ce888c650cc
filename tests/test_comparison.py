"""The comparison over runs, from best.json's run records: which runs count, time to
target with censoring, the ``aggregate`` layout, the budget statement (no Ray)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from rllib_project.comparison import budget_statement, compare, time_to_target
from rllib_project.experiment import StopSettings
from rllib_project.manifest import DatasetEntry, Manifest, RunRecord, TargetReached
from tests.test_trial_config import metrics

STOP = StopSettings(wall_time_s=100.0, env_steps=8000, success_rate=0.9)


def run(
    algorithm: str = "PPO",
    dataset: str = "a",
    success: float = 1.0,
    seed: int = 0,
    configuration: str = "c1",
    reached: TargetReached | None = None,
    **changes: object,
) -> RunRecord:
    record = RunRecord(
        dataset=dataset,
        algorithm=algorithm,
        trial_id=f"{algorithm}_{dataset}_{seed}_{configuration}",
        seed=seed,
        configuration=configuration,
        iterations=5,
        env_steps=3000,
        time_total_s=40.0,
        metrics=metrics(success_rate_solvable=success, score=success),
        target_reached=reached,
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def manifest(runs: list[RunRecord], stop: StopSettings = STOP) -> Manifest:
    datasets = {r.dataset: DatasetEntry(f"{r.dataset}.yaml", "m.json") for r in runs}
    return Manifest("/x", datasets, "score", stop, {}, runs, [], "t")


def test_time_to_target_is_when_first_met_else_censored_at_the_budget() -> None:
    assert time_to_target(run(reached=TargetReached(3, 12.5, 1500)), STOP) == (12.5, 1500.0)
    # never met: counted at the budget in each unit, not at what the run used (40 s)
    assert time_to_target(run(), STOP) == (100.0, 8000.0)
    # a unit without a budget: what the run had used when it ended
    iterations_only = StopSettings(training_iterations=5, success_rate=0.9)
    assert time_to_target(run(), iterations_only) == (40.0, 3000.0)
    # ... and never less than that
    assert time_to_target(run(time_total_s=130.0), STOP) == (130.0, 8000.0)
    assert all(math.isnan(v) for v in time_to_target(run(), StopSettings(env_steps=10)))


def test_aggregate_by_hand() -> None:
    runs = [run(success=s, seed=i) for i, s in enumerate([0.25, 0.5, 0.75, 1.0])]
    runs += [run("SAC", success=s, seed=i) for i, s in enumerate([0.0, 0.5, 0.5, 0.5])]
    runs[0] = dataclasses.replace(runs[0], target_reached=TargetReached(2, 20.0, 1000))
    data = compare(manifest(runs)).to_json()
    json.dumps(data, allow_nan=False)  # strict JSON
    ppo = data["algorithms"]["PPO"]
    assert ppo["n_runs"] == 4 and ppo["datasets"] == ["a"] and ppo["reached_target"] == 1
    success = ppo["success_rate_solvable"]
    assert set(success) == {"n_runs", "iqm", "mean", "ci95"}
    assert success["iqm"] == pytest.approx(0.625) and success["mean"] == pytest.approx(0.625)
    low, high = success["ci95"]["iqm"]
    assert 0.25 <= low <= 0.625 <= high <= 1.0
    # censored runs count at the budget: (20 + 3 x 100) / 4
    assert ppo["time_to_target_s"]["mean"] == pytest.approx(80.0)
    assert ppo["steps_to_target"]["iqm"] == pytest.approx(8000.0)  # middle two: censored
    (pair,) = data["probability_of_improvement"]
    # score = success here; PPO vs SAC pairs: 0.25 beats 0.0 only, the rest beat 4 of 4
    assert (pair["algorithm"], pair["over"]) == ("PPO", "SAC")
    assert pair["probability"] == pytest.approx((1 + 2.5 + 4 + 4) / 16)
    profile = data["performance_profile"]
    at_half = profile["thresholds"].index(0.5)
    assert profile["algorithms"]["PPO"]["fraction"][at_half] == pytest.approx(0.75)
    assert profile["algorithms"]["SAC"]["fraction"][at_half] == pytest.approx(0.75)
    assert "equal env steps or equal wall time" in data["budget"]


def test_datasets_pool_into_the_aggregate_and_stay_apart_per_dataset() -> None:
    runs = [run(dataset=d, success=s, seed=i) for d in "ab" for i, s in enumerate([0.5, 1.0])]
    comparison = compare(manifest(runs))
    assert comparison.overall["PPO"].n_runs == 4
    assert comparison.overall["PPO"].datasets == ["a", "b"]
    assert set(comparison.per_dataset) == {"a", "b"}
    assert comparison.per_dataset["b"]["PPO"].n_runs == 2
    only_b = compare(manifest(runs), dataset="b")
    assert only_b.overall["PPO"].n_runs == 2 and set(only_b.per_dataset) == {"b"}


def test_the_best_configuration_is_compared_and_failures_are_left_out() -> None:
    runs = [
        run(success=0.9, seed=0, configuration="good"),
        run(success=0.8, seed=1, configuration="good"),
        run(success=0.5, seed=0, configuration="poor"),
        run(success=0.6, seed=1, configuration="poor"),
        run(seed=2, configuration="good", metrics=None, error="RuntimeError: boom"),
    ]
    comparison = compare(manifest(runs))
    assert comparison.overall["PPO"].n_runs == 2
    assert comparison.overall["PPO"].metrics["success_rate_solvable"].mean == pytest.approx(0.85)
    assert any("2 configurations tried" in note for note in comparison.notes)
    assert any("1 run(s) without an evaluation" in note for note in comparison.notes)


def test_one_run_per_algorithm_has_no_interval_and_says_so() -> None:
    comparison = compare(manifest([run(), run("DQN", success=0.5)]))
    data = comparison.to_json()
    assert data["algorithms"]["PPO"]["success_rate_solvable"]["ci95"] is None
    assert data["probability_of_improvement"][0]["ci95"] is None
    assert any("no confidence interval" in note for note in comparison.notes)
    assert not comparison.has_intervals


def test_undefined_metric_values_are_left_out_of_that_metric_only() -> None:
    runs = [run(seed=0), run(seed=1, metrics=metrics(moves_ratio=math.nan, score=1.0))]
    statistics = compare(manifest(runs)).overall["PPO"]
    assert statistics.n_runs == 2
    assert statistics.metrics["moves_ratio"].n_runs == 1
    assert statistics.metrics["success_rate_solvable"].n_runs == 2


def test_the_budget_statement_says_which_budget_was_equal() -> None:
    assert "equal env steps." in budget_statement(StopSettings(env_steps=5000))
    assert "equal wall time" in budget_statement(StopSettings(wall_time_s=60))
    iterations = budget_statement(StopSettings(training_iterations=3))
    assert "neither env steps nor time are equal" in iterations
    target = budget_statement(StopSettings(env_steps=5000, success_rate=0.99, moves_ratio=1.05))
    assert "99%" in target and "1.05x" in target
