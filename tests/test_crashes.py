"""Crashes cost minutes, not the run: SIGKILL of the driver, and of a trial actor.

Every interruption lands at a state the test waited for (see :mod:`tests.tune_runs`):
trials have a budget none reaches, and are ended with ``rllib-project tune --finish``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from rllib_project.kept_checkpoints import newest_kept_checkpoint
from tests.experiments import best_by_algorithm, write_experiment
from tests.ray_cluster import private_ray_tmpdir
from tests.test_fit_cli import run_cli
from tests.tune_runs import (
    STATE_EVERY_SECOND,
    UNREACHABLE,
    checkpoint_iteration,
    created_experiment_dir,
    finish_when,
    kept_checkpoints,
    restored_results,
    results_of,
    saved_trial_of,
    saved_trials,
    start_tune,
    trial_dirs,
    wait_until,
)

pytestmark = pytest.mark.slow


def test_sigkilled_driver_resumes_without_rerunning_finished_trials(tmp_path: Path) -> None:
    """SIGKILL of the driver once trial 0 has finished and trial 1 has two checkpoints;
    trial 1's checkpoint that Tune's last saved state names is then deleted, as
    ``num_to_keep`` deletes it when newer ones come between a state save and a crash.
    ``--resume`` does not run trial 0 again and goes on with trial 1 from the newest
    checkpoint still kept (Tune itself would fail the trial's restores). Trial 1's
    result log is emptied too, as a SIGKILL during Tune's upload of it leaves it: the
    resume says so and the trial still goes on from its checkpoint."""
    experiment = write_experiment(
        tmp_path,
        iterations=UNREACHABLE,
        algorithms=("PPO",),
        samples_per_algorithm=2,
        resources={"max_concurrent_trials": 1},  # trial 0 ends before trial 1 starts
    )
    with private_ray_tmpdir() as env:
        env.update(STATE_EVERY_SECOND)
        driver = start_tune([experiment], env, tmp_path / "run.log")
        try:
            experiment_dir = created_experiment_dir(tmp_path / "results")
            wait_until(
                lambda: len(trial_dirs(experiment_dir)) == 1, 300, "trial 0", tmp_path / "run.log"
            )
            first = trial_dirs(experiment_dir)[0]
            wait_until(
                lambda: bool(results_of(first)), 300, "trial 0's result", tmp_path / "run.log"
            )
            finish = run_cli("tune", "--finish", experiment_dir, "--only", first.name)
            assert finish.returncode == 0, finish.stderr

            def first_ended_and_second_checkpointed_twice() -> bool:
                saved = saved_trials(experiment_dir)
                first_saved = saved_trial_of(saved, first)
                return (
                    len(saved) == 2
                    and first_saved is not None
                    and first_saved.status == "TERMINATED"
                    and all(t.checkpoint is not None for t in saved.values())
                    and all(len(kept_checkpoints(t)) >= 2 for t in trial_dirs(experiment_dir))
                )

            wait_until(
                first_ended_and_second_checkpointed_twice,
                300,
                "state",
                tmp_path / "run.log",
            )
            os.killpg(driver.pid, signal.SIGKILL)  # no chance to save anything more
            driver.wait(timeout=60)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == -signal.SIGKILL
    assert not (experiment_dir / "best.json").exists()
    second = next(t for t in trial_dirs(experiment_dir) if t != first)
    finished_before = (first / "result.json").read_text()
    second_saved = saved_trial_of(saved_trials(experiment_dir), second)
    assert second_saved is not None
    named = second_saved.checkpoint
    assert named is not None and named.parent == second
    shutil.rmtree(named)
    kept = newest_kept_checkpoint(second)
    assert kept is not None
    restore_point = checkpoint_iteration(kept.path)
    # a SIGKILL in the middle of Tune's upload of the result log leaves it cut off
    (second / "result.json").write_text("")

    with private_ray_tmpdir() as env:
        resumed = start_tune(["--resume", experiment_dir], env, tmp_path / "resume.log")
        finish_when(
            resumed,
            lambda: bool(restored_results(second)),
            "trial 1 going on",
            experiment_dir,
            tmp_path / "resume.log",
        )
    assert resumed.returncode == 0
    manifest = json.loads((experiment_dir / "best.json").read_text())  # whole, parseable
    assert set(best_by_algorithm(experiment_dir)) == {"PPO"} and manifest["trial_errors"] == []
    # the finished trial was not run again
    assert (first / "result.json").read_text() == finished_before
    resume_log = (tmp_path / "resume.log").read_text()
    assert f"{named.name} was deleted after Tune last saved its state" in resume_log
    assert "Error handling checkpoint" not in resume_log  # Tune forgot the deleted one
    # the emptied log is said, and the trial went on from its checkpoint all the same
    assert f"result.json lacks {restore_point} of iterations 1-{restore_point}" in resume_log
    assert "Result dict has no key" not in resume_log  # kept by the checkpoint's own score
    # the unfinished one went on from its newest kept checkpoint (not from iteration 1)
    reported = [r["training_iteration"] for r in results_of(second)]
    assert reported.count(1) == 0, reported  # not started over
    after = restored_results(second)
    assert after[0]["training_iteration"] == restore_point + 1, reported
    assert after[-1]["done"]


def _trial_actor_pids(ray_tmpdir: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            environ = (proc / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if cmdline.startswith("ray::PlantTrainable") and f"RAY_TMPDIR={ray_tmpdir}" in environ:
            pids.append(int(proc.name))
    return pids


def test_killed_trial_actor_is_restarted_from_its_checkpoint(tmp_path: Path) -> None:
    experiment = write_experiment(
        tmp_path, iterations=UNREACHABLE, algorithms=("PPO",), failure={"max_failures": 2}
    )
    with private_ray_tmpdir() as env:
        env.update(STATE_EVERY_SECOND)
        driver = start_tune([experiment], env, tmp_path / "run.log")
        try:
            experiment_dir = created_experiment_dir(tmp_path / "results")

            def checkpoint_known_to_tune() -> bool:
                saved = list(saved_trials(experiment_dir).values())
                return len(saved) == 1 and saved[0].checkpoint is not None

            wait_until(
                checkpoint_known_to_tune, 300, "a checkpoint in Tune's state", tmp_path / "run.log"
            )
            victims = _trial_actor_pids(env["RAY_TMPDIR"])
            assert victims, "trial actor process not found"
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
            trial = trial_dirs(experiment_dir)[0]
            finish_when(
                driver,
                lambda: bool(restored_results(trial)),
                "the restarted trial",
                experiment_dir,
                tmp_path / "run.log",
            )
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 0
    manifest = json.loads((experiment_dir / "best.json").read_text())
    assert manifest["trial_errors"] == [] and "PPO" in best_by_algorithm(experiment_dir)
    results = results_of(trial)
    iterations = [r["training_iteration"] for r in results]
    # Tune restarted the trial from a checkpoint (not from scratch) and it went on
    assert iterations.count(1) == 1, iterations
    assert results[-1]["done"] and restored_results(trial)
