"""evaluate and recommend on checkpoints of a real (tiny) Tune run."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import env
from env.files import json_safe
from env.planner import plan_discrete
from tests.experiments import best_by_algorithm
from tests.test_fit_cli import run_cli

pytestmark = pytest.mark.slow


def _best(run: Path, algorithm: str) -> Path:
    return Path(best_by_algorithm(run)[algorithm]["checkpoint"])


def strict_json(text: str) -> object:
    """Parse JSON as JSON is: Python's reader would accept NaN and Infinity."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_evaluate_checkpoint_has_all_columns_and_planner_is_the_ceiling(
    tiny_run: Path, sample_plant: env.Plant
) -> None:
    result = run_cli("evaluate", _best(tiny_run, "DQN"), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    output = strict_json(result.stdout)
    assert output["aggregate"] is None  # one checkpoint: no runs to aggregate
    rows = output["rows"]
    assert [r["policy"] for r in rows] == [
        "DQN",
        "DQN (raw)",
        "DQN (advised)",
        "planner",
        "greedy",
        "do-nothing",
        "random",
    ]
    assert [r["kind"] for r in rows[:4]] == ["trained", "raw", "advised", "baseline"]
    # the advice's land rule only replaces moves that would not land by ones that do
    assert rows[2]["success_rate"] >= rows[0]["success_rate"]
    for row in rows:
        for key in (
            "success_rate",
            "mean_moves_to_band",
            "moves_ratio",
            "time_in_band",
            "mean_return",
            "success_rate_solvable",
        ):
            assert key in row, key
        assert row["episodes"] == 500
    planner = rows[3]
    # the planner row is the exact planner's, computed here independently, row by row
    optimal = [
        plan_discrete(sample_plant, sample_plant.data.controls[i], sample_plant.data.state[i])
        for i in sample_plant.start_indices
    ]
    assert planner["mean_moves_to_band"] == pytest.approx(np.mean([p.moves for p in optimal]))
    assert planner["success_rate"] == max(r["success_rate"] for r in rows)
    assert planner["success_rate_solvable"] == 1.0
    # and nobody reaches the band in fewer moves than the optimum
    for row in rows:
        assert row["moves_ratio"] is None or row["moves_ratio"] >= 1.0 - 1e-12, row


def test_evaluate_experiment_table_lists_every_algorithm(tiny_run: Path) -> None:
    result = run_cli("evaluate", tiny_run)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["policy", "actions", "success"]
    for name in ("PPO (best)", "SAC (best)", "DQN (best)", "planner", "greedy", "do-nothing"):
        assert any(line.startswith(name) for line in lines), name
    # baselines of both action-mode families, since SAC is continuous
    assert (
        sum(
            line.split()[:2] in (["planner", "discrete"], ["planner", "continuous"])
            for line in lines
        )
        == 2
    )
    # one run per algorithm: the comparison says there is no interval instead of one
    assert "comparison over all runs" in result.stdout
    assert "(no CI: 1 run)" in result.stdout and "no confidence interval" in result.stdout


def _row(plant: env.Plant, inside: bool, below: bool = True) -> int:
    temps = plant.data.state[plant.start_indices]
    mask = (
        plant.in_band(temps)
        if inside
        else (temps < plant.band[0] - 5 if below else temps > plant.band[1] + 5)
    )
    return int(plant.data.row_numbers[plant.start_indices[np.flatnonzero(mask)[0]]])


def test_recommend_inside_band_keeps_everything(tiny_run: Path, sample_plant: env.Plant) -> None:
    row = _row(sample_plant, inside=True)
    result = run_cli("recommend", "--policy", tiny_run, "--row", row, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    advice = json.loads(result.stdout)
    assert advice["in_band"] and advice["keep_all"] and advice["moves_to_band"] == 0
    assert all(c["direction"] == "keep" and c["amount"] == 0 for c in advice["controls"])
    text = run_cli("recommend", "--policy", tiny_run, "--row", row)
    assert "keep all controls" in text.stdout


def test_recommend_from_a_state_string_reports_amounts_and_path(
    tiny_run: Path, sample_plant: env.Plant
) -> None:
    index = sample_plant.start_indices[0]
    values = dict(
        zip(sample_plant.spec.control_names, sample_plant.data.controls[index], strict=True)
    )
    state = ",".join(
        [f"temperature={sample_plant.band[0] - 8}"] + [f"{k}={v}" for k, v in values.items()]
    )
    result = run_cli("recommend", "--policy", _best(tiny_run, "PPO"), "--state", state, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    advice = json.loads(result.stdout)
    assert not advice["in_band"] and advice["path"][0]["temperature"] == sample_plant.band[0] - 8
    steps = {c.name: c.step for c in sample_plant.spec.controls}
    for control in advice["controls"]:
        assert control["direction"] in ("increase", "decrease", "keep")
        if control["direction"] != "keep":  # discrete PPO moves by exactly one step
            assert control["amount"] == pytest.approx(steps[control["name"]])
            sign = 1 if control["direction"] == "increase" else -1
            assert control["new"] == pytest.approx(control["current"] + sign * control["amount"])
    for point in advice["path"]:
        assert math.isfinite(point["temperature"]) and point["model_std"] >= 0


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ("temperature=950,fuel_rate=1", "missing air_fuel_ratio"),
        (
            "temperature=950,fuel_rate=1,air_fuel_ratio=1,feed_rate=80,coolant_flow=40,x=1",
            "unknown name(s) x",
        ),
        (
            "temperature=hot,fuel_rate=1,air_fuel_ratio=1,feed_rate=80,coolant_flow=40",
            "temperature: 'hot' is not a number",
        ),
        ("temperature 950", "expected name=value"),
    ],
)
def test_recommend_bad_state_is_one_line(tiny_run: Path, state: str, message: str) -> None:
    result = run_cli("recommend", "--policy", tiny_run, "--state", state)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr


def test_time_ordered_needs_a_file_and_a_plant_with_lag(tiny_run: Path, tmp_path: Path) -> None:
    """``--time-ordered`` only with ``--csv``, and refused on a plant without lag; one
    line each, nothing written."""
    state = "temperature=950,fuel_rate=11.6,air_fuel_ratio=1.15,feed_rate=80,coolant_flow=40"
    result = run_cli("recommend", "--policy", tiny_run, "--state", state, "--time-ordered")
    assert result.returncode == 2 and "--time-ordered: only with --csv" in result.stderr
    readings = tmp_path / "readings.csv"
    readings.write_text("temperature,fuel_rate,air_fuel_ratio,feed_rate,coolant_flow\n")
    out = tmp_path / "advice.csv"
    args = ("--csv", readings, "--out", out, "--time-ordered")
    result = run_cli("recommend", "--policy", tiny_run, *args)
    assert result.returncode == 2 and "the plant has no lag" in result.stderr
    assert result.stderr.strip().count("\n") == 0 and not out.exists()


def test_recommend_below_band_warms_the_plant_into_the_band(
    trained_ppo_run: Path, sample_plant: env.Plant
) -> None:
    """A trained policy, from rows well below the band: it does not advise "keep", its
    first move raises the temperature on the model (judged here from the model itself,
    not from the advice's own path), and its predicted path ends in the band. The
    first row through the CLI, all of them through the advisor it loads (one load
    instead of a process per row), which must answer the CLI's advice."""
    from rllib_project.advisors import load_advisor

    assert best_by_algorithm(trained_ppo_run)["PPO"]["metrics"]["success_rate"] >= 0.95
    temps = sample_plant.data.state[sample_plant.start_indices]
    below = sample_plant.start_indices[temps < sample_plant.band[0] - 3][:8]
    assert len(below) == 8
    first = int(sample_plant.data.row_numbers[below[0]])
    result = run_cli("recommend", "--policy", trained_ppo_run, "--row", first, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    advisor = load_advisor(trained_ppo_run)
    for index in below:
        controls = sample_plant.data.controls[index]
        answer = advisor.recommend(float(sample_plant.data.state[index]), controls)
        advice = json.loads(json.dumps(json_safe(answer.to_dict())))
        if index == below[0]:
            assert advice == json.loads(result.stdout)
        assert not advice["in_band"] and not advice["keep_all"]
        new = np.array([c["new"] for c in advice["controls"]])
        before, after = sample_plant.model.predict(np.stack([controls, new]))
        assert after > before, (int(sample_plant.data.row_numbers[index]), advice["controls"])
        assert advice["path"][-1]["in_band"] and advice["moves_to_band"] >= 1


def test_a_copied_experiment_reads_its_own_files(
    tiny_run: Path, sample_plant: env.Plant, tmp_path: Path
) -> None:
    """Result files record absolute paths. A copied or moved experiment folder (from a
    cluster's storage, say) must load the checkpoints and model inside it, not those
    where it was written (a moved folder failed with 'not a checkpoint')."""
    from rllib_project.checkpoints import CheckpointInfo, load_policies, read_manifest

    copy = (tmp_path / "moved here").resolve()
    shutil.copytree(tiny_run, copy)
    assert Path(read_manifest(copy).experiment) == copy
    policies = load_policies(copy)
    assert {p.algorithm for p in policies} == {"PPO", "SAC", "DQN"}
    for policy in policies:
        assert copy in policy.source.parents, policy.source
        info = CheckpointInfo.read(policy.source)
        assert copy in Path(info.env_config.model_path).parents
    row = _row(sample_plant, inside=False, below=True)
    here, there = (
        run_cli("recommend", "--policy", run, "--row", row, "--json") for run in (tiny_run, copy)
    )
    assert there.returncode == 0, there.stderr[-3000:]
    assert json.loads(there.stdout) == json.loads(here.stdout)
