"""What a finished Tune run leaves for ``best.json``: the best checkpoint per dataset x
algorithm and a record of every trial (a *run*), read from Tune's results.

The two have different jobs. The best checkpoints are what a user deploys, chosen by
the evaluation score over every trial of a dataset x algorithm (all seeds and
search-space samples). The run records are what the comparison's statistics
(:mod:`rllib_project.comparison`) are computed from: one value per run, so that the
spread between seeds shows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from rllib_project.experiment import StopSettings
from rllib_project.manifest import BestCheckpoint, RunRecord, TargetReached, best_key
from rllib_project.ranking import checkpoint_rank, target_met
from rllib_project.scoring import PolicyMetrics
from rllib_project.trial_config import TrialConfig

if TYPE_CHECKING:
    import pandas as pd
    from ray.tune import Result

_METRIC_FIELDS = tuple(f.name for f in dataclasses.fields(PolicyMetrics))


def best_per_dataset_algorithm(
    results: Iterable[Result], stop: StopSettings
) -> dict[str, BestCheckpoint]:
    """The best kept checkpoint of each dataset x algorithm over all its trials, those
    meeting the target first (:func:`rllib_project.ranking.checkpoint_rank`)."""
    from ray.tune.result import TIME_TOTAL_S, TRAINING_ITERATION, TRIAL_ID

    from rllib_project.metrics import env_steps, evaluation_of

    best: dict[str, BestCheckpoint] = {}
    for result in results:
        if result.config is None:
            continue
        trial = TrialConfig.from_tune(result.config)
        key = best_key(trial.dataset, trial.algorithm_name)
        for checkpoint, metrics in result.best_checkpoints or []:
            evaluation = evaluation_of(metrics)
            if evaluation is None:
                continue
            current = best.get(key)
            if current is None or checkpoint_rank(stop, evaluation) > checkpoint_rank(
                stop, current.metrics
            ):
                best[key] = BestCheckpoint(
                    dataset=trial.dataset,
                    algorithm=trial.algorithm_name,
                    action_mode=trial.action_mode,
                    checkpoint=checkpoint.path,
                    trial_id=str(metrics.get(TRIAL_ID)),
                    iteration=int(metrics[TRAINING_ITERATION]),
                    env_steps=env_steps(metrics),
                    time_total_s=float(metrics[TIME_TOTAL_S]),
                    metrics=evaluation,
                    config=trial,
                )
    return dict(sorted(best.items()))


def run_record(result: Result, stop: StopSettings) -> RunRecord | None:
    """One trial's record; None for a result without a config (nothing to attribute)."""
    from ray.tune.result import TIME_TOTAL_S, TRAINING_ITERATION, TRIAL_ID

    from rllib_project.metrics import env_steps, evaluation_of

    if result.config is None:
        return None
    trial = TrialConfig.from_tune(result.config)
    final: Mapping[str, Any] = result.metrics or {}
    evaluations = [evaluation_of(m) for _, m in result.best_checkpoints or []]
    scored = [e for e in evaluations if e is not None]
    return RunRecord(
        dataset=trial.dataset,
        algorithm=trial.algorithm_name,
        trial_id=str(final.get(TRIAL_ID, "")),
        seed=trial.seed,
        configuration=trial.configuration,
        iterations=int(final.get(TRAINING_ITERATION, 0)),
        env_steps=env_steps(final),
        time_total_s=float(final.get(TIME_TOTAL_S, 0.0)),
        metrics=max(scored, key=lambda e: checkpoint_rank(stop, e)) if scored else None,
        target_reached=first_target(result.metrics_dataframe, stop),
        error=None if result.error is None else str(result.error).splitlines()[0],
    )


def first_target(progress: pd.DataFrame | None, stop: StopSettings) -> TargetReached | None:
    """The first reported iteration whose evaluation met the target (``progress.csv``
    order; :func:`rllib_project.ranking.target_met` decides)."""
    from rllib_project.metrics import ENV_STEPS, TIME_TOTAL_S, TRAINING_ITERATION
    from rllib_project.metrics import evaluation_metric as column

    if stop.success_rate is None or progress is None or progress.empty:
        return None
    present = [f for f in _METRIC_FIELDS if column(f) in progress]
    for _, row in progress.iterrows():
        evaluation = PolicyMetrics.from_mapping({f: row[column(f)] for f in present})
        if target_met(stop, evaluation):
            return TargetReached(
                iteration=int(row[TRAINING_ITERATION]),
                time_s=float(row[TIME_TOTAL_S]),
                env_steps=int(row.get(ENV_STEPS, 0)),
            )
    return None


def run_records(results: Iterable[Result], stop: StopSettings) -> list[RunRecord]:
    """Every trial's record, sorted by dataset, algorithm and seed."""
    records = [r for r in (run_record(result, stop) for result in results) if r is not None]
    return sorted(records, key=lambda r: (r.dataset, r.algorithm, r.configuration, r.seed))
