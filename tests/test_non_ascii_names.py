"""Chinese column names and units survive training, recommend, export and the report.

One real, tiny Tune run (PPO, one iteration) on the sample data exported as a Chinese
Excel writes it (GBK, ';', decimal commas): the Ray workers read the file through the
format recorded in the model artifact, and every output keeps the names as written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.experiments import best_by_algorithm, only_experiment_dir, write_experiment
from tests.plant_exports import EXPORTS, NAMES, UNITS, write_export
from tests.test_fit_cli import run_cli

pytestmark = pytest.mark.slow

CONTROLS = [NAMES[key] for key in ("fuel_rate", "air_fuel_ratio", "feed_rate", "coolant_flow")]


@pytest.fixture(scope="module")
def chinese_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("chinese_run")
    spec = write_export(folder / "data", EXPORTS["gbk ; decimal comma"], explicit=False)
    experiment = write_experiment(folder, iterations=1, algorithms=("PPO",), dataset=str(spec))
    result = run_cli("tune", experiment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return only_experiment_dir(folder / "results")


def test_recommend_json_prints_the_names_as_characters(chinese_run: Path) -> None:
    result = run_cli("recommend", "--policy", chinese_run, "--row", 7, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"温度"' in result.stdout and "\\u" not in result.stdout
    advice = json.loads(result.stdout)
    assert advice["state"] == NAMES["temperature"] and advice["unit"] == UNITS["temperature"]
    assert [c["name"] for c in advice["controls"]] == CONTROLS
    assert advice["controls"][0]["unit"] == UNITS["fuel_rate"]

    text = run_cli("recommend", "--policy", chinese_run, "--row", 7)
    assert text.returncode == 0, text.stderr[-3000:]
    assert text.stdout.startswith(f"{NAMES['temperature']} ") and "冷却水流量" in text.stdout


def test_export_and_load_policy_keep_the_names(chinese_run: Path, tmp_path: Path) -> None:
    from rllib_project.policy import load_policy

    result = run_cli(
        "export", best_by_algorithm(chinese_run)["PPO"]["checkpoint"], tmp_path / "ppo"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    policy = load_policy(tmp_path / "ppo")
    assert list(policy.plant.spec.control_names) == CONTROLS
    settings = dict(zip(CONTROLS, [11.351, 1.1697, 82.33, 39.26], strict=True))
    state = {NAMES["temperature"]: 947.42, **settings}  # the first row of the sample
    advice = policy.recommend(state)
    assert [c.name for c in advice.controls] == CONTROLS
    assert advice.controls[0].unit == UNITS["fuel_rate"]

    cli = run_cli(
        "recommend",
        "--policy",
        tmp_path / "ppo",
        "--state",
        ",".join(f"{name}={value}" for name, value in state.items()),
        "--json",
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert json.loads(cli.stdout)["controls"] == [c.__dict__ for c in advice.controls]


def test_report_keeps_the_names(chinese_run: Path) -> None:
    result = run_cli("report", chinese_run)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (chinese_run / "report" / "report.md").read_text(encoding="utf-8")
    assert f"state `{NAMES['temperature']}`" in report
    assert f"controls: {', '.join(CONTROLS)}" in report
    assert UNITS["temperature"] in report
