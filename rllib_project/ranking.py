"""Whether a policy meets the experiment's target, and how checkpoints are ranked.

Ray-free: the stopper, Tune's checkpoint keeping (through the trainable's result), the
manifest's choice of the best checkpoint and each run's record all rank with these.
"""

from __future__ import annotations

from rllib_project.experiment import StopSettings
from rllib_project.scoring import PolicyMetrics

TARGET_TIER = 2.0
"""Added to the score of an evaluation that meets the target: more than any score
(success rate plus a return share below ``1 / rows``, so at most 2)."""


def target_met(stop: StopSettings, evaluation: PolicyMetrics) -> bool:
    """Whether an evaluation meets the experiment's target (``stop.success_rate`` over
    the rows the planner solves and, if given, ``stop.moves_ratio`` and
    ``stop.actuations_ratio``); never without a target. The stopper ends trials on it;
    the manifest records when each run first met it (time to target)."""
    if stop.success_rate is None:
        return False
    if not evaluation.success_rate_solvable >= stop.success_rate:  # NaN never meets it
        return False
    if stop.moves_ratio is not None and not evaluation.moves_ratio <= stop.moves_ratio:
        return False
    return stop.actuations_ratio is None or evaluation.actuations_ratio <= stop.actuations_ratio


def checkpoint_rank(stop: StopSettings | None, evaluation: PolicyMetrics) -> float:
    """A checkpoint's rank: those whose evaluation meets the target first, then by
    score (:func:`rllib_project.scoring.score`: success, ties broken by return).

    Why the target first: the score alone prefers one more row solved to anything the
    target adds (moves, setting changes). A trial stops at its first evaluation that
    meets the target, and an earlier checkpoint solving one more row with 1.3x the
    planner's setting changes would outrank it: the run would stop "at the target" and name a
    checkpoint that misses it. On the furnace log (``compare_dynamic.yaml``, target
    98%, 1.10x moves, 1.2x setting changes) a PPO trial's checkpoints reached 100% at
    1.27x the planner's setting changes (iteration 80) before it met the target
    (98.5%, 1.19x, iteration 94)."""
    tier = TARGET_TIER if stop is not None and target_met(stop, evaluation) else 0.0
    return tier + evaluation.score
