"""Time-ordered logs: identifying the lag and dead time, blocked CV, time stamps, fit CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import env
from env.data import load_plant_data
from env.dynamics import blocked_log, held_out_rmse, shuffled_log
from env.model import FIRST_ORDER, STATIC, _feature_map, fit_process_model
from env.synthetic import make_synthetic_plant
from env.synthetic_log import LogSettings
from tests.datasets import write_dataset
from tests.test_fit_cli import run_cli


def write_log(folder: Path, rate: float, dead_time: int, seed: int = 0, **log: object) -> Path:
    """A generated time-ordered log of a lagging plant (2 controls, test-sized)."""
    settings = LogSettings(
        rate=rate,
        dead_time=dead_time,
        samples=int(log.pop("samples", 900)),
        **log,  # type: ignore[arg-type]
    )
    plant = make_synthetic_plant(
        n_controls=2, mean_depth=3, seed=seed, ensemble_size=2, horizon=40, log=settings
    )
    return plant.write(folder)


@pytest.mark.parametrize(("rate", "dead_time"), [(0.08, 0), (0.3, 1), (0.55, 2)])
def test_identification_recovers_rate_and_dead_time(
    rate: float, dead_time: int, tmp_path: Path
) -> None:
    spec = write_log(tmp_path, rate, dead_time, seed=3, drift_fraction=0.03, gaps=2)
    model = fit_process_model(load_plant_data(env.load_spec(spec)))
    dynamics = model.dynamics
    assert dynamics is not None and dynamics.kind == FIRST_ORDER
    assert abs(dynamics.rate - rate) <= 0.05 and dynamics.dead_time == dead_time
    # the free-run error is scored next to the one-step error, and beats static
    assert dynamics.cv_free_run_rmse is not None and dynamics.cv_one_step_rmse is not None
    best_static = min(s.rmse for s in model.cv_scores if s.kind == STATIC)
    assert dynamics.cv_free_run_rmse < 0.5 * best_static


def test_rows_without_dynamics_stay_static_with_a_time_column(tmp_path: Path) -> None:
    spec = make_synthetic_plant(n_controls=3, rows=400, seed=2, ensemble_size=2).write(tmp_path)
    frame = pd.read_csv(tmp_path / "plant.csv")
    frame.insert(0, "minute", np.arange(len(frame)))
    frame.to_csv(tmp_path / "plant.csv", index=False)
    data = yaml.safe_load(spec.read_text())
    spec.write_text(yaml.safe_dump({**data, "time": "minute"}))
    model = fit_process_model(load_plant_data(env.load_spec(spec)))
    assert model.dynamics is not None and model.dynamics.kind == STATIC
    assert env.load_plant(spec).lagging is False


def test_shuffled_folds_flatter_a_time_series_and_blocked_ones_are_used(tmp_path: Path) -> None:
    """Shuffled folds put each held-out row's neighbours into training: on an
    autocorrelated log a flexible model then looks far better than it is."""
    spec = write_log(tmp_path, 0.1, 1, seed=5, drift_fraction=0.05, samples=1200)
    data = load_plant_data(env.load_spec(spec))
    settings = data.spec.model
    z = (data.controls - data.controls.mean(0)) / data.controls.std(0)
    y = data.state - data.state.mean()
    assert data.segment is not None
    blocked = blocked_log(z, y, data.segment, settings)
    assert (np.diff(blocked.fold) >= 0).all()  # contiguous blocks in time order
    fmap = _feature_map("rbf", blocked.z, settings)
    honest = held_out_rmse(blocked, fmap, 1e-3)
    flattering = held_out_rmse(shuffled_log(blocked, 0), fmap, 1e-3)
    assert flattering < 0.6 * honest
    # the fit reports the blocked figure for the static rbf candidate, not the flattering one
    model = fit_process_model(data)
    static_rbf = next(s for s in model.cv_scores if s.kind == STATIC and s.family == "rbf")
    assert static_rbf.one_step_rmse is not None and static_rbf.one_step_rmse > 1.3 * flattering


def _log_folder(tmp_path: Path) -> Path:
    spec = write_log(tmp_path, 0.3, 1, seed=1, samples=400)
    frame = pd.read_csv(tmp_path / "plant.csv")
    assert frame["time"].is_monotonic_increasing
    return spec


def _rewrite(folder: Path, edit) -> None:
    frame = pd.read_csv(folder / "plant.csv", dtype={"time": str})
    edit(frame).to_csv(folder / "plant.csv", index=False)


def _swap(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[[10, 11]] = frame.loc[[11, 10]].to_numpy()
    return frame


def _duplicate(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[21, "time"] = frame.loc[20, "time"]
    return frame


def _bad_stamp(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[30, "time"] = "yesterday noon"
    return frame


BAD_LOGS = {
    "unsorted": (_swap, "time goes backwards", "data rows 11 and 12"),
    "duplicated": (_duplicate, "repeats in data rows 21 and 22", "time"),
    "unreadable stamp": (_bad_stamp, "cannot read 'yesterday noon' in data row 31", "time"),
}


@pytest.mark.parametrize("case", list(BAD_LOGS))
def test_bad_time_stamps_give_one_line_and_write_nothing(case: str, tmp_path: Path) -> None:
    spec = _log_folder(tmp_path / "data")
    edit, expected, where = BAD_LOGS[case]
    _rewrite(tmp_path / "data", edit)
    out = tmp_path / "out" / "model.json"
    result = run_cli("fit", spec, "--out", out)
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    assert expected in message and where in message
    assert not out.exists() and not out.parent.exists()


def test_gaps_and_missing_values_split_the_log_into_segments(tmp_path: Path) -> None:
    spec = _log_folder(tmp_path)
    frame = pd.read_csv(tmp_path / "plant.csv")
    frame.loc[100, "temperature"] = np.nan  # a missing reading in the middle
    frame.loc[200, "time"] = np.nan  # a missing time stamp: dropped the same way
    frame = frame.drop(index=range(300, 305))  # five samples lost: a gap in time
    frame.to_csv(tmp_path / "plant.csv", index=False)
    result = run_cli("fit", spec, "--out", tmp_path / "m.json", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["segments"] == 4 and summary["rows"] == len(frame) - 2
    assert set(summary["dynamics"]) == {
        "kind", "rate", "dead_time", "cv_free_run_rmse", "cv_one_step_rmse"
    }  # fmt: skip
    notes = " ".join(summary["notes"])
    assert "dropped 2 of" in notes and "4 segment(s)" in notes and "1 gap(s)" in notes
    data = load_plant_data(env.load_spec(spec))
    assert data.segment is not None
    # no transition is learnt across a cut: each segment is consecutive samples
    same = data.segment[1:] == data.segment[:-1]
    assert np.allclose(np.diff(data.time)[same], data.sample_period)


def test_dates_and_numbers_both_work_as_time(tmp_path: Path) -> None:
    spec = _log_folder(tmp_path)
    as_dates = load_plant_data(env.load_spec(spec))
    frame = pd.read_csv(tmp_path / "plant.csv")
    frame["time"] = np.arange(len(frame)) * 5  # sample numbers in steps of 5
    frame.to_csv(tmp_path / "plant.csv", index=False)
    as_numbers = load_plant_data(env.load_spec(spec))
    assert as_dates.time_kind == "datetime" and as_dates.sample_period == 60.0
    assert as_numbers.time_kind == "number" and as_numbers.sample_period == 5.0
    np.testing.assert_array_equal(as_dates.segment, as_numbers.segment)


def test_fit_json_reports_static_for_rows_without_time(tmp_path: Path) -> None:
    spec = write_dataset(tmp_path, 2)
    result = run_cli("fit", spec, "--out", tmp_path / "m.json", "--json")
    assert result.returncode == 0, result.stderr
    dynamics = json.loads(result.stdout)["dynamics"]
    assert dynamics["kind"] == "static" and dynamics["rate"] == 1.0
    assert dynamics["dead_time"] == 0 and dynamics["cv_free_run_rmse"] > 0
    assert json.loads(result.stdout)["observer"] is None  # no lag: nothing to observe


SPEC_CONFLICTS = {
    "first_order without time": (
        {"dynamics": "first_order"},
        "dynamics: first_order needs a time column",
        False,
    ),
    "hand-set lag on identified dynamics": (
        {"env": {"horizon": 40, "response_rate": 0.5}},
        "env.response_rate 0.5 conflicts with the dynamics identified from the log",
        True,
    ),
}


@pytest.mark.parametrize("case", list(SPEC_CONFLICTS))
def test_spec_conflicts_are_refused(case: str, tmp_path: Path) -> None:
    edit, expected, with_time = SPEC_CONFLICTS[case]
    spec = _log_folder(tmp_path) if with_time else write_dataset(tmp_path, 2)
    data = yaml.safe_load(spec.read_text())
    spec.write_text(yaml.safe_dump({**data, **edit}))
    out = tmp_path / "m.json"
    result = run_cli("fit", spec, "--out", out)
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    assert not out.exists()


def test_the_bundled_log_fits_its_dynamics(tmp_path: Path) -> None:
    from tests.conftest import REPO

    result = run_cli(
        "fit", REPO / "data" / "furnace_log_spec.yaml", "--out", tmp_path / "m.json", "--json"
    )
    assert result.returncode == 0, result.stderr
    dynamics = json.loads(result.stdout)["dynamics"]
    # data/make_furnace_log.py: rate 0.15 per sample, dead time 2 samples
    assert dynamics["kind"] == "first_order" and dynamics["dead_time"] == 2
    assert abs(dynamics["rate"] - 0.15) <= 0.02
    model = json.loads((tmp_path / "m.json").read_text())
    assert model["dynamics"]["rate"] == dynamics["rate"]
