"""Only the listed, known-harmless Ray notices are hidden; other warnings still show."""

from __future__ import annotations

import logging

import pytest

from rllib_project.ray_notices import HARMLESS, hide_harmless_notices


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("notice", HARMLESS, ids=lambda n: n.logger)
def test_known_notice_is_hidden_and_a_real_warning_is_kept(notice) -> None:
    hide_harmless_notices()
    logger = logging.getLogger(notice.logger)
    collect = Collect()
    logger.addHandler(collect)
    try:
        logger.warning("You are running PPO %s for this algorithm.", notice.text)
        logger.warning("env runner 1 crashed and was restarted")
    finally:
        logger.removeHandler(collect)
    assert collect.messages == ["env runner 1 crashed and was restarted"]
