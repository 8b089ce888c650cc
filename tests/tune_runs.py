"""Drive a real ``rllib-project tune`` process from a test, by states, never by time.

Interruption tests must stop a run at a point they control. Trials get a budget no
trial can reach (:data:`UNREACHABLE`), so nothing finishes on its own however fast the
machine is; the test waits for a *state* (a result, a checkpoint that Tune's saved
experiment state records) before it interrupts, and ends the trials itself with
``rllib-project tune --finish``. Timeouts only bound how long a broken run may hang.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rllib_project.checkpoints import POLICY_METADATA, CheckpointInfo
from rllib_project.kept_checkpoints import complete_checkpoint_info
from tests.conftest import REPO
from tests.experiments import only_experiment_dir

UNREACHABLE = 1_000_000
"""A training-iteration budget no trial reaches in a test: trials end by ``--finish``."""
STATE_EVERY_SECOND = {"TUNE_GLOBAL_CHECKPOINT_S": "1"}
"""Tune saves its experiment state every second (default: every 10 s or more), so the
states a test waits for come sooner."""


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, log: Path | None = None
) -> None:
    """Poll ``condition``; on timeout fail, showing the end of ``log`` (a run's output)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.5)
    shown = f"\n--- end of {log}:\n{log.read_text()[-4000:]}" if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}{shown}")


def start_tune(args: Sequence[str | Path], env: dict[str, str], log: Path) -> subprocess.Popen:
    """``rllib-project tune ARGS`` in its own process group (to signal it as Ctrl-C does),
    its output going to ``log``."""
    with open(log, "w") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "rllib_project", "tune", *map(str, args)],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def finish_when(
    driver: subprocess.Popen,
    condition: Callable[[], bool],
    what: str,
    experiment_dir: Path,
    log: Path,
) -> None:
    """Wait for ``condition`` (a state of the run ``driver`` drives), end the run with
    ``rllib-project tune --finish`` and wait for the driver to exit. A driver still
    running when this fails is killed with its process group."""
    from tests.test_fit_cli import run_cli

    try:
        wait_until(condition, 300, what, log)
        finish = run_cli("tune", "--finish", experiment_dir)
        assert finish.returncode == 0, finish.stderr
        driver.wait(timeout=300)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)


def created_experiment_dir(storage: Path) -> Path:
    """The folder a just-started run creates under ``storage``, once it exists."""
    wait_until(lambda: storage.exists() and any(storage.iterdir()), 120, "experiment dir")
    return only_experiment_dir(storage)


def trial_dirs(experiment_dir: Path) -> list[Path]:
    return sorted(p for p in experiment_dir.iterdir() if (p / "params.json").exists())


def results_of(trial: Path) -> list[dict[str, Any]]:
    """The trial's reported results. Tune rewrites ``result.json`` in storage while a run
    goes on (a copy truncates, then writes), so the file may be empty or end in a cut
    line for a moment: such a line is skipped, read again on the next poll."""
    path = trial / "result.json"
    if not path.exists():
        return []
    results = []
    for line in path.read_text().splitlines():
        try:
            results.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return results


def restored_results(trial: Path) -> list[dict[str, Any]]:
    """Results reported after the trial was restored from a checkpoint."""
    return [r for r in results_of(trial) if r["iterations_since_restore"] < r["training_iteration"]]


@dataclass(frozen=True)
class SavedTrial:
    """A trial as Tune's saved experiment state knows it (what a restore starts from)."""

    status: str
    checkpoint: Path | None


def saved_trials(experiment_dir: Path) -> dict[str, SavedTrial]:
    """Trial id -> status and latest checkpoint in the newest saved experiment state,
    read the way ``Tuner.restore`` reads it."""
    from ray.tune.experiment.trial import Trial

    states = sorted(experiment_dir.glob("experiment_state-*.json"), key=lambda p: p.stat().st_mtime)
    if not states:
        return {}
    try:
        state = json.loads(states[-1].read_text())
    except json.JSONDecodeError:  # being written right now: read it next time
        return {}
    trials = {}
    for trial_json, runtime in state["trial_data"]:
        trial = Trial.from_json_state(trial_json, stub=True)
        trial.restore_run_metadata(runtime)
        checkpoint = trial.checkpoint
        trials[trial.trial_id] = SavedTrial(
            trial.status, None if checkpoint is None else Path(checkpoint.path)
        )
    return trials


def saved_trial_of(saved: dict[str, SavedTrial], trial: Path) -> SavedTrial | None:
    """The trial in folder ``trial`` (whose name ends with its id) among ``saved``
    (:func:`saved_trials`), None if not there yet. Found by the folder name, not by
    ``result.json``, which may be empty for a moment while Tune rewrites it."""
    return next((t for trial_id, t in saved.items() if trial.name.endswith(trial_id)), None)


def kept_checkpoints(trial: Path) -> list[Path]:
    """The trial's complete checkpoints: metadata readable and every file it lists
    whole (Tune copies a checkpoint into storage in no fixed file order)."""
    return sorted(
        p.parent
        for p in trial.glob(f"checkpoint_*/{POLICY_METADATA}")
        if complete_checkpoint_info(p.parent) is not None
    )


def checkpoint_iteration(checkpoint: Path) -> int:
    return CheckpointInfo.read(checkpoint).training_iteration
