"""Tiny experiment files for tests: the real algorithm YAMLs, a few iterations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO, SAMPLE_SPEC

CONFIGS = REPO / "tune_configs"


def write_experiment(
    folder: Path,
    *,
    iterations: int = 2,
    algorithms: tuple[str, ...] = ("PPO", "SAC", "DQN"),
    rows: int | None = 48,
    storage: Path | None = None,
    **extra: Any,
) -> Path:
    """Write ``experiment.yaml`` into ``folder`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "name": "tiny",
        "dataset": str(SAMPLE_SPEC),
        "algorithms": {name: str(CONFIGS / f"{name.lower()}.yaml") for name in algorithms},
        "stop": {"training_iterations": iterations},
        "evaluation": {"rows": rows},
        "storage_path": str(storage or folder / "results"),
    }
    data.update(extra)
    if "datasets" in extra:
        del data["dataset"]
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def only_experiment_dir(storage: Path) -> Path:
    """The single experiment folder a run created under ``storage``."""
    folders = [p for p in storage.iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


def best_by_algorithm(experiment_dir: Path) -> dict[str, dict[str, Any]]:
    """``best.json``'s entries of a single-dataset run, by algorithm (as JSON)."""
    manifest = json.loads((experiment_dir / "best.json").read_text(encoding="utf-8"))
    entries = manifest["best"].values()
    assert len({entry["dataset"] for entry in entries}) <= 1, manifest["best"].keys()
    return {entry["algorithm"]: entry for entry in entries}
