from __future__ import annotations

from pathlib import Path

import pytest

import env
from tests.datasets import write_dataset

REPO = Path(__file__).resolve().parent.parent
SAMPLE_SPEC = REPO / "data" / "sample_spec.yaml"


@pytest.fixture(scope="session")
def sample_plant() -> env.Plant:
    return env.load_plant(SAMPLE_SPEC)


@pytest.fixture()
def small_spec(tmp_path: Path) -> Path:
    """A 2-control dataset: small enough for brute-force checks."""
    return write_dataset(tmp_path / "small", 2)
