"""Ray Tune runs of PPO, SAC and DQN: manifest, checkpoints, resume (real Ray, real Tune)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import env
from rllib_project.trial_config import TrialConfig
from tests.conftest import REPO
from tests.experiments import only_experiment_dir, write_experiment
from tests.test_fit_cli import run_cli

pytestmark = pytest.mark.slow


def test_tiny_run_lists_three_best_checkpoints_that_load_and_act(tiny_run: Path) -> None:
    from rllib_project.inference import greedy_action_function, module_from_checkpoint

    manifest = json.loads((tiny_run / "best.json").read_text())
    assert set(manifest["best"]) == {"PPO", "SAC", "DQN"}
    assert manifest["trial_errors"] == []
    for name, entry in manifest["best"].items():
        checkpoint = Path(entry["checkpoint"])
        assert checkpoint.is_dir() and checkpoint.is_relative_to(tiny_run)
        for key in ("success_rate", "mean_moves_to_band", "mean_return", "score"):
            assert np.isfinite(entry["metrics"][key]), (name, key)
        assert entry["iteration"] in (1, 2) and entry["env_steps"] > 0
        environment = gym.make(env.ENV_ID, action_mode=entry["action_mode"])
        act = greedy_action_function(module_from_checkpoint(checkpoint), environment.action_space)
        obs, _ = environment.reset(seed=0)
        for _ in range(10):
            action = act(obs[None])[0]
            assert environment.action_space.contains(action), (name, action)
            obs, reward, _, _, _ = environment.step(action)
            assert np.isfinite(reward)


def test_progress_has_evaluation_metrics_every_iteration(tiny_run: Path) -> None:
    trials = [p for p in tiny_run.iterdir() if (p / "params.json").exists()]
    assert len(trials) == 3
    for trial in trials:
        progress = pd.read_csv(trial / "progress.csv")
        assert list(progress["training_iteration"]) == [1, 2]
        for column in ("evaluation/success_rate", "evaluation/moves_ratio", "evaluation/score"):
            assert progress[column].notna().all(), (trial.name, column)
        # a run without --address starts its own Ray instance bound to loopback
        results = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        assert {r["node_ip"] for r in results} == {"127.0.0.1"}


def _checkpointed_iterations(trial_dir: Path) -> list[int]:
    return sorted(
        json.loads((c / "plant_policy.json").read_text())["training_iteration"]
        for c in trial_dir.glob("checkpoint_*")
        if (c / "plant_policy.json").exists()
    )


def _wait_for_checkpoints_and_state(experiment_dir: Path, trials: int, timeout: float) -> None:
    """Until every trial has a checkpoint and Tune's experiment state was saved after."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        trial_dirs = [p for p in experiment_dir.glob("*_*") if p.is_dir()]
        checkpoints = [sorted(t.glob("checkpoint_*/plant_policy.json")) for t in trial_dirs]
        states = list(experiment_dir.glob("experiment_state-*.json"))
        if len(trial_dirs) == trials and all(checkpoints) and states:
            newest_checkpoint = max(c[0].stat().st_mtime for c in checkpoints)
            if max(s.stat().st_mtime for s in states) > newest_checkpoint + 0.5:
                return
        time.sleep(1.0)
    raise AssertionError(f"no checkpoints + experiment state within {timeout} s")


def start_tune(experiment: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "rllib_project", "tune", str(experiment)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_interrupted_run_resumes_from_checkpoints(tmp_path: Path) -> None:
    experiment = write_experiment(tmp_path, iterations=6, algorithms=("PPO", "SAC"))
    process = start_tune(experiment)
    try:
        while not (tmp_path / "results").exists() or not list((tmp_path / "results").iterdir()):
            time.sleep(0.5)
        experiment_dir = only_experiment_dir(tmp_path / "results")
        _wait_for_checkpoints_and_state(experiment_dir, trials=2, timeout=240)
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: Tune saves its state and exits
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130 and not (experiment_dir / "best.json").exists()
    before = {t.name: _checkpointed_iterations(t) for t in experiment_dir.glob("*_*") if t.is_dir()}
    assert all(its and its[-1] < 6 for its in before.values()), before

    resumed = run_cli("tune", "--resume", experiment_dir)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    manifest = json.loads((experiment_dir / "best.json").read_text())
    assert set(manifest["best"]) == {"PPO", "SAC"}
    for trial in (t for t in experiment_dir.glob("*_*") if t.is_dir()):
        results = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        iterations = [r["training_iteration"] for r in results]
        assert iterations[-1] == 6, (trial.name, iterations)
        # the resumed part starts after a checkpoint, not from iteration 1 again
        restart = (
            next(i for i in range(1, len(iterations)) if iterations[i] <= iterations[i - 1])
            if any(iterations[i] <= iterations[i - 1] for i in range(1, len(iterations)))
            else None
        )
        first_after = iterations[restart] if restart is not None else None
        assert first_after is None or first_after > 1, (trial.name, iterations)
        assert iterations.count(1) == 1, (trial.name, iterations)
        steps = [r["env_runners"]["num_env_steps_sampled_lifetime"] for r in results]
        assert steps[-1] > steps[0] and steps[-1] >= max(steps[:-1]), (trial.name, steps)


def test_yaml_search_spaces_become_sampled_trials(tmp_path: Path) -> None:
    """grid / choice / uniform / loguniform in the algorithm YAML reach Tune's sampler."""
    import yaml

    search = yaml.safe_load((REPO / "tune_configs" / "ppo_search.yaml").read_text())
    (tmp_path / "ppo_search.yaml").write_text(yaml.safe_dump(search))
    experiment = write_experiment(
        tmp_path, iterations=1, algorithms=("PPO",), samples_per_algorithm=2
    )
    data = yaml.safe_load(experiment.read_text())
    data["algorithms"]["PPO"] = str(tmp_path / "ppo_search.yaml")
    experiment.write_text(yaml.safe_dump(data))
    result = run_cli("tune", experiment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    experiment_dir = only_experiment_dir(tmp_path / "results")
    trials = [
        TrialConfig.from_tune(json.loads((t / "params.json").read_text())).algorithm.training
        for t in experiment_dir.iterdir()
        if (t / "params.json").exists()
    ]
    assert len(trials) == 4
    assert sorted(t["num_epochs"] for t in trials) == [6, 6, 10, 10]
    assert all(0.0003 <= t["lr"] <= 0.003 and 0.9 <= t["lambda_"] <= 1.0 for t in trials)
    assert all(t["minibatch_size"] in (64, 128) for t in trials)
    assert len({t["lr"] for t in trials}) == 4  # sampled, not copied
