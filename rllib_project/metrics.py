"""Names of the values in a Tune trial result that this project writes or reads.

Each name is defined once, here: RLlib's and Tune's own constants where they exist
(``ray.rllib.utils.metrics``, ``ray.tune.result``), and the keys of the project's greedy
evaluation, which every result carries as a sub-dict of :class:`PolicyMetrics` fields.
A metric spelled in two modules drifts apart; a misspelt one here fails at import.

Importing this module imports RLlib (a few seconds): Ray-free code (exported policies,
``env``) never needs it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME
from ray.tune.result import TIME_THIS_ITER_S, TIME_TOTAL_S, TRAINING_ITERATION

from rllib_project.scoring import PolicyMetrics

__all__ = [
    "ACTION_MODE",
    "ALGORITHM",
    "DATASET",
    "ENV_RUNNER_RESULTS",
    "ENV_STEPS",
    "EVALUATED_AT",
    "EVALUATION",
    "EVALUATION_SECONDS",
    "NODE_ID",
    "NUM_ENV_STEPS_SAMPLED_LIFETIME",
    "SCORE",
    "TIME_THIS_ITER_S",
    "TIME_TOTAL_S",
    "TRAINING_ITERATION",
    "env_steps",
    "evaluation_metric",
    "evaluation_of",
]

EVALUATION = "evaluation"
"""Sub-dict of every result: the greedy evaluation on the fixed start rows
(:class:`PolicyMetrics` fields, plus the two keys below)."""
EVALUATION_SECONDS = "time_s"
"""Inside ``evaluation``: seconds the evaluation took (benchmarks subtract it)."""
EVALUATED_AT = "iteration"
"""Inside ``evaluation``: the training iteration whose weights were evaluated."""

ALGORITHM = "algorithm"
"""Added to every result by the trainable: the trial's algorithm (PPO, SAC, DQN) ..."""
DATASET = "dataset"
"""... the dataset it trains on (its name in the experiment) ..."""
ACTION_MODE = "action_mode"
"""... its action mode ..."""
NODE_ID = "node_id"
"""... and the Ray node it ran on."""

ENV_STEPS = f"{ENV_RUNNER_RESULTS}/{NUM_ENV_STEPS_SAMPLED_LIFETIME}"
"""Env steps sampled so far, as a flattened key (``progress.csv``, Tune columns)."""

_METRIC_FIELDS = frozenset(f.name for f in dataclasses.fields(PolicyMetrics))


def evaluation_metric(name: str) -> str:
    """The flattened key of one evaluation metric, e.g. ``evaluation/score``."""
    if name not in _METRIC_FIELDS:
        raise KeyError(f"{name!r} is not a PolicyMetrics field")
    return f"{EVALUATION}/{name}"


SCORE = evaluation_metric("score")
"""What Tune keeps checkpoints by and the manifest picks the best with."""


def env_steps(result: Mapping[str, Any]) -> int:
    """Env steps sampled so far, from a (nested) trial result; 0 before the first."""
    return int(result.get(ENV_RUNNER_RESULTS, {}).get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0))


def evaluation_of(result: Mapping[str, Any]) -> PolicyMetrics | None:
    """The evaluation a (nested) trial result carries, if any."""
    values = result.get(EVALUATION)
    return None if values is None else PolicyMetrics.from_mapping(values)
