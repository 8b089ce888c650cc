"""The bundled experiment files validate, and their search spaces map onto Tune's."""

from __future__ import annotations

import pytest

from rllib_project.experiment import load_experiment
from tests.conftest import REPO


@pytest.mark.parametrize("name", ["compare.yaml", "search.yaml", "seeds.yaml"])
def test_bundled_experiments_validate(name: str) -> None:
    experiment = load_experiment(REPO / "tune_configs" / name)
    assert all(d.spec.exists() for d in experiment.datasets)
    for algorithm, spec in experiment.algorithms.items():
        assert spec.algorithm == algorithm


def test_search_spaces_become_tune_domains() -> None:
    from ray.tune.search.sample import Categorical, Float

    from rllib_project.trial_config import to_search_space

    space = to_search_space(
        {
            "lr": {"loguniform": [1e-4, 1e-2]},
            "n": {"choice": [1, 2]},
            "g": {"grid": [1, 2]},
            "u": {"uniform": [0.0, 1.0]},
            "nested": {"capacity": 5},
            "plain": [1, 2],
        }
    )
    assert isinstance(space["lr"], Float) and isinstance(space["u"], Float)
    assert isinstance(space["n"], Categorical)
    assert space["g"] == {"grid_search": [1, 2]}
    assert space["nested"] == {"capacity": 5} and space["plain"] == [1, 2]
