"""Cluster jobs: ray job submit to a head started here, and trials on two nodes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.experiments import only_experiment_dir, write_experiment
from tests.ray_cluster import local_cluster, ray_env

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def test_ray_job_submit_runs_tune_and_writes_manifest(tmp_path: Path) -> None:
    experiment = write_experiment(tmp_path, iterations=1, algorithms=("PPO", "DQN"))
    storage = tmp_path / "shared"
    with local_cluster(head_cpus=2) as cluster:
        env = ray_env()
        result = subprocess.run(
            [
                "bash",
                "scripts/submit.sh",
                str(experiment),
                "--address",
                cluster.dashboard,
                "--storage-path",
                str(storage),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        assert "succeeded" in (result.stdout + result.stderr).lower()
    manifest = json.loads((only_experiment_dir(storage) / "best.json").read_text())
    assert set(manifest["best"]) == {"PPO", "DQN"}


def test_trials_spread_over_two_nodes(tmp_path: Path) -> None:
    experiment = write_experiment(
        tmp_path, iterations=1, algorithms=("PPO",), samples_per_algorithm=4
    )
    with local_cluster(head_cpus=1, extra_nodes=(1,)) as cluster:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "rllib_project",
                "tune",
                str(experiment),
                "--address",
                cluster.address,
            ],
            cwd=REPO,
            env=ray_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    experiment_dir = only_experiment_dir(tmp_path / "results")
    nodes = set()
    for trial in (t for t in experiment_dir.iterdir() if t.is_dir()):
        for line in (trial / "result.json").read_text().splitlines():
            nodes.add(json.loads(line)["node_id"])
    assert len(nodes) == 2, nodes
