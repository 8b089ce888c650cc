"""Keep Ray's and RLlib's known-harmless notices out of the output; real warnings stay.

A newcomer running ``rllib-project demo`` should read our progress table and results,
not a wall of notices about choices this project made on purpose. Only the messages
listed in :data:`HARMLESS` are hidden, each matched by its logger and its text, with
the reason next to it; any other warning Ray or RLlib logs still shows. Set
``RLLIB_PROJECT_RAY_NOTICES=all`` to see the hidden ones too.

(Ray's token-authentication notice is not filtered: the runner sets
``RAY_AUTH_MODE=token`` explicitly, which is what the notice asks for.)
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

SHOW_ALL = "RLLIB_PROJECT_RAY_NOTICES"


@dataclass(frozen=True)
class Notice:
    logger: str
    """The name of the logger that emits it."""
    text: str
    """A piece of its message that identifies it."""
    why: str
    """Why a user of this project can ignore it."""


_NEW_STACK = "on the new API stack! This is the new default behavior"
HARMLESS: tuple[Notice, ...] = (
    Notice(
        "ray.rllib.algorithms.algorithm_config",
        _NEW_STACK,
        "the project uses RLlib's new API stack (RLModule, Learner, EnvRunner) on purpose",
    ),
    Notice("ray.rllib.algorithms.sac.sac", _NEW_STACK, "the same, said again by SAC"),
    Notice(
        "ray.tune.utils.util",
        "Install gputil for GPU system monitoring",
        "training runs on CPUs; there is no GPU to monitor",
    ),
    Notice(
        "ray._common.deprecation",
        "`RLModule(config=[RLModuleConfig object])` has been deprecated",
        "RLlib's own RLModule.from_checkpoint calls its deprecated constructor",
    ),
)


class _HideNotices(logging.Filter):
    def __init__(self, texts: tuple[str, ...]) -> None:
        super().__init__()
        self.texts = texts

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in self.texts)


_installed = False


def hide_harmless_notices() -> None:
    """Install the filters (once per process, before or after Ray is imported)."""
    global _installed
    if _installed or os.environ.get(SHOW_ALL) == "all":
        return
    by_logger: dict[str, tuple[str, ...]] = {}
    for notice in HARMLESS:
        by_logger[notice.logger] = (*by_logger.get(notice.logger, ()), notice.text)
    for name, texts in by_logger.items():
        logging.getLogger(name).addFilter(_HideNotices(texts))
    _installed = True
