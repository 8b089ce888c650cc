"""A resumed trial's result log keeps its rows while Tune uploads the same file."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from pyarrow import fs
from ray.air.constants import EXPR_PROGRESS_FILE, EXPR_RESULT_FILE

from rllib_project.result_logs import ProgressCsvLog, ResultJsonLog

ROWS = "".join(f'{{"training_iteration": {i}}}\n' for i in range(1, 5))


def _trial(tmp_path: Path) -> SimpleNamespace:
    """What the loggers' restore reads of a Tune trial: its staging folder, its storage
    folder on a (here local) pyarrow filesystem and its checkpoint."""
    staging, stored = tmp_path / "staging", tmp_path / "storage"
    staging.mkdir()
    stored.mkdir()
    storage = SimpleNamespace(trial_fs_path=str(stored), storage_filesystem=fs.LocalFileSystem())
    return SimpleNamespace(local_path=str(staging), storage=storage, checkpoint=object())


@pytest.mark.parametrize(
    ("logger", "file_name"),
    [(ResultJsonLog, EXPR_RESULT_FILE), (ProgressCsvLog, EXPR_PROGRESS_FILE)],
)
def test_restore_keeps_the_staging_log_while_the_stored_copy_is_being_rewritten(
    tmp_path: Path, logger: type, file_name: str
) -> None:
    """The upload truncates the stored copy before writing it: a restore in that moment
    must not replace the full staging copy with the empty or cut one (Tune's own
    loggers do, and the log loses its rows)."""
    trial = _trial(tmp_path)
    local = Path(trial.local_path, file_name)
    stored = Path(trial.storage.trial_fs_path, file_name)
    local.write_text(ROWS)
    for cut in ("", ROWS[:30]):
        stored.write_text(cut)
        logger()._restore_from_remote(file_name, trial)
        assert local.read_text() == ROWS


def test_restore_copies_the_stored_log_into_a_fresh_staging_folder(tmp_path: Path) -> None:
    """A driver on another machine has no staging copy (or an older, shorter one): the
    stored log is copied in, as Tune does."""
    trial = _trial(tmp_path)
    local = Path(trial.local_path, EXPR_RESULT_FILE)
    Path(trial.storage.trial_fs_path, EXPR_RESULT_FILE).write_text(ROWS)
    ResultJsonLog()._restore_from_remote(EXPR_RESULT_FILE, trial)
    assert local.read_text() == ROWS
    local.write_text(ROWS[:20])
    ResultJsonLog()._restore_from_remote(EXPR_RESULT_FILE, trial)
    assert local.read_text() == ROWS


def test_trial_without_checkpoint_restores_nothing(tmp_path: Path) -> None:
    trial = _trial(tmp_path)
    trial.checkpoint = None
    Path(trial.storage.trial_fs_path, EXPR_RESULT_FILE).write_text(ROWS)
    ResultJsonLog()._restore_from_remote(EXPR_RESULT_FILE, trial)
    assert not Path(trial.local_path, EXPR_RESULT_FILE).exists()
