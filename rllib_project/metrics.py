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

from rllib_project.experiment import StopSettings
from rllib_project.ranking import checkpoint_rank
from rllib_project.scoring import PolicyMetrics

__all__ = [
    "ACTION_MODE",
    "ALGORITHM",
    "CHECKPOINT_SCORE",
    "DATASET",
    "ENV_RUNNER_RESULTS",
    "ENV_STEPS",
    "EVALUATED_AT",
    "EVALUATION",
    "EVALUATION_SECONDS",
    "NODE_ID",
    "NUM_ENV_STEPS_SAMPLED_LIFETIME",
    "ROWS_PLANNED",
    "SCORE",
    "SETUP_SECONDS",
    "START_SECONDS",
    "STEP_WALL_SECONDS",
    "TIME_THIS_ITER_S",
    "TIME_TOTAL_S",
    "TRAINING_ITERATION",
    "TRIAL",
    "TRIAL_WALL_S",
    "WALL_SECONDS",
    "env_steps",
    "evaluation_fields",
    "evaluation_metric",
    "evaluation_of",
    "trial_wall_seconds",
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

TRIAL = "trial"
"""Sub-dict of every result: the trial's own wall clock and set-up (the keys below).
Tune's ``time_total_s`` counts only the time inside training iterations; these count
everything the trial's process did, which is what a wall-time budget means."""
WALL_SECONDS = "wall_s"
"""Inside ``trial``: wall time since the trial's process began loading the code
(loading, set-up, iterations, evaluations, checkpoints), carried over a restore."""
STEP_WALL_SECONDS = "step_wall_s"
"""Inside ``trial``: wall time since the previous result (one iteration with its
evaluation and the checkpoint saved after the previous one)."""
START_SECONDS = "start_s"
"""Inside ``trial``: seconds the trial's process took to load the code (RLlib, torch)
before its set-up began."""
SETUP_SECONDS = "setup_s"
"""Inside ``trial``: seconds the trial's set-up took (plant, yardstick, algorithm)."""
ROWS_PLANNED = "rows_planned"
"""Inside ``trial``: start rows the trial's process planned itself; 0 when it replayed
the experiment's saved yardstick, as it should."""
TRIAL_WALL_S = f"{TRIAL}/{WALL_SECONDS}"
"""The trial's wall time as a flattened key (``progress.csv``, Tune columns)."""

ENV_STEPS = f"{ENV_RUNNER_RESULTS}/{NUM_ENV_STEPS_SAMPLED_LIFETIME}"
"""Env steps sampled so far, as a flattened key (``progress.csv``, Tune columns)."""

_METRIC_FIELDS = frozenset(f.name for f in dataclasses.fields(PolicyMetrics))


def evaluation_metric(name: str) -> str:
    """The flattened key of one evaluation metric, e.g. ``evaluation/score``."""
    if name not in _METRIC_FIELDS:
        raise KeyError(f"{name!r} is not a PolicyMetrics field")
    return f"{EVALUATION}/{name}"


SCORE = evaluation_metric("score")
"""The evaluation's score as a flattened key: what the schedulers compare trials by
(checkpoints are ranked by :data:`CHECKPOINT_SCORE`)."""

CHECKPOINT_SCORE = "checkpoint_score"
"""What Tune keeps checkpoints by, at the top level of every result: the evaluation's
rank (:func:`rllib_project.ranking.checkpoint_rank`: meeting the target first, then
the score).

Why a second key: Ray 2.60's checkpoint manager looks the score attribute up in the
trainable's result *as returned*, nested (``register_checkpoint``: ``score_attr in
metrics``), while schedulers and stoppers get it flattened. With the nested
``evaluation/score`` it never found the score, ordered checkpoints by age and
``num_to_keep`` deleted the best ones: on the furnace log a PPO trial's 100% checkpoint
(iteration 80) was deleted and its last two (98.5%) kept."""


def evaluation_fields(
    evaluation: PolicyMetrics, extra: Mapping[str, Any], stop: StopSettings | None
) -> dict[str, Any]:
    """What a trial result carries of its evaluation: the :data:`EVALUATION` sub-dict
    (the metrics and ``extra``, e.g. :data:`EVALUATION_SECONDS`) and
    :data:`CHECKPOINT_SCORE`, its rank under the experiment's ``stop`` target."""
    return {
        EVALUATION: {**evaluation.to_dict(), **extra},
        CHECKPOINT_SCORE: checkpoint_rank(stop, evaluation),
    }


def env_steps(result: Mapping[str, Any]) -> int:
    """Env steps sampled so far, from a (nested) trial result; 0 before the first."""
    return int(result.get(ENV_RUNNER_RESULTS, {}).get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0))


def trial_wall_seconds(result: Mapping[str, Any]) -> tuple[float, float] | None:
    """(wall time so far, wall time of the last step) from a nested result, if any."""
    values = result.get(TRIAL)
    if not isinstance(values, Mapping) or WALL_SECONDS not in values:
        return None
    return float(values[WALL_SECONDS]), float(values.get(STEP_WALL_SECONDS, 0.0))


def evaluation_of(result: Mapping[str, Any]) -> PolicyMetrics | None:
    """The evaluation a (nested) trial result carries, if any."""
    values = result.get(EVALUATION)
    return None if values is None else PolicyMetrics.from_mapping(values)
