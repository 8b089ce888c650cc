"""Crashes cost minutes, not the run: SIGKILL of the driver, and of a trial actor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.experiments import only_experiment_dir, write_experiment
from tests.ray_cluster import private_ray_tmpdir
from tests.test_fit_cli import run_cli

pytestmark = pytest.mark.slow


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def results_of(trial: Path) -> list[dict]:
    path = trial / "result.json"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def start_driver(experiment: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "rllib_project", "tune", str(experiment)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def created_experiment_dir(storage: Path) -> Path:
    """The folder a just-started run creates under ``storage``, once it exists."""
    wait_until(lambda: storage.exists() and any(storage.iterdir()), 120, "experiment dir")
    return only_experiment_dir(storage)


def state_saved_after(experiment_dir: Path, moment: float) -> bool:
    states = list(experiment_dir.glob("experiment_state-*.json"))
    return bool(states) and max(s.stat().st_mtime for s in states) > moment + 0.5


def test_sigkilled_driver_resumes_without_rerunning_finished_trials(tmp_path: Path) -> None:
    iterations = 8
    experiment = write_experiment(
        tmp_path,
        iterations=iterations,
        algorithms=("PPO",),
        samples_per_algorithm=2,
        resources={"max_concurrent_trials": 1},  # trial 0 finishes before trial 1 starts
    )
    storage = tmp_path / "results"
    with private_ray_tmpdir() as env:
        # Tune saves its experiment state every second (default: >= 10 s), so that the
        # kill lands after a saved state that knows trial 1's first checkpoint.
        env["TUNE_GLOBAL_CHECKPOINT_S"] = "1"
        driver = start_driver(experiment, env)
        try:
            experiment_dir = created_experiment_dir(storage)
            first = lambda: next(experiment_dir.glob("PPO_*_00000"), None)  # noqa: E731
            second = lambda: next(experiment_dir.glob("PPO_*_00001"), None)  # noqa: E731

            def second_checkpointed_and_saved() -> bool:
                if first() is None or len(results_of(first())) < iterations or not second():
                    return False
                marks = list(second().glob("checkpoint_*/plant_policy.json"))
                return bool(marks) and state_saved_after(
                    experiment_dir, min(m.stat().st_mtime for m in marks)
                )

            wait_until(second_checkpointed_and_saved, 300, "trial 1's first checkpoint")
            os.killpg(driver.pid, signal.SIGKILL)  # no chance to save anything more
            driver.wait(timeout=60)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == -signal.SIGKILL
    assert not (experiment_dir / "best.json").exists()
    finished_before = (first() / "result.json").read_text()
    second_before = results_of(second())
    assert 1 <= len(second_before) < iterations  # killed mid-trial

    with private_ray_tmpdir() as env:
        resumed = run_cli("tune", "--resume", experiment_dir, env=env)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    manifest = json.loads((experiment_dir / "best.json").read_text())  # whole, parseable
    assert set(manifest["best"]) == {"PPO"} and manifest["trial_errors"] == []
    # the finished trial was not run again
    assert (first() / "result.json").read_text() == finished_before
    # the unfinished one went on from its checkpoint to the end
    after = results_of(second())
    reported = [r["training_iteration"] for r in after]
    assert reported[-1] == iterations and reported.count(1) == 1, reported
    assert any(r["iterations_since_restore"] < r["training_iteration"] for r in after)


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
        tmp_path, iterations=5, algorithms=("PPO",), failure={"max_failures": 2}
    )
    storage = tmp_path / "results"
    with private_ray_tmpdir() as env:
        driver = start_driver(experiment, env)
        try:
            experiment_dir = created_experiment_dir(storage)

            def checkpoint_after_iteration_two() -> bool:
                trial = next(experiment_dir.glob("PPO_*"), None)
                return trial is not None and len(list(trial.glob("checkpoint_*"))) >= 2

            wait_until(checkpoint_after_iteration_two, 300, "two checkpoints")
            victims = _trial_actor_pids(env["RAY_TMPDIR"])
            assert victims, "trial actor process not found"
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
            driver.wait(timeout=400)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 0
    manifest = json.loads((experiment_dir / "best.json").read_text())
    assert manifest["trial_errors"] == [] and "PPO" in manifest["best"]
    results = results_of(next(experiment_dir.glob("PPO_*")))
    iterations = [r["training_iteration"] for r in results]
    assert iterations[-1] == 5 and iterations.count(1) == 1, iterations
    # Tune restarted the trial from a checkpoint (not from scratch)
    assert any(r["iterations_since_restore"] < r["training_iteration"] for r in results)
