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


@pytest.fixture(scope="module")
def furnace_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) PPO run on the bundled furnace log: its experiment folder."""
    folder = tmp_path_factory.mktemp("furnace_run")
    experiment = write_experiment(
        folder, algorithms=("PPO",), dataset=str(FURNACE_SPEC), rows=16, iterations=1
    )
    result = run_cli("tune", experiment)
    assert result.returncode == 0, result.stderr[-3000:]
    return only_experiment_dir(folder / "results")


@pytest.mark.slow
def test_backtest_json_on_the_bundled_log(
    tmp_path: Path, tiny_run: Path, furnace_run: Path
) -> None:
    """``backtest --json`` of a real PPO run on the furnace log."""
    experiment_dir = furnace_run
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


@pytest.mark.slow
def test_a_lagging_export_advises_from_a_history_as_the_run_advises_its_row(
    tmp_path: Path, furnace_run: Path
) -> None:
    """The furnace policy exported (``plant-policy/4``, with the observer's ratio) and
    loaded without its rows: a reading sent with the log's readings before it is
    advised as ``recommend --row`` advises that row of the run (settings in flight and
    disturbance from the history). An export of the older ``/3`` format (no ratio)
    still loads, and advises without an observer."""
    from rllib_project.policy import (
        CHECKSUM_FILE,
        LAGGING_EXPORT_FORMAT,
        POLICY_FILE,
        load_policy,
        sha256_file,
    )
    from tests.test_observer import _log_history

    export = tmp_path / "export"
    result = run_cli("export", furnace_run, export)
    assert result.returncode == 0, result.stderr[-3000:]
    policy = load_policy(export)
    plant = env.load_plant(FURNACE_SPEC)
    assert plant.dead_time >= 2 and plant.observer is not None and plant.observer.active
    assert policy.metadata["format"] == LAGGING_EXPORT_FORMAT
    assert policy.plant.observer == plant.observer
    names = (plant.spec.state, *plant.spec.control_names)
    starts = plant.start_indices
    for row in starts[[len(starts) // 4, 3 * len(starts) // 4]]:
        temps, controls = _log_history(plant, int(row))
        table = np.column_stack([temps, controls]).tolist()
        readings = [dict(zip(names, values, strict=True)) for values in table]
        served = policy.recommend(readings[-1], history=readings[:-1]).to_dict()
        number = int(plant.rows.row_numbers[row])
        result = run_cli("recommend", "--policy", furnace_run, "--row", number, "--json")
        assert result.returncode == 0, result.stderr[-3000:]
        logged = json.loads(result.stdout)
        assert abs(logged["disturbance"]) > 0  # the observer has something to say here
        assert served["disturbance"] == pytest.approx(logged["disturbance"], abs=1e-9)
        assert served["controls"] == logged["controls"]
        assert served["moves_to_band"] == logged["moves_to_band"]
    # the same export as the previous format wrote it: no ratio recorded
    meta = json.loads((export / POLICY_FILE).read_text())
    meta["format"] = "plant-policy/3"
    del meta["plant"]["settings"]["observer_ratio"]
    (export / POLICY_FILE).write_text(json.dumps(meta))
    sums = json.loads((export / CHECKSUM_FILE).read_text())
    sums[POLICY_FILE] = sha256_file(export / POLICY_FILE)
    (export / CHECKSUM_FILE).write_text(json.dumps(sums))
    older = load_policy(export)
    assert older.plant.observer is None
    assert older.recommend(readings[-1], history=readings[:-1]).disturbance == 0.0
