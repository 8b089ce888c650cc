"""SIGTERM ends a Tune run the way Ctrl-C does: with its state saved whole.

``ray job stop``, ``kill`` and most process supervisors stop a driver with SIGTERM.
Ray's driver answers SIGTERM with ``sys.exit`` at whatever line the main thread is on,
while Tune's background thread may be uploading the experiment folder from the
driver's staging directory to the storage path. A file cut off in that upload stays cut
off: Tune's ``result.json`` of a trial was found empty after a ``ray job stop``, and the
resumed trial's log then began at the iteration it was restored from (iterations 1-22
lost). Tune itself ends a run cleanly on SIGUSR1 (and on the first Ctrl-C): it finishes
its step, waits for the upload under way, saves and uploads its state once more, and
stops the trials. :func:`sigterm_ends_tune_cleanly` hands SIGTERM to that handler.
``scripts/submit.sh`` gives a stopped job's driver the time for it
(``RAY_JOB_STOP_WAIT_TIME_S``; Ray's default, 3 s, then SIGKILL).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def sigterm_ends_tune_cleanly() -> Iterator[None]:
    """Within the block (around ``Tuner.fit``, in the main thread), SIGTERM calls the
    handler Tune has installed for SIGUSR1; before Tune installs it, SIGTERM ends the
    driver as ``KeyboardInterrupt`` does (nothing of the run's state is being written
    yet). The previous handler comes back afterwards. The handler prints nothing (a
    print could interrupt one under way); Tune logs the stop, and the CLI says how to
    resume when ``fit`` returns with trials unfinished."""

    def end_tune_run(signum: int, frame: FrameType | None) -> None:
        tune_handler = signal.getsignal(signal.SIGUSR1)
        if not callable(tune_handler):
            raise KeyboardInterrupt
        tune_handler(signum, frame)

    previous = signal.signal(signal.SIGTERM, end_tune_run)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
