"""Cluster jobs as the README tells a person to run them: real `ray start`, real
`ray job submit` through scripts/submit.sh, from a shell with nothing activated."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

from tests.conftest import REPO, SAMPLE_SPEC
from tests.datasets import write_synthetic
from tests.experiments import best_by_algorithm, only_experiment_dir, write_experiment
from tests.ray_cluster import (
    BIN,
    RAY_DEFAULT_AGENT_PORT,
    free_ports,
    kill_processes,
    local_cluster,
    port_taken,
    ray_env,
)
from tests.test_fit_cli import run_cli
from tests.tune_runs import (
    UNREACHABLE,
    checkpoint_iteration,
    created_experiment_dir,
    restored_results,
    results_of,
    saved_trials,
    trial_dirs,
)

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

README_SECTION = "## Running on a Ray cluster"


def fresh_shell_env(**extra: str) -> dict[str, str]:
    """What a new login shell starts from: no virtualenv, no RAY_* settings, PATH from
    the shell's own profile (``bash -l``)."""
    keep = ("HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TERM", "TMPDIR")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, **extra}


def run_in_fresh_shell(
    script: str, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-l", "-c", f"set -e\ncd {REPO}\n{script}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def readme_cluster_block() -> str:
    """The first ```bash block of the README's cluster section, as written."""
    text = (REPO / "README.md").read_text()
    section = text[text.index(README_SECTION) :]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, "no bash block in the README's cluster section"
    return match.group(1)


def test_readme_cluster_block_runs_as_written_on_two_nodes(tmp_path: Path) -> None:
    """The README's block, in a login shell with nothing activated. Changed for the test
    only: free ports instead of 6379/8265, a private temp dir for the second node, a
    tiny experiment and storage in tmp, and no `ray stop` (which would stop every Ray
    process of the machine): the test stops exactly what its shell started."""
    block = readme_cluster_block()
    # the README's head takes Ray's default agent port; held by another Ray instance on
    # this machine, the head would take no jobs and the block would wait until timeout
    assert not port_taken(RAY_DEFAULT_AGENT_PORT), (
        f"port {RAY_DEFAULT_AGENT_PORT} (Ray's default dashboard agent port, which the "
        "README's head node uses) is taken: stop the Ray instance holding it first"
    )
    experiment = write_experiment(tmp_path, iterations=2, algorithms=("PPO", "DQN"))
    storage = tmp_path / "shared"
    node_temp = tempfile.mkdtemp(prefix="rtn", dir="/tmp")  # short: socket paths
    gcs_port, dashboard_port, agent_port = free_ports(3)
    replacements = {
        "6379": str(gcs_port),
        "8265": str(dashboard_port),
        "/tmp/ray-node2": node_temp,
        "52366": str(agent_port),
        "tune_configs/compare.yaml": str(experiment),
        '"$PWD/results"': f'"{storage}"',
    }
    for old, new in replacements.items():
        assert old in block, f"README cluster block no longer contains {old!r}"
        block = block.replace(old, new)
    stop_lines = [line for line in block.splitlines() if "ray stop" in line]
    assert len(stop_lines) == 1
    block = block.replace(stop_lines[0], "")
    mark = f"RLLIB_PROJECT_README_TEST={uuid.uuid4().hex}"
    key, value = mark.split("=")
    try:
        result = run_in_fresh_shell(block, fresh_shell_env(**{key: value}), timeout=900)
    finally:
        kill_processes(set(), (mark,))
        shutil.rmtree(node_temp, ignore_errors=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert re.search(r"Job 'rllib-project-\S+' succeeded", output), output[-3000:]
    assert re.search(r"^job id: rllib-project-", result.stdout, re.MULTILINE)
    experiment_dir = only_experiment_dir(storage)
    manifest = json.loads((experiment_dir / "best.json").read_text())
    assert set(best_by_algorithm(experiment_dir)) == {"PPO", "DQN"}
    assert manifest["trial_errors"] == []
    nodes = {r["node_id"] for t in trial_dirs(experiment_dir) for r in results_of(t)}
    assert len(nodes) == 2, nodes  # one trial per node: each needs a node's 2 CPUs


def submit(*args: str) -> subprocess.CompletedProcess:
    """scripts/submit.sh as the README runs it (no interpreter on PATH needed)."""
    return subprocess.run(
        ["bash", "scripts/submit.sh", *args],
        cwd=REPO,
        env=ray_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _ray_job(*args: str, address: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "ray"), "job", *args, "--address", address],
        env=ray_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _job_status(job_id: str, address: str) -> str:
    result = _ray_job("status", job_id, address=address)
    """The status `ray job status` prints: "Status for job 'ID': RUNNING" while the job
    runs, "Job 'ID' succeeded / failed / was stopped" once it has ended."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)  # colours
    running = re.search(r"Status for job '[^']+': (\w+)", plain)
    if running:
        return running.group(1)
    ended = re.search(r"Job '[^']+' (succeeded|failed|was stopped)", plain)
    return {"succeeded": "SUCCEEDED", "failed": "FAILED", "was stopped": "STOPPED"}.get(
        ended.group(1) if ended else "", ""
    )


ENDED = ("SUCCEEDED", "FAILED", "STOPPED")
"""Statuses of a job that has ended (`_job_status`)."""


def _wait_on_job(
    condition: Callable[[], bool],
    what: str,
    job_id: str,
    address: str,
    experiment_dir: Path,
) -> None:
    """Wait up to 600 s for ``condition`` (a state of the run job ``job_id`` drives). A
    job that ends without it fails the wait at once (a status call that fails, e.g. on
    a busy machine, is not taken for an end)."""
    deadline = time.time() + 600
    while True:
        for _ in range(20):  # ~10 s of polls between two (slow) `ray job status` calls
            if condition():
                return
            time.sleep(0.5)
        status = _job_status(job_id, address)
        if condition():  # it may have come while the status was asked for
            return
        if status in ENDED or time.time() > deadline:
            _fail_showing_job(f"no {what}", status, job_id, address, experiment_dir)


def _wait_for_status(
    wanted: str, job_id: str, address: str, experiment_dir: Path, timeout: float
) -> None:
    """Wait up to ``timeout`` s for the job to reach status ``wanted``; an end in
    another status fails at once."""
    deadline = time.time() + timeout
    while True:
        status = _job_status(job_id, address)
        if status == wanted:
            return
        if status in ENDED or time.time() > deadline:
            _fail_showing_job(f"not {wanted}", status, job_id, address, experiment_dir)
        time.sleep(1.0)


def _fail_showing_job(
    what: str, status: str, job_id: str, address: str, experiment_dir: Path
) -> NoReturn:
    """Fail a wait, showing the job's status, the end of its log and what Tune's saved
    state knows of each trial, so that a red run says where it stood."""
    logs = _ray_job("logs", job_id, address=address)
    trials = {
        trial_id: f"{t.status} {t.checkpoint.name if t.checkpoint else 'no checkpoint'}"
        for trial_id, t in saved_trials(experiment_dir).items()
    }
    reported = {t.name: len(results_of(t)) for t in trial_dirs(experiment_dir)}
    raise AssertionError(
        f"{what}: job {job_id} {status or 'status unknown'}; saved state {trials}; "
        f"results per trial folder {reported}; the job's log ends:\n"
        + (logs.stdout + logs.stderr)[-6000:]
    )


def test_multi_dataset_job_is_stopped_and_resumed_as_a_job(tmp_path: Path) -> None:
    """A job of 2 datasets (2 trials, one seed each: several seeds per dataset in one
    run are test_seeds_datasets', without a stop) on two one-CPU nodes: `submit.sh
    --no-wait` gives a job id that `ray job status/stop` accept; the trials spread over
    both nodes; a job stopped once every trial has a checkpoint that Tune's saved state
    records is continued with `submit.sh --resume DIR` from those checkpoints, and ended
    with `tune --finish`. Budgets are unreachable, so nothing here depends on the
    machine's speed. The ASHA scheduler is on, restored with the run and overruled by
    the finish request; its grace period is out of reach, so it never stops a trial."""
    second = write_synthetic(tmp_path / "generated", 2, rows=120, seed=5)
    experiment = write_experiment(
        tmp_path,
        iterations=UNREACHABLE,
        algorithms=("PPO",),
        datasets=[str(SAMPLE_SPEC), str(second)],
        scheduler={"kind": "asha", "grace_period": UNREACHABLE},
    )
    storage = tmp_path / "shared"
    with local_cluster(head_cpus=1, extra_nodes=(1,)) as cluster:
        submitted = submit(
            str(experiment),
            "--no-wait",
            "--address",
            cluster.dashboard,
            "--storage-path",
            str(storage),
        )
        assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
        job_id = re.search(r"^job id: (\S+)$", submitted.stdout, re.MULTILINE).group(1)  # type: ignore[union-attr]
        assert _job_status(job_id, cluster.dashboard) in ("PENDING", "RUNNING")
        experiment_dir = created_experiment_dir(storage)

        def every_trial_checkpointed_in_saved_state() -> bool:
            saved = saved_trials(experiment_dir).values()
            return len(saved) == 2 and all(t.checkpoint is not None for t in saved)

        _wait_on_job(
            every_trial_checkpointed_in_saved_state,
            "a checkpoint of every trial",
            job_id,
            cluster.dashboard,
            experiment_dir,
        )
        stopped = _ray_job("stop", job_id, address=cluster.dashboard)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        _wait_for_status("STOPPED", job_id, cluster.dashboard, experiment_dir, timeout=300)
        assert not (experiment_dir / "best.json").exists()
        # the checkpoints the state saved at the stop names (read once the run has
        # ended: while it runs, `num_to_keep` may delete a named one at any moment)
        restore_points = {
            trial_id: checkpoint_iteration(t.checkpoint)  # type: ignore[arg-type]
            for trial_id, t in saved_trials(experiment_dir).items()
        }
        # the stop's SIGTERM ended the run as Ctrl-C does (state saved whole), neither at
        # once (Ray's own SIGTERM handler) nor by Ray's SIGKILL after the wait
        stopped_log = _ray_job("logs", job_id, address=cluster.dashboard)
        assert "continue with: rllib-project tune --resume" in stopped_log.stdout, (
            stopped_log.stdout[-3000:]
        )

        resumed = submit(
            "--resume", str(experiment_dir), "--no-wait", "--address", cluster.dashboard
        )
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        resumed_id = re.search(r"^job id: (\S+)$", resumed.stdout, re.MULTILINE).group(1)  # type: ignore[union-attr]
        trials = trial_dirs(experiment_dir)
        assert len(trials) == 2
        _wait_on_job(
            lambda: all(restored_results(t) for t in trials),
            "a result of every trial",
            resumed_id,
            cluster.dashboard,
            experiment_dir,
        )
        finish = run_cli("tune", "--finish", experiment_dir)
        assert finish.returncode == 0, finish.stderr
        _wait_for_status("SUCCEEDED", resumed_id, cluster.dashboard, experiment_dir, timeout=400)
    manifest = json.loads((experiment_dir / "best.json").read_text())
    assert set(manifest["best"]) == {"sample_spec/PPO", "spec/PPO"}
    assert len(manifest["runs"]) == 2 and manifest["trial_errors"] == []
    nodes = {r["node_id"] for t in trials for r in results_of(t)}
    assert len(nodes) == 2, nodes  # a trial per one-CPU node
    for trial in trials:
        results = results_of(trial)
        reported = [r["training_iteration"] for r in results]
        assert reported.count(1) == 1, (trial.name, reported)  # never started from scratch
        # went on from a checkpoint at least as new as the one the stop's saved state
        # names (or a newer kept one)
        first_restored = restored_results(trial)[0]["training_iteration"]
        assert first_restored >= restore_points[results[0]["trial_id"]] + 1, (trial, reported)


def test_submit_refuses_a_bad_experiment_path_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", "scripts/submit.sh", str(tmp_path / "missing.yaml")],
        cwd=REPO,
        env=fresh_shell_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "missing.yaml" in result.stderr
