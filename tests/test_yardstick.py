"""The saved yardstick (plain JSON, keyed) and ``rllib-project plan``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import env
from env.errors import InputError
from env.planner import plan_rows
from env.yardstick import (
    YARDSTICK_FILE,
    compute_yardstick,
    ensure_yardstick,
    load_yardstick,
    save_yardstick,
    yardstick_key,
)
from tests.datasets import write_synthetic
from tests.test_fit_cli import run_cli

SUMMARY_KEYS = {
    "rows",
    "solvable",
    "exact",
    "mean_moves",
    "max_moves",
    "seconds",
    "mean_actuations",
}


@pytest.fixture(scope="module")
def deep_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated 3-control plant whose rows need about 14 moves on average."""
    return write_synthetic(tmp_path_factory.mktemp("deep"), 3, mean_depth=14, rows=150)


def test_plan_json_on_a_deep_plant(deep_spec: Path, tmp_path: Path) -> None:
    saved = tmp_path / YARDSTICK_FILE
    result = run_cli("plan", deep_spec, "--json", "--save", saved)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary) == SUMMARY_KEYS
    plant = env.load_plant(deep_spec)
    plans = plan_rows(
        plant, plant.data.state[plant.start_indices], plant.data.controls[plant.start_indices]
    )
    moves = np.array([np.nan if p.moves is None else p.moves for p in plans])
    assert summary["rows"] == len(plant.start_indices) == 150
    assert summary["solvable"] == int((~np.isnan(moves)).sum())
    assert summary["exact"] == sum(p.exact for p in plans)
    assert summary["exact"] >= 0.95 * summary["rows"]
    assert summary["mean_moves"] == pytest.approx(np.nanmean(moves))
    assert summary["max_moves"] == int(np.nanmax(moves)) >= 20  # a deep plant
    assert summary["seconds"] > 0
    assert "planning 150 rows" in result.stderr  # progress goes to stderr with --json
    loaded = load_yardstick(saved, yardstick_key(plant, "discrete"))
    np.testing.assert_array_equal(loaded.moves, moves)


def test_plan_text_output(deep_spec: Path) -> None:
    result = run_cli("plan", deep_spec, "--mode", "continuous")
    assert result.returncode == 0, result.stderr
    assert "planning 150 rows (continuous moves)" in result.stdout
    for label in ("rows", "solvable", "exact", "mean moves", "max moves", "seconds"):
        assert any(line.startswith(label) for line in result.stdout.splitlines()), label


