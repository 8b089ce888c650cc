"""Tiny experiment files for tests: the real algorithm YAMLs, a few iterations."""

from __future__ import annotations

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
