"""``rllib-project backtest``: a policy replayed against the time-ordered log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import env
from rllib_project.backtest import JSON_KEYS, agreement_of, backtest_rows, directions
from tests.conftest import REPO
from tests.experiments import only_experiment_dir, write_experiment
from tests.test_fit_cli import run_cli

FURNACE_SPEC = REPO / "data" / "furnace_log_spec.yaml"


def test_directions_and_agreement_are_counted_per_control() -> None:
    steps = np.array([1.0, 0.5])
    operator = directions(np.array([[0.3, 0.0], [0.0, -0.5], [0.0, 0.0]]), steps)
    np.testing.assert_array_equal(operator, [[1, 0], [0, -1], [0, 0]])
    policy = np.array([[1, 1], [0, -1], [0, 0]])
    agreement = agreement_of(operator, policy, ["a", "b"])
    assert agreement.all_controls == pytest.approx(2 / 3)
    assert agreement.per_control == {"a": 1.0, "b": pytest.approx(2 / 3)}
    assert agreement.operator_moved_rows == 2
    assert agreement.when_operator_moved == pytest.approx(1 / 2)


def test_backtest_rows_have_a_full_horizon_inside_their_segment() -> None:
    plant = env.load_plant(FURNACE_SPEC)
    horizon = plant.settings.horizon
    rows = backtest_rows(plant, horizon)
    segment = plant.rows.segment
    assert segment is not None and len(rows) > 0.5 * plant.rows.n_rows
    assert (segment[rows + horizon] == segment[rows]).all()
    assert np.isin(rows, plant.start_indices).all()
    # a row whose window crosses a gap is left out
    ends = np.flatnonzero(np.diff(segment)) + 1
    assert not np.isin(ends[0] - 1, rows)


def test_a_bad_source_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for source in (tmp_path / "missing", tmp_path):
        result = run_cli("backtest", source, "--json")
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert result.stdout == ""


@pytest.mark.slow
def test_backtest_json_on_the_bundled_log(tmp_path: Path, tiny_run: Path) -> None:
    """A real (tiny) PPO run on the furnace log, then ``backtest --json``."""
    experiment = write_experiment(
        tmp_path, algorithms=("PPO",), dataset=str(FURNACE_SPEC), rows=16, iterations=1
    )
    result = run_cli("tune", experiment)
    assert result.returncode == 0, result.stderr[-3000:]
    experiment_dir = only_experiment_dir(tmp_path / "results")
    result = run_cli("backtest", experiment_dir, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert set(JSON_KEYS) <= set(figures)
    plant = env.load_plant(FURNACE_SPEC)
    assert figures["rows"] == len(backtest_rows(plant, plant.settings.horizon))
    assert set(figures["agreement"]["per_control"]) == set(plant.spec.control_names)
    assert 0.0 <= figures["time_in_band_log"] <= 1.0
    assert 0.0 <= figures["time_in_band_policy"] <= 1.0
    folder = Path(figures["folder"])
    assert folder == experiment_dir / "backtest"
    assert (folder / "backtest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (folder / "backtest.md").read_text(encoding="utf-8")
    assert f"{figures['time_in_band_log']:.1%}" in text and "backtest.png" in text
    # the log's own time in band, counted here from the CSV the spec names
    rows = backtest_rows(plant, plant.settings.horizon)
    windows = plant.rows.state[rows[:, None] + np.arange(1, plant.settings.horizon + 1)]
    assert figures["time_in_band_log"] == pytest.approx(plant.in_band(windows).mean())
    # its own older folder is replaced; a folder with someone else's file is not touched
    assert run_cli("backtest", experiment_dir).returncode == 0
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep")
    result = run_cli("backtest", experiment_dir, "--out", theirs)
    assert result.returncode == 2 and "notes.txt" in result.stderr, result.stderr[-2000:]
    assert "backtest:" not in result.stderr  # refused before the policy was loaded
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]
    # a log without time order (the sample's shared run) has nothing to replay: one
    # line, exit 2
    result = run_cli("backtest", tiny_run, "--out", tmp_path / "static_backtest")
    assert result.returncode == 2 and "time-ordered" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "static_backtest").exists()
