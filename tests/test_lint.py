"""The code base stays ruff-clean (lint and format) and type-checks (mypy), with every
test run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def _ruff() -> str:
    candidate = Path(sys.executable).with_name("ruff")
    found = str(candidate) if candidate.exists() else shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: run 'bash scripts/setup.sh --dev'")
    return found


def test_ruff_check_is_clean() -> None:
    result = subprocess.run([_ruff(), "check", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = subprocess.run(
        [_ruff(), "format", "--check", "."], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    """The type checker configured in pyproject.toml ([tool.mypy]) finds nothing in
    env/ and rllib_project/: the types the packages promise (py.typed) hold."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True
    )
    if "No module named mypy" in result.stderr:
        pytest.fail("mypy is not installed: run 'bash scripts/setup.sh --dev'")
    assert result.returncode == 0, result.stdout + result.stderr
