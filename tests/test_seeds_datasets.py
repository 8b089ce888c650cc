"""One real Tune run over 2 datasets x 2 algorithms x 2 seeds, with ASHA on: best.json
per dataset x algorithm, a record of every run, the comparison with confidence
intervals in ``evaluate --json``, the report's new plots, and ``--dataset NAME``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SAMPLE_SPEC
from tests.datasets import write_synthetic
from tests.experiments import only_experiment_dir, write_experiment
from tests.test_fit_cli import run_cli
from tests.tune_runs import UNREACHABLE, results_of, trial_dirs

pytestmark = pytest.mark.slow

DATASETS = ("sample_spec", "spec")
"""The sample data and a generated 2-control plant (``<folder>/spec.yaml``)."""
ASHA_MAX_T = 2


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The run's folder and what ``tune`` printed. The iteration budget is out of reach:
    the scheduler's ``max_t`` (or its early stopping) is what ends every trial."""
    folder = tmp_path_factory.mktemp("grid_run")
    second = write_synthetic(folder / "generated", 2, rows=120, seed=5)
    experiment = write_experiment(
        folder,
        algorithms=("PPO", "DQN"),
        datasets=[str(SAMPLE_SPEC), str(second)],
        seeds=2,
        stop={"training_iterations": UNREACHABLE, "success_rate": 1.0},
        scheduler={"kind": "asha", "grace_period": 1, "reduction_factor": 2, "max_t": ASHA_MAX_T},
    )
    result = run_cli("tune", experiment, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return only_experiment_dir(folder / "results"), result.stdout


def test_every_algorithm_dataset_and_seed_ran_and_best_json_has_one_entry_each(
    grid_run: tuple[Path, str],
) -> None:
    experiment_dir, output = grid_run
    assert "2 algorithm(s) x 2 dataset(s) x 2 seed(s) x 1 sample(s) = 8" in output
    assert "ASHA" in output
    manifest = json.loads((experiment_dir / "best.json").read_text())
    assert set(manifest["best"]) == {f"{d}/{a}" for d in DATASETS for a in ("PPO", "DQN")}
    for key, entry in manifest["best"].items():
        assert key == f"{entry['dataset']}/{entry['algorithm']}"
        assert Path(entry["checkpoint"]).is_dir()
        assert entry["config"]["plant"]["dataset"] == entry["dataset"]
    assert set(manifest["datasets"]) == set(DATASETS)
    runs = manifest["runs"]
    assert len(runs) == 8 and all(r["error"] is None and r["metrics"] for r in runs)
    seeds = {(r["dataset"], r["algorithm"]): set() for r in runs}
    for r in runs:
        seeds[(r["dataset"], r["algorithm"])].add(r["seed"])
        assert 1 <= r["iterations"] <= ASHA_MAX_T  # ended by the scheduler, not the budget
        reached = r["target_reached"]
        if reached is not None:  # when first met: never after the run's end
            assert reached["iteration"] <= r["iterations"]
            assert reached["env_steps"] <= r["env_steps"]
    assert len({frozenset(s) for s in seeds.values()}) == 1  # the same seeds everywhere ...
    assert all(len(s) == 2 for s in seeds.values())  # ... two distinct ones
    # trial folders and progress rows name their dataset and algorithm
    folders = Counter(p.name.rsplit("_", 2)[0] for p in trial_dirs(experiment_dir))
    assert folders == {f"{a}_{d}": 2 for d in DATASETS for a in ("PPO", "DQN")}
    for trial in trial_dirs(experiment_dir):
        datasets = {r["dataset"] for r in results_of(trial)}
        assert len(datasets) == 1 and trial.name.split("_", 1)[1].startswith(datasets.pop())


def test_evaluate_json_has_the_aggregate_with_intervals(grid_run: tuple[Path, str]) -> None:
    experiment_dir, _ = grid_run
    result = run_cli("evaluate", experiment_dir, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    output = json.loads(result.stdout, parse_constant=pytest.fail)
    assert {row["dataset"] for row in output["rows"]} == set(DATASETS)
    aggregate = output["aggregate"]
    for algorithm in ("PPO", "DQN"):
        statistics = aggregate["algorithms"][algorithm]
        assert statistics["n_runs"] == 4 and statistics["datasets"] == sorted(DATASETS)
        for metric in ("success_rate_solvable", "time_to_target_s", "steps_to_target"):
            value = statistics[metric]
            assert set(value) == {"n_runs", "iqm", "mean", "ci95"}
            low, high = value["ci95"]["iqm"]
            assert low <= value["iqm"] <= high
        for dataset in DATASETS:
            assert aggregate["per_dataset"][dataset][algorithm]["n_runs"] == 2
    (pair,) = aggregate["probability_of_improvement"]
    assert 0.0 <= pair["probability"] <= 1.0 and pair["ci95"] is not None

    one = run_cli("evaluate", experiment_dir, "--json", "--dataset", "spec")
    assert one.returncode == 0, one.stderr[-3000:]
    output = json.loads(one.stdout)
    assert {row["dataset"] for row in output["rows"]} == {"spec"}
    assert output["aggregate"]["algorithms"]["PPO"]["n_runs"] == 2


def test_report_has_the_comparison_plots(grid_run: tuple[Path, str]) -> None:
    import matplotlib.image

    experiment_dir, _ = grid_run
    result = run_cli("report", experiment_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    text = (experiment_dir / "report" / "report.md").read_text()
    pngs = [
        "learning_curves.png",
        "improvement.png",
        "performance_profile.png",
        *(f"trajectories_{d}.png" for d in DATASETS),
    ]
    for png in pngs:
        assert f"]({png})" in text, png
        image = matplotlib.image.imread(experiment_dir / "report" / png)
        assert image.shape[0] > 200 and np.std(image[..., :3]) > 0.05, png
    assert "Every trial had the same budget" in text
    assert "| PPO | 4 |" in text and "P(DQN > PPO)" in text
    for dataset in DATASETS:
        assert f"## Dataset `{dataset}`" in text


def test_a_policy_of_one_dataset_is_picked_with_dataset_name(grid_run: tuple[Path, str]) -> None:
    experiment_dir, _ = grid_run
    unnamed = run_cli("recommend", "--policy", experiment_dir, "--row", 3)
    assert unnamed.returncode == 2
    assert unnamed.stderr.strip().count("\n") == 0 and "--dataset NAME" in unnamed.stderr
    named = run_cli("recommend", "--policy", experiment_dir, "--row", 3, "--dataset", "spec")
    assert named.returncode == 0, named.stderr[-3000:]
    assert "u0" in named.stdout and "fuel_rate" not in named.stdout  # the generated plant
    unknown = run_cli("recommend", "--policy", experiment_dir, "--row", 3, "--dataset", "x")
    assert unknown.returncode == 2 and "no dataset 'x'" in unknown.stderr
