"""Advice for a CSV of readings: one row out per row in, bad rows flagged, never half-written."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import env
from env.errors import InputError
from env.support import fit_data_support
from rllib_project.batch_advice import advise_csv
from rllib_project.recommendation import Advisor
from tests.datasets import write_dataset
from tests.test_advice import rule_policy


def _advisor(plant: env.Plant, mode: str = "discrete", act=None) -> Advisor:
    act = act or rule_policy(plant, mode)
    return Advisor("rule", plant, plant.codec(mode), act, fit_data_support(plant.rows))


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _write_readings(path: Path, plant: env.Plant, rows: int, extra: list[str]) -> list[str]:
    """A CSV with a time-stamp column, ``rows`` good readings and the ``extra`` lines."""
    names = [plant.spec.state, *plant.spec.control_names]
    lines = ["timestamp," + ",".join(names)]
    for i in range(rows):
        values = [plant.rows.state[i], *plant.rows.controls[i]]
        lines.append(f"t{i}," + ",".join(repr(float(v)) for v in values))
    lines += extra
    path.write_text("\n".join(lines) + "\n")
    return lines


def test_good_rows_advised_bad_rows_flagged_file_complete(tmp_path: Path) -> None:
    plant = env.load_plant(write_dataset(tmp_path / "plant", 3, seed=2))
    advisor = _advisor(plant)
    state, (c0, c1, c2) = plant.spec.state, plant.spec.control_names
    good = "tg,499.0," + ",".join(repr(float(v)) for v in plant.rows.controls[5])
    bad = [
        f"tb1,hot,{plant.rows.controls[0][0]},1,1",  # non-numeric state
        "tb2,499.0,10,,30",  # missing control
        "tb3,499.0,10,20",  # a field short
        "tb4,nan,10,20,30",  # not finite
        "",  # a blank line: not a reading
        good,
        "tb5,499.0,10,20,inf",
    ]
    source, target = tmp_path / "readings.csv", tmp_path / "advice.csv"
    _write_readings(source, plant, 40, bad)
    summary = advise_csv(advisor, source, target, chunk_rows=16)
    rows = _read(target)
    assert len(rows) == 46 and summary.rows == 46 and summary.errors == 5
    assert [r["data_row"] for r in rows] == [str(i) for i in range(46)]
    assert [r["timestamp"] for r in rows][40:] == ["tb1", "tb2", "tb3", "tb4", "tg", "tb5"]
    errors = {r["timestamp"]: r["error"] for r in rows if r["error"]}
    assert errors == {
        "tb1": f"{state}: 'hot' is not a number",
        "tb2": f"{c1}: missing value",
        "tb3": "expected 5 fields, found 4",
        "tb4": f"{state}: value must be finite, got 'nan'",
        "tb5": f"{c2}: value must be finite, got 'inf'",
    }
    for row in rows:
        if row["error"]:
            assert row[f"{c0}_direction"] == "" and row["predicted_path"] == ""
    # every good row carries the same advice as a single recommendation
    for row in (rows[0], rows[17], rows[44]):
        values = [float(row[n]) for n in (state, c0, c1, c2)]
        single = advisor.recommend(values[0], np.array(values[1:]))
        for control in single.controls:
            assert row[f"{control.name}_direction"] == control.direction
            assert float(row[f"{control.name}_amount"]) == pytest.approx(control.amount)
            assert float(row[f"{control.name}_new"]) == pytest.approx(control.new)
        path = [float(t) for t in row["predicted_path"].split(";")]
        assert path == pytest.approx([p.temperature for p in single.path])
        assert row["moves_to_band"] == (
            "" if single.moves_to_band is None else str(single.moves_to_band)
        )
        assert row["in_band"] == ("true" if single.in_band else "false")
        assert row["outside_data"] == ("false" if single.support.inside else "true")


def test_no_path_flag_keeps_first_moves_and_skips_paths(tmp_path: Path) -> None:
    plant = env.load_plant(write_dataset(tmp_path / "plant", 2, seed=5))
    source = tmp_path / "readings.csv"
    _write_readings(source, plant, 30, [])
    full, quick = tmp_path / "full.csv", tmp_path / "quick.csv"
    advise_csv(_advisor(plant), source, full)
    summary = advise_csv(_advisor(plant), source, quick, with_path=False)
    assert not summary.with_path and "without predicted paths" in summary.describe()
    a, b = _read(full), _read(quick)
    name = plant.spec.control_names[0]
    assert [r[f"{name}_direction"] for r in a] == [r[f"{name}_direction"] for r in b]
    assert all(r["predicted_path"] == "" for r in b)
    assert all(r["moves_to_band"] in ("", "0") for r in b)


def test_readings_far_outside_the_data_carry_the_warning(tmp_path: Path) -> None:
    plant = env.load_plant()
    far = ",".join(repr(float(v)) for v in plant.upper * 3.0)
    source, target = tmp_path / "readings.csv", tmp_path / "advice.csv"
    _write_readings(source, plant, 5, [f"tfar,940.0,{far}"])
    summary = advise_csv(_advisor(plant), source, target)
    rows = _read(target)
    assert summary.outside == 1
    assert rows[-1]["outside_data"] == "true"
    assert rows[-1]["warning"].startswith("outside the data — verify before acting")
    assert all(r["warning"] == "" for r in rows[:5])


def test_a_failure_halfway_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    plant = env.load_plant()
    source, target = tmp_path / "readings.csv", tmp_path / "advice.csv"
    _write_readings(source, plant, 100, [])
    target.write_text("previous advice\n")
    rule = rule_policy(plant, "discrete")
    calls = []

    def failing(obs: np.ndarray) -> np.ndarray:
        calls.append(len(obs))
        if len(calls) > 3:
            raise RuntimeError("the policy broke")
        return rule(obs)

    with pytest.raises(RuntimeError, match="the policy broke"):
        advise_csv(_advisor(plant, act=failing), source, target, chunk_rows=10)
    assert target.read_text() == "previous advice\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["advice.csv", "readings.csv"]


def test_problems_with_the_whole_file_stop_before_writing(tmp_path: Path) -> None:
    plant = env.load_plant()
    advisor = _advisor(plant)
    target = tmp_path / "advice.csv"
    missing = tmp_path / "missing_column.csv"
    missing.write_text("temperature,fuel_rate\n950,11\n")
    with pytest.raises(InputError, match="air_fuel_ratio: column missing"):
        advise_csv(advisor, missing, target)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="no header"):
        advise_csv(advisor, empty, target)
    clash = tmp_path / "clash.csv"
    clash.write_text(
        "temperature,fuel_rate,air_fuel_ratio,feed_rate,coolant_flow,error\n950,11,1.1,80,40,x\n"
    )
    with pytest.raises(InputError, match="named like advice columns"):
        advise_csv(advisor, clash, target)
    with pytest.raises(InputError, match="not found"):
        advise_csv(advisor, tmp_path / "nope.csv", target)
    with pytest.raises(InputError, match="readings file itself"):
        advise_csv(advisor, missing, missing)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "clash.csv",
        "empty.csv",
        "missing_column.csv",
    ]


def test_a_time_ordered_file_is_advised_with_what_came_before(tmp_path: Path) -> None:
    """``--time-ordered`` on a plant with lag: each reading of the file (a reading per
    sample, with the settings in force) is advised with the settings in flight and the
    disturbance estimate of the readings before it, a bad row restarting the history:
    as the server advises a reading that carries that history. Refused in one line on
    a plant without lag."""
    from tests.test_observer import _log_history, drifting_synthetic

    plant = env.load_plant(drifting_synthetic().write(tmp_path / "plant"))
    assert plant.lagging and plant.observer is not None and plant.observer.active
    row = int(plant.start_indices[-1])
    temps, controls = _log_history(plant, row)
    temps, controls = temps[-60:], controls[-60:]
    period = plant.model.dynamics.sample_period
    assert plant.spec.time and period
    # one stamp a sample period apart, with a gap of 5 periods before reading 45
    seconds = period * (np.arange(len(temps)) + 4 * (np.arange(len(temps)) >= 45))
    stamps = pd.Timestamp("2026-03-02 06:00") + pd.to_timedelta(seconds, unit="s")
    lines = [",".join([plant.spec.state, plant.spec.time, *plant.spec.control_names])]
    for t, stamp, u in zip(temps, stamps, controls, strict=True):
        lines.append(",".join([repr(float(t)), str(stamp), *map(repr, u.tolist())]))
    lines[30] = "bad," + lines[30].split(",", 1)[1]  # reading 29 unreadable
    for i in range(49, 56):  # no readable stamp in the chunk of readings 49-55
        fields = lines[i + 1].split(",")
        lines[i + 1] = ",".join([fields[0], "n/a", *fields[2:]])
    source, target = tmp_path / "log.csv", tmp_path / "advice.csv"
    source.write_text("\n".join(lines) + "\n")
    keep = _advisor(plant, act=lambda obs: plant.codec("discrete").keep(len(obs)))
    summary = advise_csv(keep, source, target, chunk_rows=7, time_ordered=True)
    rows = _read(target)
    assert summary.errors == 1 and rows[29]["error"] and rows[29]["disturbance"] == ""
    assert summary.unstamped == 7 and "7 without a readable time stamp" in summary.describe()

    def history_start(i: int) -> int:
        """Where reading i's history starts: after the bad row, at the gap, and at every
        reading whose stamp (or the one before it) is missing."""
        return 56 if i >= 56 else i if i >= 49 else 45 if i >= 45 else 30 if i >= 30 else 0

    for i in (0, 5, 28, 30, 31, 44, 45, 46, 48, 49, 52, 55, 56, 59):
        start = history_start(i)
        expected = plant.from_history(temps[start : i + 1], controls[start : i + 1])
        assert float(rows[i]["disturbance"]) == pytest.approx(expected.disturbance, abs=1e-9)
        one = keep.advise(
            temps[i : i + 1],
            controls[i : i + 1],
            pending=expected.pending[None],
            disturbance=expected.disturbance,
        )
        assert rows[i]["predicted_path"] == ";".join(
            map(repr, one.path.temperature[0, : one.path.length[0]].tolist())
        )
    assert abs(float(rows[44]["disturbance"])) > 1e-3
    # without the time column the gap is not seen: the rows are consecutive samples
    said: list[str] = []
    frame = pd.read_csv(source).drop(columns=[plant.spec.time])
    frame.to_csv(source, index=False)
    advise_csv(keep, source, target, chunk_rows=7, time_ordered=True, progress=said.append)
    assert any("taken as consecutive samples" in line for line in said)
    expected = plant.from_history(temps[30:50], controls[30:50])
    assert float(_read(target)[49]["disturbance"]) == pytest.approx(expected.disturbance)

    static = env.load_plant(write_dataset(tmp_path / "static", 3, seed=2))
    _write_readings(source, static, 5, [])
    with pytest.raises(InputError, match="--time-ordered: the plant has no lag"):
        advise_csv(_advisor(static), source, tmp_path / "other.csv", time_ordered=True)
    assert not (tmp_path / "other.csv").exists()
