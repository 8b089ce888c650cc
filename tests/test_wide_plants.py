"""Wide plants: DQN with one Q-head per control, trained and exported (real Tune, real RLlib)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

import env
from tests.conftest import REPO
from tests.datasets import write_synthetic
from tests.experiments import best_by_algorithm, only_experiment_dir, write_experiment
from tests.test_export_report import RAY_BLOCKED
from tests.test_fit_cli import run_cli
from tests.tune_runs import results_of, trial_dirs

pytestmark = pytest.mark.slow

K = 6


@pytest.fixture(scope="module")
def wide_dqn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DQN as ``tune_configs/dqn.yaml`` sets it up, two iterations on a 6-control plant."""
    folder = tmp_path_factory.mktemp("wide_dqn")
    spec = write_synthetic(folder / "plant", K, mean_depth=5, rows=150)
    experiment = write_experiment(folder, iterations=2, algorithms=("DQN",), dataset=str(spec))
    result = run_cli("tune", experiment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return only_experiment_dir(folder / "results")


def test_dqn_acts_per_control_and_its_export_loads_without_ray(
    wide_dqn_run: Path, tmp_path: Path
) -> None:
    from rllib_project.inference import greedy_action_function, module_from_checkpoint

    manifest = json.loads((wide_dqn_run / "best.json").read_text())
    assert manifest["trial_errors"] == []
    entry = best_by_algorithm(wide_dqn_run)["DQN"]
    assert entry["action_mode"] == "discrete"  # MultiDiscrete, not Discrete(3**6 = 729)
    for trial in trial_dirs(wide_dqn_run):  # both iterations trained (learning began)
        assert [
            r["learners"]["default_policy"]["num_module_steps_trained_lifetime"] > 0
            for r in results_of(trial)
        ][-1]
    checkpoint = Path(entry["checkpoint"])
    (dataset,) = json.loads((wide_dqn_run / "experiment.json").read_text())["datasets"].values()
    plant = env.load_plant(dataset["spec"], dataset["model"])
    obs = plant.observe(plant.rows.state, plant.rows.controls)

    module = module_from_checkpoint(checkpoint)
    assert module.af.net.mlp[-1].out_features == 3 * K  # one head of 3 per control
    space = spaces.MultiDiscrete([3] * K)
    actions = greedy_action_function(module, space)(obs)
    assert actions.shape == (len(obs), K) and all(space.contains(a) for a in actions)
    assert len({tuple(a) for a in actions}) > 1  # it reads the observation
    environment = env.TemperatureControlEnv(
        {
            "spec_path": dataset["spec"],
            "model_path": dataset["model"],
            "action_mode": "discrete",
        }
    )
    environment.reset(seed=0)
    environment.step(actions[0])  # the env's own space accepts it

    export = tmp_path / "dqn"
    result = run_cli("export", checkpoint, export)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((export / "policy.json").read_text())["network"]["output"] == {
        "kind": "q_branching",
        "sizes": [3] * K,
    }
    np.save(tmp_path / "obs.npy", obs)
    script = RAY_BLOCKED + (
        "import json, numpy as np\n"
        "from rllib_project.policy import load_policy\n"
        f"policy = load_policy({str(export)!r})\n"
        f"actions = policy.act(np.load({str(tmp_path / 'obs.npy')!r}))\n"
        "assert 'ray' not in sys.modules\n"
        "print(json.dumps([str(policy.codec.space), actions.tolist()]))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    exported_space, exported_actions = json.loads(loaded.stdout)
    assert exported_space == str(space)
    np.testing.assert_array_equal(np.array(exported_actions), actions)