@pytest.mark.parametrize("problem", ["missing", "inverted band", "not yaml"])
def test_plan_bad_spec_is_one_line_exit_2(problem: str, deep_spec: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    if problem == "inverted band":
        data = yaml.safe_load(deep_spec.read_text())
        data["band"] = list(reversed(data["band"]))
        data["csv"] = str(deep_spec.parent / data["csv"])
        spec.write_text(yaml.safe_dump(data))
    elif problem == "not yaml":
        spec.write_text("band: [1, 2\n")
    for extra in ([], ["--json"]):
        result = run_cli("plan", spec, *extra)
        assert result.returncode == 2
        assert result.stdout == ""
        message = result.stderr.strip()
        assert "Traceback" not in message and "\n" not in message and "spec.yaml" in message


def test_saved_yardstick_round_trip_and_key(deep_spec: Path, tmp_path: Path) -> None:
    plant = env.load_plant(deep_spec)
    yardstick = compute_yardstick(plant, "continuous", plant.start_indices[:40])
    path = save_yardstick(yardstick, tmp_path / YARDSTICK_FILE)
    loaded = load_yardstick(path, yardstick_key(plant, "continuous"))
    np.testing.assert_array_equal(loaded.rows, yardstick.rows)
    np.testing.assert_array_equal(loaded.moves, yardstick.moves)
    np.testing.assert_array_equal(loaded.exact, yardstick.exact)
    assert loaded.methods == yardstick.methods
    for a, b in zip(loaded.deltas, yardstick.deltas, strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.summary() == yardstick.summary()

    # what changes a plan changes the key; reward weights do not
    assert yardstick_key(plant, "discrete") != yardstick.key
    for settings in ({"response_rate": 0.5}, {"horizon": 12}, {"continuous_deadband": 0.2}):
        other = env.load_plant(deep_spec, settings=settings)
        with pytest.raises(InputError, match="other inputs"):
            load_yardstick(path, yardstick_key(other, "continuous"))
    rewards = env.load_plant(deep_spec, settings={"move_cost": 0.5, "distance_weight": 1.0})
    assert load_yardstick(path, yardstick_key(rewards, "continuous")).key == yardstick.key


def test_yardstick_of_another_csv_or_a_broken_file_is_refused(
    deep_spec: Path, tmp_path: Path
) -> None:
    plant = env.load_plant(deep_spec)
    path = save_yardstick(
        compute_yardstick(plant, "discrete", plant.start_indices[:10]), tmp_path / "y.json"
    )
    other = env.load_plant(write_synthetic(tmp_path / "other", 3, mean_depth=14, rows=150, seed=5))
    with pytest.raises(InputError, match="other inputs") as info:
        load_yardstick(path, yardstick_key(other, "discrete"))
    assert "\n" not in str(info.value)
    path.write_text(path.read_text()[:-20])
    with pytest.raises(InputError, match="cannot read"):
        load_yardstick(path)
    with pytest.raises(InputError, match="not found"):
        load_yardstick(tmp_path / "absent.json")


def test_ensure_yardstick_loads_what_it_saved(deep_spec: Path, tmp_path: Path) -> None:
    plant = env.load_plant(deep_spec)
    rows = plant.start_indices[:30]
    path = tmp_path / YARDSTICK_FILE
    first, computed = ensure_yardstick(path, plant, "discrete", rows)
    assert computed and path.is_file()
    again, computed = ensure_yardstick(path, plant, "discrete", rows)
    assert not computed and again.seconds == first.seconds  # read back, not planned again
    _, computed = ensure_yardstick(path, plant, "discrete", plant.start_indices[:31])
    assert computed  # other rows: planned again and replaced
    lagged = env.load_plant(deep_spec, settings={"response_rate": 0.7})
    replaced, computed = ensure_yardstick(path, lagged, "discrete", rows)
    assert computed and replaced.key == yardstick_key(lagged, "discrete")


def test_saved_yardstick_with_rows_already_in_band_replays_like_planning(
    sample_plant: env.Plant, tmp_path: Path
) -> None:
    """Rows already in the band have empty plans, which JSON reads back as ``[]``; a
    planner replaying the loaded yardstick must give the same roll-outs as one that
    plans (the sample has such rows)."""
    from env.baselines import PlannerPolicy
    from env.evaluation import rollout, start_pending, start_states

    plant = sample_plant
    rows = plant.start_indices
    codec = plant.codec("discrete")
    temperatures, controls = start_states(plant, rows)
    in_band = plant.distance_to_band(temperatures) == 0
    assert in_band.any() and not in_band.all()
    path = save_yardstick(compute_yardstick(plant, "discrete", rows), tmp_path / "y.json")
    replaying = PlannerPolicy(plant, codec, load_yardstick(path))
    pending = start_pending(plant, rows)
    replayed = rollout(plant, codec, replaying, temperatures, controls, pending=pending)
    assert replaying.replayed
    planned = rollout(plant, codec, PlannerPolicy(plant, codec), temperatures, controls)
    np.testing.assert_array_equal(replayed.moves_to_band, planned.moves_to_band)
    np.testing.assert_array_equal(replayed.success, planned.success)


def test_saved_yardstick_replays_on_a_time_ordered_log(tmp_path: Path) -> None:
    """On a log with identified dynamics an episode starts from the settings in force
    before its row (not the row's own): the scorer's start states must still be
    recognised as the yardstick's rows and replayed, not planned again in every trial."""
    from env.baselines import PlannerPolicy
    from env.evaluation import fixed_start_rows, rollout, start_pending, start_states
    from env.planner import rows_planned

    plant = env.load_plant(Path(__file__).parent.parent / "data" / "furnace_log_spec.yaml")
    assert plant.identified is not None
    starts = plant.start_indices
    moved = starts[(plant.start_controls(starts) != plant.rows.controls[starts]).any(axis=1)]
    rows = np.unique(np.concatenate([moved[:6], fixed_start_rows(plant, 6, seed=0)]))
    codec = plant.codec("discrete")
    temperatures, controls = start_states(plant, rows)
    pending = start_pending(plant, rows)
    path = save_yardstick(compute_yardstick(plant, "discrete", rows), tmp_path / "y.json")
    replaying = PlannerPolicy(plant, codec, load_yardstick(path))
    before = rows_planned()
    replayed = rollout(plant, codec, replaying, temperatures, controls, pending=pending)
    assert replaying.replayed and rows_planned() == before
    planning = PlannerPolicy(plant, codec)
    planned = rollout(plant, codec, planning, temperatures, controls, pending=pending)
    assert not planning.replayed
    np.testing.assert_array_equal(replayed.moves_to_band, planned.moves_to_band)
