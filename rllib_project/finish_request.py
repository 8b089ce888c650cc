"""The finish request: how a user tells a running (or resumed) run to end trials.

``rllib-project tune --finish DIR`` writes ``finish_request.txt`` into the experiment
folder, naming trials (as in the progress table, e.g. ``PPO_sample_spec_1a2b3_00000``),
algorithms (``PPO``) or datasets (``sample_spec``), one per line; an empty file or a
line ``*`` means every trial. The run's stopper (:mod:`rllib_project.stopping`) reads it
between iterations. This module is the file's one reader and writer, and imports no
Ray: asking for a finish is a file write, and takes a second, not Ray's import time.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from env.files import write_text_atomic

FINISH_REQUEST = "finish_request.txt"
EVERY_TRIAL = "*"


def read_finish_request(experiment_dir: Path) -> frozenset[str] | None:
    """The names a finish request lists (``{EVERY_TRIAL}`` for all); None if none."""
    path = experiment_dir / FINISH_REQUEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    names = frozenset(line.strip() for line in text.splitlines() if line.strip())
    return names or frozenset({EVERY_TRIAL})


def request_finish(experiment_dir: Path, names: Iterable[str] = ()) -> frozenset[str]:
    """Add ``names`` (none: every trial) to the experiment's finish request."""
    wanted = frozenset(names) or frozenset({EVERY_TRIAL})
    requested = (read_finish_request(experiment_dir) or frozenset()) | wanted
    write_text_atomic(experiment_dir / FINISH_REQUEST, "".join(f"{n}\n" for n in sorted(requested)))
    return requested
