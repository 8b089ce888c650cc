"""Ray-free exported policies and the Markdown report, from a real (tiny) Tune run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import env
from tests.conftest import REPO
from tests.experiments import best_by_algorithm
from tests.test_fit_cli import run_cli

pytestmark = pytest.mark.slow

RAY_BLOCKED = """
import importlib.abc, sys
class BlockRay(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("ray is not available here")
sys.meta_path.insert(0, BlockRay())
"""


@pytest.fixture(scope="module")
def exports(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("exports")
    out = {}
    for name, entry in best_by_algorithm(tiny_run).items():
        result = run_cli("export", entry["checkpoint"], folder / name)
        assert result.returncode == 0, result.stderr[-3000:]
        out[name] = folder / name
    return out


def _observations(plant: env.Plant) -> np.ndarray:
    rng = np.random.default_rng(1)
    rows = plant.observe(plant.data.state, plant.data.controls)
    noise = rng.uniform(-2, 2, size=(200, rows.shape[1])).astype(np.float32)
    noise[:, 2:] = np.clip(noise[:, 2:], -1, 1)
    return np.concatenate([rows, noise])


@pytest.mark.parametrize("algorithm", ["PPO", "SAC", "DQN"])
def test_exported_actions_equal_checkpoint_actions(
    algorithm: str, exports: dict[str, Path], tiny_run: Path, sample_plant: env.Plant
) -> None:
    from rllib_project.checkpoints import load_checkpoint_policy
    from rllib_project.policy import load_policy

    checkpoint = best_by_algorithm(tiny_run)[algorithm]["checkpoint"]
    original = load_checkpoint_policy(Path(checkpoint))
    exported = load_policy(exports[algorithm])
    obs = _observations(sample_plant)
    expected, actual = original.act(obs), exported.act(obs)
    if exported.action_mode == "continuous":
        np.testing.assert_allclose(actual, expected, atol=1e-5)
    else:
        np.testing.assert_array_equal(actual, expected)
    assert exported.codec.space.contains(actual[0])
    # a plant without lag keeps the format and settings of plant-policy/2 (no observer)
    meta = json.loads((exports[algorithm] / "policy.json").read_text())
    assert meta["format"] == "plant-policy/2"
    assert "observer_ratio" not in meta["plant"]["settings"]


def test_export_loads_and_recommends_where_ray_cannot_be_imported(
    exports: dict[str, Path], sample_plant: env.Plant
) -> None:
    index = sample_plant.start_indices[3]
    state = {"temperature": float(sample_plant.data.state[index])}
    state.update(
        zip(
            sample_plant.spec.control_names, sample_plant.data.controls[index].tolist(), strict=True
        )
    )
    script = (
        RAY_BLOCKED
        + f"""
import json
try:
    import ray
    raise SystemExit("ray imported")
except ImportError:
    pass
from rllib_project.policy import load_policy
advice = load_policy({str(exports["PPO"])!r}).recommend({state!r})
assert "ray" not in sys.modules
print(json.dumps(advice.to_dict()))
"""
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    advice = json.loads(result.stdout)
    assert [c["name"] for c in advice["controls"]] == list(sample_plant.spec.control_names)
    # the same answer the checkpoint gives through the CLI
    text_state = ",".join(f"{k}={v!r}" for k, v in state.items())
    cli = run_cli("recommend", "--policy", exports["PPO"], "--state", text_state, "--json")
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert json.loads(cli.stdout)["controls"] == advice["controls"]


@pytest.mark.parametrize(
    "victim", ["weights.npz", "policy.json", "process_model.json", "support.npz"]
)
def test_tampered_export_is_refused(victim: str, exports: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "tampered"
    shutil.copytree(exports["DQN"], copy)
    path = copy / victim
    if victim.endswith(".npz"):  # weights nudged, or the data support widened
        data = dict(np.load(path, allow_pickle=False))
        key = "threshold" if victim == "support.npz" else sorted(data)[0]
        data[key] = data[key] + 1e-3
        np.savez(path, **data)
    else:
        meta = json.loads(path.read_text())
        meta["tampered"] = True
        path.write_text(json.dumps(meta))
    result = run_cli("recommend", "--policy", copy, "--state", "temperature=950")
    assert result.returncode == 2
    assert "sha256 differs" in result.stderr and victim in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_export_of_an_older_format_asks_for_a_new_export(
    exports: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(exports["PPO"], copy)
    meta = json.loads((copy / "policy.json").read_text())
    meta["format"] = "plant-policy/1"
    (copy / "policy.json").write_text(json.dumps(meta))
    (copy / "support.npz").unlink()  # format 1 had no data support
    result = run_cli("recommend", "--policy", copy, "--state", "temperature=950")
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert (
        "'plant-policy/1' is not plant-policy/2 or plant-policy/3 or plant-policy/4: "
        "export the checkpoint again" in result.stderr
    )


def test_export_refuses_to_overwrite_without_force(
    exports: dict[str, Path], tiny_run: Path
) -> None:
    checkpoint = best_by_algorithm(tiny_run)["PPO"]["checkpoint"]
    before = (exports["PPO"] / "checksums.json").read_text()
    result = run_cli("export", checkpoint, exports["PPO"])
    assert result.returncode == 2 and "--force" in result.stderr
    assert (exports["PPO"] / "checksums.json").read_text() == before


def test_export_with_force_replaces_only_an_older_export(
    exports: dict[str, Path], tiny_run: Path, tmp_path: Path
) -> None:
    """``--force`` replaces an export; never the user's folder, the working folder or
    the experiment (each refused with one line, every file left as it was)."""
    checkpoint = best_by_algorithm(tiny_run)["PPO"]["checkpoint"]
    result = run_cli("export", checkpoint, exports["PPO"], "--force")
    assert result.returncode == 0, result.stderr[-3000:]
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep")
    experiment_files = sorted(p.name for p in tiny_run.iterdir())
    for target, cwd in ((theirs, REPO), (Path("."), theirs), (tiny_run, REPO)):
        result = run_cli("export", checkpoint, target, "--force", cwd=cwd)
        assert result.returncode == 2, (target, result.stderr[-3000:])
        assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
        assert [p.name for p in theirs.iterdir()] == ["notes.txt"]
        assert sorted(p.name for p in tiny_run.iterdir()) == experiment_files


def test_report_writes_markdown_and_real_images(tiny_run: Path) -> None:
    import matplotlib.image

    result = run_cli("report", tiny_run)
    assert result.returncode == 0, result.stderr[-3000:]
    report = tiny_run / "report" / "report.md"
    assert str(report) in result.stdout
    text = report.read_text()
    for name in (
        "PPO (best)",
        "SAC (best)",
        "DQN (best)",
        "planner",
        "learning_curves.png",
        "trajectories.png",
    ):
        assert name in text
    for png in ("learning_curves.png", "trajectories.png"):
        image = matplotlib.image.imread(tiny_run / "report" / png)
        assert image.shape[0] > 300 and image.shape[1] > 300
        assert np.std(image[..., :3]) > 0.05  # not a blank canvas
