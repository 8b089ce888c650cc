"""Malformed inputs across the CSV, the dataset spec and the tune YAML.

Each must end with exit code 2 and one line naming the file and the problem, with no
traceback, and must leave every file as it was (nothing written, nothing changed).
The CSV/spec cases run through ``rllib-project fit`` and ``rllib-project tune``; the
tune cases fail before Ray starts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.datasets import write_dataset
from tests.experiments import write_experiment
from tests.test_fit_cli import run_cli


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` with its content hash."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def edit_yaml(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / name
        data = yaml.safe_load(path.read_text())
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    return apply


def edit_csv(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / "plant.csv"
        change(pd.read_csv(path)).to_csv(path, index=False)

    return apply


def _all_nan_control(frame: pd.DataFrame) -> pd.DataFrame:
    frame["c1"] = np.nan
    return frame


def _algorithm_file(folder: Path, name: str, change: Callable[[dict], None]) -> None:
    """Copy the real algorithm YAML next to the experiment, edited, and point at it."""
    from tests.experiments import CONFIGS

    data = yaml.safe_load((CONFIGS / f"{name.lower()}.yaml").read_text())
    change(data)
    (folder / f"{name.lower()}.yaml").write_text(yaml.safe_dump(data))
    edit_yaml("experiment.yaml", lambda e: e["algorithms"].update({name: f"{name.lower()}.yaml"}))(
        folder
    )


def _storage_under_a_file(folder: Path) -> None:
    """A storage path nobody can create: its parent is a regular file."""
    blocker = folder / "not_a_folder"
    blocker.write_text("x")
    edit_yaml("experiment.yaml", lambda e: e.update(storage_path=str(blocker / "results")))(folder)


# case name -> (what to break, command kind, expected text in the one-line message)
CASES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # --- the CSV
    "csv missing": (lambda f: (f / "plant.csv").unlink(), "fit", "plant.csv: CSV file not found"),
    "csv empty": (lambda f: (f / "plant.csv").write_text(""), "fit", "plant.csv: file is empty"),
    "csv header only": (
        lambda f: (f / "plant.csv").write_text("temp,c0,c1\n"),
        "fit",
        "plant.csv: no data rows",
    ),
    "csv non-numeric": (
        edit_csv(lambda d: d.astype(object).assign(temp="warm")),
        "fit",
        "temp: non-numeric value 'warm'",
    ),
    "csv all-NaN control": (edit_csv(_all_nan_control), "fit", "c1: column has no values"),
    "csv duplicate columns": (
        lambda f: (f / "plant.csv").write_text("temp,c0,c1,c1\n1,2,3,4\n"),
        "fit",
        "c1: duplicate column",
    ),
    "csv infinite value": (
        edit_csv(lambda d: d.assign(c0=d["c0"].where(d.index != 4, np.inf))),
        "fit",
        "c0: infinite value in data row 5",
    ),
    "csv constant control": (
        edit_csv(lambda d: d.assign(c0=1.5)),
        "fit",
        "c0: control is constant",
    ),
    # --- the dataset spec
    "spec unknown column": (
        edit_yaml("spec.yaml", lambda s: s["controls"].append({"name": "valve_9", "step": 1.0})),
        "fit",
        "valve_9: column missing from CSV",
    ),
    "spec unknown key": (
        edit_yaml("spec.yaml", lambda s: s.update(horizn=5)),
        "fit",
        "spec.yaml: unknown key(s) horizn",
    ),
    "spec wrong type": (
        edit_yaml("spec.yaml", lambda s: s.update(band="high")),
        "fit",
        "spec.yaml: band: expected a list",
    ),
    "spec inverted band": (
        edit_yaml("spec.yaml", lambda s: s.update(band=[510, 490])),
        "fit",
        "band is inverted",
    ),
    "spec zero step": (
        edit_yaml("spec.yaml", lambda s: s["controls"][0].update(step=0)),
        "fit",
        "step must be a positive number",
    ),
    "spec negative step": (
        edit_yaml("spec.yaml", lambda s: s["controls"][0].update(step=-1)),
        "fit",
        "step must be a positive number",
    ),
    "spec unreachable band": (
        edit_yaml("spec.yaml", lambda s: s.update(band=[2000, 2010])),
        "fit",
        "band [2000, 2010] is unreachable",
    ),
    "spec bounds exclude every row": (
        edit_yaml("spec.yaml", lambda s: s["controls"][0].update(bounds=[500, 600])),
        "fit",
        "bounds [500, 600] exclude every row",
    ),
    "spec negative horizon": (
        edit_yaml("spec.yaml", lambda s: s["env"].update(horizon=-3)),
        "fit",
        "env.horizon must be >= 1",
    ),
    "spec hold margin of the whole band": (
        edit_yaml("spec.yaml", lambda s: s["env"].update(hold_margin=1.0)),
        "fit",
        "env.hold_margin must be in [0, 1)",
    ),
    "spec negative observer ratio": (
        edit_yaml("spec.yaml", lambda s: s["env"].update(observer_ratio=-0.1)),
        "fit",
        "env.observer_ratio must be in [0, 1000000]",
    ),
    "spec observer ratio that overflows the filter": (
        edit_yaml("spec.yaml", lambda s: s["env"].update(observer_ratio=1e308)),
        "fit",
        "env.observer_ratio must be in [0, 1000000]",
    ),
    "spec invalid yaml": (
        lambda f: (f / "spec.yaml").write_text("band: [1, 2\n"),
        "fit",
        "spec.yaml: line",
    ),
    # --- the tune YAML
    "tune unknown key": (
        edit_yaml("experiment.yaml", lambda e: e.update(epochs=3)),
        "tune",
        "experiment.yaml: unknown key(s) epochs",
    ),
    "tune wrong type": (
        edit_yaml("experiment.yaml", lambda e: e["stop"].update(training_iterations="ten")),
        "tune",
        "stop.training_iterations: expected a whole number",
    ),
    "tune negative budget": (
        edit_yaml("experiment.yaml", lambda e: e["stop"].update(training_iterations=-5)),
        "tune",
        "stop.training_iterations must be positive",
    ),
    "tune unknown algorithm": (
        edit_yaml("experiment.yaml", lambda e: e["algorithms"].update(A2C="a2c.yaml")),
        "tune",
        "unknown algorithm 'A2C'",
    ),
    "tune unusable storage path": (_storage_under_a_file, "tune", "not_a_folder is not a folder"),
    "tune missing dataset": (
        edit_yaml("experiment.yaml", lambda e: e.update(dataset="nowhere.yaml")),
        "tune",
        "dataset: dataset spec",
    ),
    "tune no stop limit": (
        edit_yaml("experiment.yaml", lambda e: e.update(stop={})),
        "tune",
        "stop needs at least one limit",
    ),
    "tune unknown hyper-parameter": (
        lambda f: _algorithm_file(f, "PPO", lambda a: a["training"].update(learning_rate=0.1)),
        "tune",
        "training.learning_rate: unknown PPO training setting",
    ),
    "tune bad search space": (
        lambda f: _algorithm_file(
            f, "PPO", lambda a: a["training"].update(lr={"loguniform": [0, 1]})
        ),
        "tune",
        "training.lr: loguniform bounds",
    ),
    "tune empty datasets": (
        edit_yaml("experiment.yaml", lambda e: e.update(datasets=[]) or e.pop("dataset")),
        "tune",
        "datasets must list at least one dataset spec",
    ),
    "tune duplicate dataset": (
        edit_yaml("experiment.yaml", lambda e: e.update(datasets=[e.pop("dataset")] * 2)),
        "tune",
        "datasets[1]: ",  # names the second entry ...
    ),
    "tune dataset and datasets": (
        edit_yaml("experiment.yaml", lambda e: e.update(datasets=[e["dataset"]])),
        "tune",
        "give either dataset (one spec) or datasets (a list), not both",
    ),
    "tune zero seeds": (
        edit_yaml("experiment.yaml", lambda e: e.update(seeds=0)),
        "tune",
        "seeds must be >= 1, got 0",
    ),
    "tune bad scheduler": (
        edit_yaml("experiment.yaml", lambda e: e.update(scheduler={"reduction_factor": 1})),
        "tune",
        "scheduler.reduction_factor must be > 1",
    ),
    "tune resource key per algorithm": (
        lambda f: _algorithm_file(f, "DQN", lambda a: a["env_runners"].update(num_env_runners=8)),
        "tune",
        "env_runners.num_env_runners: is derived from the cluster",
    ),
    "tune wrong action mode": (
        lambda f: _algorithm_file(f, "DQN", lambda a: a.update(action_mode="continuous")),
        "tune",
        "DQN cannot use action_mode 'continuous'",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_input_is_refused_cleanly(case: str, tmp_path: Path) -> None:
    break_it, command, expected = CASES[case]
    folder = tmp_path / "inputs"
    spec = write_dataset(folder, 2)
    experiment = write_experiment(folder, storage=tmp_path / "storage")
    experiment.write_text(experiment.read_text().replace(str(_sample_spec()), str(spec)))
    break_it(folder)
    before = snapshot(tmp_path)
    if command == "fit":
        result = run_cli("fit", spec, "--out", tmp_path / "out" / "model.json")
    else:
        result = run_cli("tune", experiment)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    message = result.stderr.strip()
    assert "Traceback" not in result.stderr and "\n" not in message, message
    assert message.startswith("error: ") and expected in message, message
    assert snapshot(tmp_path) == before  # nothing written, nothing changed
    assert not (tmp_path / "out").exists() and not (tmp_path / "storage").exists()


def _sample_spec() -> Path:
    from tests.conftest import SAMPLE_SPEC

    return SAMPLE_SPEC


def test_there_are_at_least_twenty_cases() -> None:
    assert len(CASES) >= 20


def _experiment_folder(folder: Path, finished: bool = False) -> Path:
    """The files ``tune`` writes first, without running anything."""
    experiment_dir = folder / "results" / "tiny_20260101-000000"
    (experiment_dir / "PPO_a1b2c_00000").mkdir(parents=True)
    (experiment_dir / "experiment.json").write_text(
        '{"algorithms": {"PPO": {}}, "datasets": {"plant_a": {}}}'
    )
    if finished:
        (experiment_dir / "best.json").write_text("{}")
    return experiment_dir


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (lambda d: ["--finish", d.parent], "not an experiment folder"),
        (lambda d: ["--finish", d, "--only", "SAC"], "no trial, algorithm or dataset SAC"),
        (lambda d: ["--only", "PPO"], "give one of"),
        (lambda d: ["--resume", d, "--finish", d], "give one of"),
        (lambda d: ["--finish", d / "missing"], "not an experiment folder"),
    ],
)
def test_bad_finish_requests_are_one_line(
    args: Callable[[Path], list], message: str, tmp_path: Path
) -> None:
    experiment_dir = _experiment_folder(tmp_path)
    before = snapshot(tmp_path)
    result = run_cli("tune", *args(experiment_dir))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr, result.stderr
    assert snapshot(tmp_path) == before


def test_finish_request_of_a_finished_run_is_refused(tmp_path: Path) -> None:
    experiment_dir = _experiment_folder(tmp_path, finished=True)
    result = run_cli("tune", "--finish", experiment_dir)
    assert result.returncode == 2 and "already finished" in result.stderr
    assert not (experiment_dir / "finish_request.txt").exists()


def test_finish_request_names_a_trial_an_algorithm_or_a_dataset(tmp_path: Path) -> None:
    experiment_dir = _experiment_folder(tmp_path)
    for names in (["PPO_a1b2c_00000"], ["PPO"], ["plant_a"], []):
        result = run_cli("tune", "--finish", experiment_dir, *(["--only", *names] if names else []))
        assert result.returncode == 0, result.stderr
    request = (experiment_dir / "finish_request.txt").read_text().split()
    assert sorted(request) == ["*", "PPO", "PPO_a1b2c_00000", "plant_a"]


def test_a_finish_request_is_written_without_importing_ray(tmp_path: Path) -> None:
    """``tune --finish`` writes a file: it must not pay Ray's import (seconds) for it."""
    import subprocess
    import sys

    experiment_dir = _experiment_folder(tmp_path)
    code = (
        "import sys; from rllib_project.cli import main; "
        f"code = main(['tune', '--finish', {str(experiment_dir)!r}]); "
        "print(code, sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "0 []", result.stdout


@pytest.mark.slow
def test_a_model_file_that_cannot_be_read_leaves_no_experiment_behind(tmp_path: Path) -> None:
    """The named model is read while Ray starts, after the experiment folder was made:
    the error is still one line, and the half-made folder (and its storage) is removed."""
    folder = tmp_path / "inputs"
    spec = write_dataset(folder, 2)
    broken = folder / "model.json"
    broken.write_text("{not json")
    experiment = write_experiment(folder, storage=tmp_path / "storage", model=str(broken))
    experiment.write_text(experiment.read_text().replace(str(_sample_spec()), str(spec)))
    before = snapshot(tmp_path)
    result = run_cli("tune", experiment)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    message = result.stderr.strip().splitlines()[-1]  # after Ray's line that it started
    assert message.startswith("error: ") and "model.json" in message, message
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "storage").exists()
