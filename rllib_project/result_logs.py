"""Tune's JSON and CSV result loggers, with a restore that cannot lose a log's rows.

When a trial with a checkpoint starts (a resumed run, a restarted actor), Tune's loggers
copy the trial's log from the storage path over the driver's staging copy, then append.
The driver meanwhile uploads its staging folder to that same storage path from a
background thread, and an upload rewrites each file (truncate, then write). A restore
that reads the storage copy in that moment gets an empty or cut file, and the log loses
every row before the restore point for good (seen: a resumed cluster job whose
``result.json`` began at iteration 5 while its ``progress.csv``, restored a few seconds
later, still held iterations 1-4). Here the staging copy is kept when the storage copy
is not longer: the staging copy is what the upload writes from, or what Tune's own
download put there when the run resumed; a longer storage copy (the staging folder of a
fresh driver lacks the file) is still copied in as Tune does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, LoggerCallback


def staging_copy_is_current(local: Path, stored_size: int | None) -> bool:
    """Whether the driver's staging copy ``local`` of a trial log should be kept instead
    of the storage copy of ``stored_size`` bytes (None: no storage copy)."""
    if not local.is_file():
        return False
    return stored_size is None or stored_size <= local.stat().st_size


def _stored_size(trial: Any, file_name: str) -> int | None:
    """Size of the trial's ``file_name`` on its storage filesystem (pyarrow's FileInfo
    has no size, None, when the file is absent)."""
    path = Path(trial.storage.trial_fs_path, file_name).as_posix()
    size = trial.storage.storage_filesystem.get_file_info(path).size
    return None if size is None else int(size)


class _StagingCopyFirst(LoggerCallback):
    """The restore of this module's loggers (see module docstring): Tune's own, unless
    the trial has a checkpoint and its staging copy is current."""

    def _restore_from_remote(self, file_name: str, trial: Any) -> None:
        local = Path(trial.local_path, file_name)
        if not (
            trial.checkpoint and staging_copy_is_current(local, _stored_size(trial, file_name))
        ):
            super()._restore_from_remote(file_name, trial)


class ResultJsonLog(_StagingCopyFirst, JsonLoggerCallback):
    """Tune's ``result.json`` logger (see module docstring)."""


class ProgressCsvLog(_StagingCopyFirst, CSVLoggerCallback):
    """Tune's ``progress.csv`` logger (see module docstring)."""
