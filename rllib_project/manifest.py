"""``best.json``: the best checkpoint of each algorithm, written when a run finishes.

The file's layout is :class:`Manifest`, with one writer (:meth:`Manifest.write`, called
by :mod:`rllib_project.tuning` once every trial has ended; atomic) and one reader
(:meth:`Manifest.read`, called by :mod:`rllib_project.checkpoints` for every command
that takes an experiment folder), so the two can never disagree about a key. NaN
metrics (nothing to average) are written as JSON ``null`` and read back as NaN.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from env.actions import ActionMode
from env.errors import InputError
from env.files import json_safe, write_json_atomic
from env.typed_config import build_dataclass
from rllib_project.scoring import PolicyMetrics
from rllib_project.trial_config import TrialConfig

MANIFEST_FILE = "best.json"


@dataclass(frozen=True)
class BestCheckpoint:
    """The highest-scoring kept checkpoint of one algorithm, over all its trials."""

    algorithm: str
    action_mode: ActionMode
    checkpoint: str
    """Absolute path of the RLlib checkpoint folder."""
    trial_id: str
    iteration: int
    env_steps: int
    time_total_s: float
    metrics: PolicyMetrics
    """Its evaluation when it was saved; ``metrics.score`` ranks checkpoints."""
    config: TrialConfig
    """The trial's resolved configuration."""


@dataclass(frozen=True)
class Manifest:
    """The layout of ``best.json``."""

    experiment: str
    """The experiment folder (absolute)."""
    dataset: str
    model: str
    score: str
    """What ``metrics.score`` means, for readers of the file."""
    best: dict[str, BestCheckpoint]
    """Algorithm name -> its best checkpoint (absent if every trial of it failed)."""
    trial_errors: list[str]
    """First line of each failed trial's error."""
    written_utc: str

    def best_overall(self) -> tuple[str, BestCheckpoint]:
        """The algorithm and checkpoint with the highest score."""
        return max(self.best.items(), key=lambda item: item[1].metrics.score)

    def write(self, experiment_dir: Path) -> Path:
        """Write ``best.json`` into ``experiment_dir`` atomically (whole or absent)."""
        return write_json_atomic(experiment_dir / MANIFEST_FILE, json_safe(self.to_json()))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def read(cls, experiment_dir: Path) -> Manifest:
        """Read and check ``best.json`` of an experiment folder."""
        path = experiment_dir / MANIFEST_FILE
        if not path.exists():
            raise InputError(experiment_dir, f"no {MANIFEST_FILE}: not a finished experiment")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(path, f"unreadable ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("best"), dict):
            raise InputError(path, "not a manifest of this project (no 'best' mapping)")
        for entry in data["best"].values():  # JSON null (a NaN written out) -> NaN
            if isinstance(entry, dict) and isinstance(entry.get("metrics"), dict):
                entry["metrics"] = PolicyMetrics.from_mapping(entry["metrics"]).to_dict()
        return build_dataclass(cls, data, path)
