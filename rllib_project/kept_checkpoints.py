"""Where a restored trial goes on from when the checkpoint Tune names is gone.

Tune saves its experiment state every few seconds; between two saves a trial may
register new checkpoints, and ``CheckpointConfig(num_to_keep=...)`` then deletes the
worst-scoring ones, which can include the one the last saved state calls the trial's
latest. After a crash, a ``ray job stop`` or a lost driver node, ``Tuner.restore`` hands
the trial that deleted path: Tune's ``Trainable.restore`` refuses it ("does not exist on
storage anymore"), the trial fails its restores and ends in ERROR although newer
checkpoints of it are on disk, and Tune's checkpoint manager fails again when it tries
to delete the missing folder. The newest checkpoint still kept in the trial's folder is
where the trial really stood (the manager never deletes the latest one), so
:class:`KeptCheckpointRestore` points the trial there before Tune restores it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune
from ray.train._internal.checkpoint_manager import _TrainingResult
from ray.tune.experiment import Trial
from ray.tune.result import EXPR_RESULT_FILE, TRAINING_ITERATION

from env.errors import InputError
from rllib_project.checkpoints import POLICY_METADATA, CheckpointInfo
from rllib_project.experiment import StopSettings
from rllib_project.metrics import evaluation_fields
from rllib_project.trial_config import TrialConfig


@dataclass(frozen=True)
class KeptCheckpoint:
    """A complete checkpoint in a trial's folder, and the result Tune recorded at its
    iteration (what Tune would have registered with it)."""

    path: Path
    result: dict[str, Any]


def newest_kept_checkpoint(
    trial_dir: Path, stop: StopSettings | None = None
) -> KeptCheckpoint | None:
    """The complete checkpoint of the highest training iteration in ``trial_dir`` (its
    ``plant_policy.json`` readable and every file it lists there whole), with Tune's
    result of that iteration (or, without one, its own evaluation ranked under the
    trial's ``stop`` target); None if the folder has none."""
    newest: tuple[CheckpointInfo, Path] | None = None
    for metadata in trial_dir.glob(f"checkpoint_*/{POLICY_METADATA}"):
        info = complete_checkpoint_info(metadata.parent)
        if info is None:
            continue
        if newest is None or info.training_iteration > newest[0].training_iteration:
            newest = (info, metadata.parent)
    if newest is None:
        return None
    info, path = newest
    iteration = info.training_iteration
    # the checkpoint's own evaluation, should the result log lack its iteration (Tune
    # keeps checkpoints by its rank, CHECKPOINT_SCORE)
    result: dict[str, Any] = {TRAINING_ITERATION: iteration}
    if info.evaluation is not None:
        result.update(evaluation_fields(info.evaluation, {}, stop))
    for recorded in _recorded_results(trial_dir):
        if recorded.get(TRAINING_ITERATION) == iteration:
            result = recorded
    return KeptCheckpoint(path, result)


def complete_checkpoint_info(checkpoint: Path) -> CheckpointInfo | None:
    """The metadata of ``checkpoint`` if the folder is whole: None while its metadata
    is cut short (being written) or a file it lists is missing or short (its copy into
    storage was cut off)."""
    try:
        info = CheckpointInfo.read(checkpoint)
    except InputError:
        return None
    return info if info.is_complete(checkpoint) else None


class KeptCheckpointRestore(tune.Callback):
    """Before Tune starts a trial's actor, point a trial whose latest checkpoint no
    longer exists at the newest one kept, forget deleted ones (so that ``num_to_keep``
    does not delete them again), and number its next checkpoints after every folder
    already there (Tune would otherwise write its next checkpoint over a newer kept
    one). ``on_step_begin`` runs before the step that schedules actors, and the actor
    receives the trial's storage (with that numbering) when it is created. Uses Ray
    2.60's checkpoint manager and storage internals; Ray is pinned."""

    def __init__(self) -> None:
        self._checked: set[str] = set()

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        for trial in trials:
            if trial.trial_id not in self._checked:
                self._checked.add(trial.trial_id)
                repair_missing_latest(trial)
                warn_of_lost_results(trial)


def repair_missing_latest(trial: Trial) -> None:
    """See :class:`KeptCheckpointRestore`; a trial whose latest checkpoint exists (or
    that has none) is left as it is."""
    manager, storage = trial.run_metadata.checkpoint_manager, trial.storage
    if manager is None or storage is None:
        return
    named = _local_checkpoint_path(manager.latest_checkpoint_result)
    if named is None or named.exists():
        return
    manager._checkpoint_results = [
        r
        for r in manager._checkpoint_results
        if r.checkpoint is not None and Path(r.checkpoint.path).exists()
    ]
    storage.current_checkpoint_index = max(
        [storage.current_checkpoint_index]
        + [index + 1 for index in _checkpoint_indices(named.parent)]
    )
    kept = newest_kept_checkpoint(named.parent, TrialConfig.from_tune(trial.config).stop)
    if kept is None:
        manager._latest_checkpoint_result = None
        print(f"{trial}: {named.name} is gone and no other checkpoint is kept: starting over")
        return
    known = [
        r
        for r in manager._checkpoint_results
        if r.checkpoint is not None and Path(r.checkpoint.path) == kept.path
    ]
    if known:  # an older one the manager keeps: it becomes the latest again
        manager._latest_checkpoint_result = known[0]
    else:  # newer than the saved state: registered as Tune would have
        checkpoint = tune.Checkpoint.from_directory(kept.path)
        manager.register_checkpoint(_TrainingResult(checkpoint=checkpoint, metrics=kept.result))
    print(
        f"{trial}: {named.name} was deleted after Tune last saved its state; "
        f"going on from {kept.path.name}, the newest kept",
        flush=True,
    )


def warn_of_lost_results(trial: Trial) -> None:
    """Say so when the result log of a trial about to be restored lacks iterations up to
    its checkpoint. Tune uploads each trial's ``result.json`` from the driver's staging
    folder to the storage path in the background; a driver killed outright (SIGKILL, a
    lost node) in the middle of that upload leaves the file cut off, and Tune appends to
    what is left. Training is not affected (it goes on from the checkpoint); the log's
    gap is, and a user reading it should know why."""
    path = _local_checkpoint_path(trial.latest_checkpoint_result)
    if path is None or not path.exists():
        return
    try:
        restored = CheckpointInfo.read(path).training_iteration
    except InputError:
        return
    recorded = {r.get(TRAINING_ITERATION) for r in _recorded_results(path.parent)}
    missing = [i for i in range(1, restored + 1) if i not in recorded]
    if missing:
        print(
            f"{trial}: its {EXPR_RESULT_FILE} lacks {len(missing)} of iterations 1-{restored} "
            "(the driver was stopped while Tune uploaded it); training goes on from "
            f"{path.name} (iteration {restored})",
            flush=True,
        )


def _local_checkpoint_path(result: _TrainingResult | None) -> Path | None:
    """The folder of ``result``'s checkpoint when it is on the local filesystem (what
    the repairs here can look into); None without a checkpoint or on remote storage."""
    if result is None or result.checkpoint is None:
        return None
    filesystem = result.checkpoint.filesystem
    if filesystem is None or filesystem.type_name != "local":
        return None
    return Path(result.checkpoint.path)


def _recorded_results(trial_dir: Path) -> list[dict[str, Any]]:
    """The results in a trial folder's ``result.json`` (none if it is missing; a line cut
    short by a crash is skipped)."""
    results = trial_dir / EXPR_RESULT_FILE
    if not results.is_file():
        return []
    recorded = []
    for line in results.read_text(encoding="utf-8").splitlines():
        try:
            result = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(result, dict):
            recorded.append(result)
    return recorded


def _checkpoint_indices(trial_dir: Path) -> list[int]:
    """The numbers of the ``checkpoint_NNNNNN`` folders in ``trial_dir``."""
    names = (p.name.removeprefix("checkpoint_") for p in trial_dir.glob("checkpoint_*"))
    return [int(n) for n in names if n.isdigit()]
