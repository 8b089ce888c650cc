"""``best.json``: what a finished run produced, written once when every trial has ended.

It holds, per dataset x algorithm, the best kept checkpoint over all trials
(:class:`BestCheckpoint`, what ``evaluate``, ``recommend``, ``export`` and ``serve`` load)
and, per trial, a :class:`RunRecord` (what the comparison's statistics are computed
from: each run's best evaluation and when it first met the target).

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
from env.files import json_safe, rebased, write_json_atomic
from env.typed_config import build_dataclass
from rllib_project.experiment import StopSettings
from rllib_project.ranking import checkpoint_rank
from rllib_project.scoring import PolicyMetrics
from rllib_project.trial_config import TrialConfig

MANIFEST_FILE = "best.json"


def best_key(dataset: str, algorithm: str) -> str:
    """The key of a dataset x algorithm entry in ``best.json``: ``<dataset>/<algorithm>``."""
    return f"{dataset}/{algorithm}"


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of the run and the process model its trials shared."""

    spec: str
    model: str


@dataclass(frozen=True)
class BestCheckpoint:
    """The highest-ranked kept checkpoint of one algorithm on one dataset, over all its
    trials (seeds and search-space samples; :func:`rllib_project.ranking.checkpoint_rank`)."""

    dataset: str
    algorithm: str
    action_mode: ActionMode
    checkpoint: str
    """Absolute path of the RLlib checkpoint folder."""
    trial_id: str
    iteration: int
    env_steps: int
    time_total_s: float
    metrics: PolicyMetrics
    """Its evaluation when it was saved, which ranks it (the target, then ``score``)."""
    config: TrialConfig
    """The trial's resolved configuration."""


@dataclass(frozen=True)
class TargetReached:
    """When a run's evaluation first met the experiment's target."""

    iteration: int
    time_s: float
    """The trial's training time then (Tune's ``time_total_s``)."""
    env_steps: int


@dataclass(frozen=True)
class RunRecord:
    """One trial, as the comparison's statistics see it (a *run*)."""

    dataset: str
    algorithm: str
    trial_id: str
    seed: int
    configuration: str
    """Hash of the sampled algorithm settings: the runs of one configuration differ
    only in their seed (see ``TrialConfig.configuration``)."""
    iterations: int
    env_steps: int
    time_total_s: float
    """What the run used in the end: iterations, env steps, training seconds."""
    metrics: PolicyMetrics | None
    """The evaluation of the run's best kept checkpoint (None: never evaluated)."""
    target_reached: TargetReached | None
    """None if the run never met the target (or the experiment sets none)."""
    error: str | None = None
    """First line of the trial's error, if it failed."""


@dataclass(frozen=True)
class Manifest:
    """The layout of ``best.json``."""

    experiment: str
    """The experiment folder (absolute). Read from a folder moved or copied since, this
    and every path recorded inside it name the folder where it is now."""
    datasets: dict[str, DatasetEntry]
    """Dataset name -> its spec and model."""
    score: str
    """What ``metrics.score`` means, for readers of the file."""
    stop: StopSettings
    """The budget and target every trial had."""
    best: dict[str, BestCheckpoint]
    """``<dataset>/<algorithm>`` (:func:`best_key`) -> its best checkpoint (absent if
    every trial of it failed)."""
    runs: list[RunRecord]
    trial_errors: list[str]
    """First line of each failed trial's error."""
    written_utc: str

    def dataset_name(self, wanted: str | None) -> str | None:
        """Which dataset a command means: ``wanted`` (checked), else the only one, else
        None (every dataset)."""
        if wanted is not None:
            if wanted not in self.datasets:
                known = ", ".join(sorted(self.datasets))
                raise InputError("--dataset", f"no dataset {wanted!r} in this run (has: {known})")
            return wanted
        return next(iter(self.datasets)) if len(self.datasets) == 1 else None

    def entries(self, dataset: str | None = None) -> dict[str, BestCheckpoint]:
        """The best checkpoints, of one dataset or of all."""
        name = self.dataset_name(dataset)
        return {k: e for k, e in self.best.items() if name is None or e.dataset == name}

    def best_overall(self, dataset: str | None = None) -> BestCheckpoint:
        """The highest-ranked checkpoint of a dataset (meeting the target first, then by
        score: :func:`rllib_project.ranking.checkpoint_rank`). With several datasets one
        must be named: scores on different plants do not rank policies for one plant."""
        name = self.dataset_name(dataset)
        if name is None:
            known = ", ".join(sorted(self.datasets))
            raise InputError(
                self.experiment, f"has several datasets ({known}): pick one with --dataset NAME"
            )
        entries = self.entries(name)
        if not entries:
            raise InputError(
                Path(self.experiment) / MANIFEST_FILE, f"lists no checkpoint for {name}"
            )
        return max(entries.values(), key=lambda entry: checkpoint_rank(self.stop, entry.metrics))

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
        if isinstance(data.get("experiment"), str):  # moved or copied since: read it here
            data = rebased(data, Path(data["experiment"]), experiment_dir.resolve())
        entries = [*data["best"].values(), *(data.get("runs") or [])]
        for entry in entries:  # JSON null (a NaN written out) -> NaN
            if isinstance(entry, dict) and isinstance(entry.get("metrics"), dict):
                entry["metrics"] = PolicyMetrics.from_mapping(entry["metrics"]).to_dict()
        return build_dataclass(cls, data, path)
