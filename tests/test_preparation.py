"""The dataset preparation process: its answer, its error, or one line when it dies."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from env.errors import InputError
from rllib_project.preparation import PreparationFailed, PreparationProcess


def blocked_preparation(tmp_path: Path) -> PreparationProcess:
    """A preparation that cannot finish on its own: its spec is a FIFO no one writes to,
    so reading it waits until the process is ended (a state, not a race with a clock)."""
    spec = tmp_path / "spec.yaml"
    os.mkfifo(spec)
    return PreparationProcess([("plant", spec, None)], {}, ["discrete"], tmp_path / "experiment")


def test_a_killed_preparation_is_one_line_naming_the_signal(tmp_path: Path) -> None:
    preparation = blocked_preparation(tmp_path)
    assert preparation.pid is not None
    os.kill(preparation.pid, signal.SIGKILL)
    with pytest.raises(PreparationFailed) as failed:
        preparation.result()
    message = str(failed.value)
    assert "killed by SIGKILL" in message and "out of memory?" in message, message
    assert "\n" not in message


def test_stop_ends_a_preparation_that_still_runs(tmp_path: Path) -> None:
    preparation = blocked_preparation(tmp_path)
    preparation.stop()
    with pytest.raises(PreparationFailed, match="killed by SIGTERM"):
        preparation.result()


def test_a_users_mistake_comes_back_as_the_same_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    preparation = PreparationProcess([("plant", missing, None)], {}, ["discrete"], tmp_path / "e")
    with pytest.raises(InputError, match="dataset spec not found"):
        preparation.result()
