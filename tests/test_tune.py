"""Ray Tune runs of PPO, SAC and DQN: manifest, checkpoints, resume (real Ray, real Tune)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import env
from rllib_project.preparation import DATASETS_DIR
from rllib_project.trial_config import TrialConfig
from tests.conftest import REPO, TUNE_OUTPUT
from tests.experiments import best_by_algorithm, only_experiment_dir, write_experiment
from tests.ray_cluster import private_ray_tmpdir
from tests.test_fit_cli import run_cli
from tests.tune_runs import (
    STATE_EVERY_SECOND,
    UNREACHABLE,
    checkpoint_iteration,
    created_experiment_dir,
    finish_when,
    restored_results,
    results_of,
    saved_trials,
    start_tune,
    trial_dirs,
    wait_until,
)

pytestmark = pytest.mark.slow


def test_tiny_run_lists_three_best_checkpoints_that_load_and_act(tiny_run: Path) -> None:
    from rllib_project.inference import greedy_action_function, module_from_checkpoint

    manifest = json.loads((tiny_run / "best.json").read_text())
    assert set(best_by_algorithm(tiny_run)) == {"PPO", "SAC", "DQN"}
    assert manifest["trial_errors"] == []
    for name, entry in best_by_algorithm(tiny_run).items():
        checkpoint = Path(entry["checkpoint"])
        assert checkpoint.is_dir() and checkpoint.is_relative_to(tiny_run)
        metrics = entry["metrics"]
        for key in ("success_rate", "mean_return", "score"):
            assert np.isfinite(metrics[key]), (name, key)
        # moves to band average over the rows a policy solves: none after two tiny
        # iterations is possible, and then it is written as null, never as a number
        moves = metrics["mean_moves_to_band"]
        assert (moves is None) == (metrics["success_rate"] == 0), (name, metrics)
        assert moves is None or np.isfinite(moves), (name, moves)
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
        for column in ("evaluation/success_rate", "evaluation/score"):
            assert progress[column].notna().all(), (trial.name, column)
        # moves/opt is undefined (NaN) only where the policy solved no row
        unsolved = progress["evaluation/success_rate"] == 0
        ratio = progress["evaluation/moves_ratio"]
        assert (ratio.isna() == unsolved).all(), (trial.name, list(ratio), list(unsolved))
        # a run without --address starts its own Ray instance bound to loopback
        results = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        assert {r["node_ip"] for r in results} == {"127.0.0.1"}


def test_tune_output_is_our_table_and_results_not_ray_notices(tiny_run: Path) -> None:
    output = (tiny_run.parent.parent / TUNE_OUTPUT).read_text()
    assert "Trial name" in output and "moves/opt" in output  # our progress table
    assert "best checkpoint per dataset x algorithm" in output
    assert "rllib-project tune --finish" in output  # how to end early
    for notice in (
        "on the new API stack",  # known-harmless, filtered
        "Token authentication is enabled for this Ray cluster",  # auth mode set explicitly
        "max_concurrent_trials` will be ignored",  # fixed: the generator enforces it
    ):
        assert notice not in output, notice


def test_trials_and_evaluate_replay_the_experiments_yardstick(tiny_run: Path) -> None:
    """Planned once before the trials, saved in the experiment folder; trials and
    ``evaluate`` replay it (the planner's row counter does not move)."""
    from env.planner import rows_planned
    from env.yardstick import load_yardstick
    from rllib_project.checkpoints import load_policies
    from rllib_project.evaluate import evaluate_policies

    (folder,) = (tiny_run / DATASETS_DIR).iterdir()  # the run's one dataset
    discrete = load_yardstick(folder / "yardstick.json")
    continuous = load_yardstick(folder / "yardstick_continuous.json")  # SAC's
    assert len(discrete.rows) == len(continuous.rows) == 500  # every start row
    output = (tiny_run.parent.parent / TUNE_OUTPUT).read_text()
    assert "planned 500 rows (discrete moves)" in output
    for trial in trial_dirs(tiny_run):
        assert [r["trial"]["rows_planned"] for r in results_of(trial)] == [0, 0], trial.name
        assert f"{trial.name}: training (" in output and "yardstick replayed" in output
    before = rows_planned()
    rows = evaluate_policies(load_policies(tiny_run))
    assert rows_planned() == before  # replayed, not planned
    planners = [r for r in rows if r.policy == "planner"]
    assert {r.action_mode for r in planners} == {"discrete", "continuous"}
    assert all(r.proven_minimal == 1.0 for r in planners)  # the sample: all proven
    assert planners[0].metrics.mean_moves_to_band == discrete.summary().mean_moves


def test_a_checkpoint_cut_off_while_copied_is_never_the_one_restored(
    tiny_run: Path, tmp_path: Path
) -> None:
    """Tune copies a checkpoint into storage with several threads in no fixed order, so
    a driver killed during the copy can leave ``plant_policy.json`` beside a short file.
    The metadata lists every file's size; when the checkpoint Tune's saved state names
    is gone, a resume goes on from the newest *complete* one kept. A copy of a real
    checkpoint, numbered newer, is chosen while whole and passed over once one of its
    files is cut short or missing."""
    import dataclasses
    import shutil

    from rllib_project.checkpoints import POLICY_METADATA, CheckpointInfo
    from rllib_project.kept_checkpoints import newest_kept_checkpoint

    trial = tmp_path / "trial"
    shutil.copytree(trial_dirs(tiny_run)[0], trial)
    saved = newest_kept_checkpoint(trial)
    assert saved is not None
    info = CheckpointInfo.read(saved.path)
    assert info.files and POLICY_METADATA not in info.files  # every other file listed
    newer = trial / "checkpoint_000099"
    shutil.copytree(saved.path, newer)
    dataclasses.replace(info, training_iteration=info.training_iteration + 1).write(newer)
    kept = newest_kept_checkpoint(trial)
    assert kept is not None and kept.path == newer  # whole: the newest is taken
    largest = max(info.files, key=lambda name: info.files[name])
    cut = newer / largest
    cut.write_bytes(cut.read_bytes()[: info.files[largest] // 2])
    kept = newest_kept_checkpoint(trial)
    assert kept is not None and kept.path == saved.path
    cut.unlink()
    kept = newest_kept_checkpoint(trial)
    assert kept is not None and kept.path == saved.path


def test_interrupted_run_resumes_from_checkpoints(tmp_path: Path) -> None:
    """SIGTERM (what `ray job stop`, `kill` and service managers send) once every trial
    has a checkpoint the saved state knows ends the run as Ctrl-C does: Tune saves its
    state whole and the driver exits 130 (Ray's own SIGTERM handler would end it at
    once, possibly cutting off Tune's upload of the trials' result logs); --resume goes
    on from those checkpoints; --finish then ends the run and best.json is written."""
    experiment = write_experiment(tmp_path, iterations=UNREACHABLE, algorithms=("PPO", "SAC"))
    with private_ray_tmpdir() as env:
        env.update(STATE_EVERY_SECOND)
        driver = start_tune([experiment], env, tmp_path / "run.log")
        try:
            experiment_dir = created_experiment_dir(tmp_path / "results")

            def every_trial_checkpointed_in_saved_state() -> bool:
                saved = saved_trials(experiment_dir).values()
                return len(saved) == 2 and all(t.checkpoint is not None for t in saved)

            wait_until(
                every_trial_checkpointed_in_saved_state, 300, "checkpoints", tmp_path / "run.log"
            )
            driver.send_signal(signal.SIGTERM)  # the driver only: its local Ray goes on
            driver.wait(timeout=120)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 130 and not (experiment_dir / "best.json").exists()
    (yardstick,) = (experiment_dir / DATASETS_DIR).glob("*/yardstick.json")
    planned = yardstick.read_bytes()  # planning again would record another duration
    saved = saved_trials(experiment_dir)
    assert all(t.status != "TERMINATED" for t in saved.values()), saved  # none finished
    restore_points = {i: checkpoint_iteration(t.checkpoint) for i, t in saved.items()}  # type: ignore[arg-type]

    with private_ray_tmpdir() as env:
        resumed = start_tune(["--resume", experiment_dir], env, tmp_path / "resume.log")
        finish_when(
            resumed,
            lambda: all(restored_results(t) for t in trial_dirs(experiment_dir)),
            "a result of every trial after its restore",
            experiment_dir,
            tmp_path / "resume.log",
        )
    assert resumed.returncode == 0
    manifest = json.loads((experiment_dir / "best.json").read_text())
    assert set(best_by_algorithm(experiment_dir)) == {"PPO", "SAC"}
    assert manifest["trial_errors"] == []
    # the resumed run loaded the saved yardstick (the same bytes: Tune copies the folder
    # back and forth, so not the same file times) and so did every restored trial: none
    # planned a row
    assert "loaded 500 rows (discrete moves)" in (tmp_path / "resume.log").read_text()
    assert yardstick.read_bytes() == planned
    for trial in trial_dirs(experiment_dir):
        results = results_of(trial)
        iterations = [r["training_iteration"] for r in results]
        assert iterations.count(1) == 1, (trial.name, iterations)  # never started over
        after = restored_results(trial)
        trial_id = results[0]["trial_id"]
        # the resumed part starts right after the checkpoint the saved state knew
        first = after[0]
        assert (
            first["training_iteration"] - first["iterations_since_restore"]
            == (restore_points[trial_id])
        ), (trial.name, iterations)
        assert [r["training_iteration"] for r in after] == list(
            range(first["training_iteration"], after[-1]["training_iteration"] + 1)
        )
        assert after[-1]["done"], trial.name  # ended by --finish, counted as finished
        # the restored algorithm kept its env-step counter (it did not start from zero)
        steps = [r["env_runners"]["num_env_steps_sampled_lifetime"] for r in results]
        at_checkpoint = steps[iterations.index(restore_points[trial_id])]
        assert first["env_runners"]["num_env_steps_sampled_lifetime"] > at_checkpoint, steps
        assert all(r["trial"]["rows_planned"] == 0 for r in results), trial.name
        # ... and its wall clock went on from the checkpoint's, set-up included
        walls = [r["trial"]["wall_s"] for r in results]
        at_checkpoint_wall = walls[iterations.index(restore_points[trial_id])]
        assert first["trial"]["wall_s"] > at_checkpoint_wall + first["trial"]["setup_s"]


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


def test_run_without_address_starts_its_own_ray_despite_a_recorded_cluster(
    tmp_path: Path,
) -> None:
    """``ray start`` records its cluster in <tmp>/ray/ray_current_cluster, and a bare
    ``ray.init()`` joins it, even when that cluster is gone; a run without --address
    must start its own instance instead (here the record points nowhere)."""
    experiment = write_experiment(tmp_path, iterations=1, algorithms=("DQN",))
    with private_ray_tmpdir() as env:
        record = Path(env["RAY_TMPDIR"]) / "ray" / "ray_current_cluster"
        record.parent.mkdir(parents=True)
        record.write_text("192.0.2.1:6379")  # TEST-NET: no cluster can answer there
        result = run_cli("tune", experiment, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (trial,) = trial_dirs(only_experiment_dir(tmp_path / "results"))
    assert {r["node_ip"] for r in results_of(trial)} == {"127.0.0.1"}
