"""Find and load trained policies: experiment folders, checkpoints, exports.

A *policy source* on the command line may be

* an experiment folder (holding ``best.json``): its best checkpoint per dataset x
  algorithm (``dataset=NAME``: of one dataset);
* a checkpoint folder (holding ``plant_policy.json``): that policy;
* an export folder (holding ``policy.json``): the Ray-free policy;
* ``best``: the best policy of the newest experiment under the default storage.

RLlib checkpoints are pickles and are tied to the Ray version: load only trusted ones.
Exports contain no pickles (see :mod:`rllib_project.policy`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from env.actions import ActionCodec, ActionMode
from env.errors import InputError
from env.files import json_safe, rebased, write_json_atomic
from env.plant import Plant, load_plant
from env.temperature_env import EnvConfig
from env.typed_config import build_dataclass
from rllib_project.manifest import MANIFEST_FILE, Manifest
from rllib_project.preparation import DATASETS_DIR, dataset_dir
from rllib_project.scoring import PolicyMetrics

POLICY_METADATA = "plant_policy.json"
DEFAULT_STORAGE = Path(__file__).resolve().parent.parent / "results"


@dataclass(frozen=True)
class CheckpointInfo:
    """``plant_policy.json``, written into every checkpoint by the trainable: what the
    checkpoint's policy is and which plant it acts on (one writer, one reader)."""

    algorithm: str
    action_mode: ActionMode
    env_config: EnvConfig
    training_iteration: int
    evaluation: PolicyMetrics | None
    """The evaluation of the saved weights (None if not evaluated yet)."""
    yardstick: str | None = None
    """The experiment's saved yardstick for this action mode (``evaluate`` and the report
    replay it instead of planning again; planned afresh if missing or stale)."""
    wall_time_s: float = 0.0
    """Wall time the trial had used when it saved this checkpoint (a restored trial
    goes on counting from here against its wall-time budget)."""
    files: dict[str, int] = field(default_factory=dict)
    """Size in bytes of every other file of the checkpoint as saved (see
    :meth:`is_complete`); empty in checkpoints of earlier versions."""

    def write(self, checkpoint_dir: Path) -> Path:
        return write_json_atomic(checkpoint_dir / POLICY_METADATA, json_safe(asdict(self)))

    def is_complete(self, checkpoint_dir: Path) -> bool:
        """Whether every file this metadata lists is in ``checkpoint_dir`` at its saved
        size. The trainable writes this file last into the temp folder Tune saves to,
        but Tune copies that folder into storage with several threads in no fixed order,
        so a driver killed during the copy can leave it beside missing or short files
        (sizes, not contents: a folder of the same sizes counts as whole)."""
        return all(
            (checkpoint_dir / name).is_file() and (checkpoint_dir / name).stat().st_size == size
            for name, size in self.files.items()
        )

    @classmethod
    def read(cls, checkpoint_dir: Path) -> CheckpointInfo:
        path = checkpoint_dir / POLICY_METADATA
        if not path.exists():
            raise InputError(
                checkpoint_dir, f"not a checkpoint of this project ({POLICY_METADATA} missing)"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(path, f"unreadable ({exc})") from exc
        if isinstance(data, dict) and isinstance(data.get("evaluation"), dict):
            data["evaluation"] = PolicyMetrics.from_mapping(data["evaluation"]).to_dict()
        moved = _moved_experiment(data, checkpoint_dir)
        if moved is not None:
            data = rebased(data, *moved)
        return build_dataclass(cls, data, path)


def _moved_experiment(data: Any, checkpoint_dir: Path) -> tuple[Path, Path] | None:
    """(where the checkpoint's experiment folder was, where it is) if it has moved.

    A trial records the dataset's model it shared as
    ``<experiment>/datasets/<dataset>/<model file>`` and saves its checkpoints at
    ``<experiment>/<trial>/<checkpoint>``; a checkpoint whose own experiment folder has
    that dataset folder, but which recorded another experiment folder, was moved with
    it (or copied)."""
    env_config = data.get("env_config") if isinstance(data, dict) else None
    model = env_config.get("model_path") if isinstance(env_config, dict) else None
    if not isinstance(model, str) or not Path(model).is_absolute():
        return None
    recorded = Path(model).parents
    if len(recorded) < 3 or recorded[1].name != DATASETS_DIR:
        return None
    here = checkpoint_dir.resolve().parent.parent
    old = recorded[2]
    if old == here or not dataset_dir(here, recorded[0].name).is_dir():
        return None
    return old, here


def file_sizes(checkpoint_dir: Path) -> dict[str, int]:
    """Size of every file under ``checkpoint_dir`` but :data:`POLICY_METADATA`, by path
    relative to it (what :attr:`CheckpointInfo.files` records)."""
    return {
        path.relative_to(checkpoint_dir).as_posix(): path.stat().st_size
        for path in sorted(checkpoint_dir.rglob("*"))
        if path.is_file() and path.name != POLICY_METADATA
    }


@dataclass
class LoadedPolicy:
    """A policy ready to act: greedy actions for observation batches of its plant."""

    name: str
    algorithm: str
    action_mode: str
    plant: Plant
    codec: ActionCodec
    act: Callable[[np.ndarray], np.ndarray]
    source: Path
    dataset: str = ""
    """The dataset's name in its experiment (empty for a checkpoint or export given
    directly: then there is one plant)."""
    yardstick: Path | None = None
    """The experiment's saved yardstick of this dataset and action mode, if known."""


def read_manifest(experiment_dir: Path) -> Manifest:
    """``best.json`` of an experiment folder, checked (see :mod:`rllib_project.manifest`)."""
    return Manifest.read(experiment_dir)


def latest_experiment(storage: Path = DEFAULT_STORAGE) -> Path:
    """The newest folder under ``storage`` with a ``best.json``."""
    candidates = sorted(storage.glob(f"*/{MANIFEST_FILE}"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise InputError(storage, "no finished experiment found: run 'rllib-project tune' first")
    return candidates[-1].parent


def resolve_source(source: str | Path) -> Path:
    """The path a policy source names (``best``: the newest finished experiment)."""
    return latest_experiment() if str(source) == "best" else Path(source)


def is_experiment(path: Path) -> bool:
    return (path / MANIFEST_FILE).exists()


def load_checkpoint_policy(
    checkpoint: Path, name: str | None = None, dataset: str = ""
) -> LoadedPolicy:
    """A checkpoint's policy, on the plant it was trained on (Ray and torch needed).

    The network is loaded on first use, so mistakes in the rest of a command (a bad
    ``--state``) are reported before RLlib is imported.
    """
    checkpoint = checkpoint.resolve()
    info = CheckpointInfo.read(checkpoint)
    env_config = info.env_config
    plant = load_plant(env_config.spec_path, env_config.model_path, env_config.settings or None)
    codec = plant.codec(info.action_mode)
    return LoadedPolicy(
        name=name or info.algorithm,
        algorithm=info.algorithm,
        action_mode=info.action_mode,
        plant=plant,
        codec=codec,
        act=_LazyCheckpointActor(checkpoint, codec),
        source=checkpoint,
        dataset=dataset,
        yardstick=saved_yardstick(checkpoint, info, dataset),
    )


def saved_yardstick(checkpoint: Path, info: CheckpointInfo, dataset: str = "") -> Path | None:
    """The experiment's yardstick file of a checkpoint: where the trial recorded it (in
    an experiment folder moved since: where it is now, :meth:`CheckpointInfo.read`), or
    in its dataset's folder (``<experiment>/datasets/<dataset>/`` beside
    ``<experiment>/<trial>/<checkpoint>``). Whether it still fits is checked on use."""
    from env.yardstick import planning_mode, yardstick_filename

    name = yardstick_filename(planning_mode(info.action_mode))
    candidates = [Path(info.yardstick)] if info.yardstick else []
    if dataset:
        candidates.append(dataset_dir(checkpoint.parent.parent, dataset) / name)
    return next((path for path in candidates if path.is_file()), None)


class _LazyCheckpointActor:
    """Greedy actions of a checkpoint's RLModule, loaded on the first call."""

    def __init__(self, checkpoint: Path, codec: ActionCodec) -> None:
        self.checkpoint = checkpoint
        self.codec = codec
        self._act: Callable[[np.ndarray], np.ndarray] | None = None

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if self._act is None:
            from rllib_project.inference import greedy_action_function, module_from_checkpoint

            module = module_from_checkpoint(self.checkpoint)
            self._act = greedy_action_function(module, self.codec.space)
        return self._act(obs)


def load_export_policy(folder: Path) -> LoadedPolicy:
    from rllib_project.policy import load_policy

    exported = load_policy(folder)
    return LoadedPolicy(
        name=exported.name,
        algorithm=exported.algorithm,
        action_mode=exported.action_mode,
        plant=exported.plant,
        codec=exported.codec,
        act=exported.act,
        source=folder.resolve(),
    )


def load_policies(source: str | Path, dataset: str | None = None) -> list[LoadedPolicy]:
    """Every policy a source names (an experiment gives its best per dataset x
    algorithm; with ``dataset``, those of one dataset)."""
    from rllib_project.policy import POLICY_FILE

    path = resolve_source(source)
    if not path.exists():
        raise InputError(path, "not found")
    if (path / POLICY_FILE).exists() or (path / POLICY_METADATA).exists():
        _no_dataset_choice(path, dataset)
        if (path / POLICY_FILE).exists():
            return [load_export_policy(path)]
        return [load_checkpoint_policy(path)]
    entries = read_manifest(path).entries(dataset)
    if not entries:
        raise InputError(path / MANIFEST_FILE, "lists no checkpoint (every trial failed?)")
    return [
        load_checkpoint_policy(Path(e.checkpoint), f"{e.algorithm} (best)", e.dataset)
        for e in entries.values()
    ]


def _no_dataset_choice(path: Path, dataset: str | None) -> None:
    if dataset is not None:
        raise InputError("--dataset", f"goes with an experiment folder; {path} is one policy")


def load_best_policy(source: str | Path, dataset: str | None = None) -> LoadedPolicy:
    """One policy: the highest-ranked of an experiment's dataset (``dataset``, needed
    when it has several), or the one a path names."""
    path = resolve_source(source)
    if is_experiment(path):
        entry = read_manifest(path).best_overall(dataset)
        return load_checkpoint_policy(
            Path(entry.checkpoint), f"{entry.algorithm} (best)", entry.dataset
        )
    return load_policies(path, dataset)[0]
