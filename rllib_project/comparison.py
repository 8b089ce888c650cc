"""The comparison of an experiment's algorithms over its runs, with confidence intervals.

What ``evaluate DIR --json`` returns under ``aggregate`` and what the report's tables
and plots show. Computed from ``best.json`` alone (its :class:`RunRecord` per trial),
with the statistics of :mod:`rllib_project.statistics`.

**Runs.** Every trial is a run: one algorithm on one dataset with one seed (and one
search-space sample). When an algorithm tried several configurations (search-space
samples) on a dataset, its runs there are those of the configuration with the highest
mean score over its seeds; the others were the search (this choice, made on the same
evaluation, flatters the chosen configuration a little). A run that failed before
its first evaluation has no value and is left out (``notes`` says so).

**Metrics per run**, from the evaluation of the run's best kept checkpoint on the
experiment's evaluation rows:

* ``success_rate_solvable``: the share of the rows the planner can solve that the
  greedy policy brings into the band and keeps there; the planner scores 1, so this is
  normalised by the planner and comparable across datasets;
* ``moves_ratio``: the policy's moves to the band over the planner's, on rows both
  solve (1 = optimal); also planner-normalised. Runs where it is undefined (no shared
  row) are left out of this metric only;
* ``time_to_target_s``: the run's training time (Tune's ``time_total_s``: seconds
  inside the trial's training steps, its evaluations included, time waiting in the
  queue excluded) at the end of the first iteration whose evaluation met the stop
  target (``stop.success_rate`` and, if given, ``stop.moves_ratio``; the same test
  the stopper applies); ``steps_to_target``: env steps sampled by then. A run that
  never met the target is *censored*: it counts with the experiment's budget in that
  unit (``stop.wall_time_s``, ``stop.env_steps``) when the experiment sets one, else
  with what the run had used when it ended, and never with less than that. So these
  two are lower bounds for algorithms that often miss the target; ``reached_target``
  gives how many runs met it. Without a target in the stop settings they are absent.

**Aggregates** pool the runs of every dataset (stratified bootstrap, each dataset
keeps its number of runs); ``per_dataset`` gives the same per dataset. The
**probability of improvement** P(X > Y) compares the runs' scores (``metrics.score``:
success rate, ties broken by mean return) within each dataset and averages over the
datasets. The **performance profile** is the fraction of runs whose
``success_rate_solvable`` is at least each threshold.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from env.files import json_safe
from rllib_project.experiment import StopSettings
from rllib_project.manifest import Manifest, RunRecord
from rllib_project.ranking import checkpoint_rank
from rllib_project.statistics import (
    CONFIDENCE,
    RESAMPLES,
    Estimate,
    Improvement,
    Profile,
    estimate,
    performance_profile,
    probability_of_improvement,
)


@dataclass(frozen=True)
class ComparedMetric:
    key: str
    label: str
    higher_is_better: bool
    fmt: str
    value: Callable[[RunRecord, StopSettings], float]
    needs_target: bool = False
    """Defined only when the experiment sets a target (``stop.success_rate``)."""


def _success(run: RunRecord, stop: StopSettings) -> float:
    return float("nan") if run.metrics is None else run.metrics.success_rate_solvable


def _moves(run: RunRecord, stop: StopSettings) -> float:
    return float("nan") if run.metrics is None else run.metrics.moves_ratio


def time_to_target(run: RunRecord, stop: StopSettings) -> tuple[float, float]:
    """(training seconds, env steps) until the run first met the target, or, censored,
    the budget (see the module docstring); NaN without a target."""
    if stop.success_rate is None:
        return float("nan"), float("nan")
    if run.target_reached is not None:
        return run.target_reached.time_s, float(run.target_reached.env_steps)
    seconds = max(run.time_total_s, stop.wall_time_s or 0.0)
    steps = max(run.env_steps, stop.env_steps or 0)
    return seconds, float(steps)


METRICS = (
    ComparedMetric("success_rate_solvable", "success of solvable", True, "{:.1%}", _success),
    ComparedMetric("moves_ratio", "moves/opt", False, "{:.3f}", _moves),
    ComparedMetric(
        "time_to_target_s",
        "time to target (s)",
        False,
        "{:.1f}",
        lambda run, stop: time_to_target(run, stop)[0],
        needs_target=True,
    ),
    ComparedMetric(
        "steps_to_target",
        "steps to target",
        False,
        "{:,.0f}",
        lambda run, stop: time_to_target(run, stop)[1],
        needs_target=True,
    ),
)
IMPROVEMENT_METRIC = "score"
PROFILE_METRIC = "success_rate_solvable"
PROFILE_THRESHOLDS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class AlgorithmStatistics:
    """One algorithm's runs (on one dataset, or pooled over all)."""

    n_runs: int
    datasets: list[str]
    reached_target: int | None
    """Runs whose evaluation met the target (None: the experiment sets no target)."""
    metrics: dict[str, Estimate]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "n_runs": self.n_runs,
            "datasets": self.datasets,
            "reached_target": self.reached_target,
        }
        for key, value in self.metrics.items():
            data[key] = {
                "n_runs": value.n_runs,
                "iqm": value.iqm,
                "mean": value.mean,
                "ci95": None
                if value.iqm_ci is None or value.mean_ci is None
                else {"iqm": value.iqm_ci.to_list(), "mean": value.mean_ci.to_list()},
            }
        return data


@dataclass(frozen=True)
class PairImprovement:
    algorithm: str
    over: str
    improvement: Improvement


@dataclass(frozen=True)
class Comparison:
    """Everything the statistics say about an experiment's algorithms."""

    budget: str
    overall: dict[str, AlgorithmStatistics]
    per_dataset: dict[str, dict[str, AlgorithmStatistics]]
    improvements: list[PairImprovement]
    profiles: dict[str, Profile]
    notes: list[str]

    @property
    def has_intervals(self) -> bool:
        return any(_has_interval(s) for s in self.overall.values())

    def to_json(self) -> dict[str, Any]:
        profiles = {
            name: {
                "fraction": p.fraction.tolist(),
                "ci95_low": None if p.low is None else p.low.tolist(),
                "ci95_high": None if p.high is None else p.high.tolist(),
            }
            for name, p in self.profiles.items()
        }
        return json_safe(
            {
                "confidence": CONFIDENCE,
                "bootstrap_resamples": RESAMPLES,
                "interval": "percentile, stratified bootstrap over the runs of each dataset",
                "budget": self.budget,
                "metrics": [m.key for m in METRICS],
                "algorithms": {k: v.to_json() for k, v in self.overall.items()},
                "per_dataset": {
                    d: {k: v.to_json() for k, v in stats.items()}
                    for d, stats in self.per_dataset.items()
                },
                "probability_of_improvement": [
                    {
                        "algorithm": p.algorithm,
                        "over": p.over,
                        "metric": IMPROVEMENT_METRIC,
                        "probability": p.improvement.probability,
                        "ci95": None if p.improvement.ci is None else p.improvement.ci.to_list(),
                    }
                    for p in self.improvements
                ],
                "performance_profile": {
                    "metric": PROFILE_METRIC,
                    "thresholds": PROFILE_THRESHOLDS.tolist(),
                    "algorithms": profiles,
                },
                "notes": self.notes,
            }
        )


def budget_statement(stop: StopSettings) -> str:
    """What every trial was given, and whether that means equal env steps or equal time."""
    limits = []
    if stop.env_steps is not None:
        limits.append(f"{stop.env_steps:,} env steps")
    if stop.wall_time_s is not None:
        limits.append(f"{stop.wall_time_s:g} s of training time")
    if stop.training_iterations is not None:
        limits.append(f"{stop.training_iterations} training iterations")
    if stop.env_steps is not None and stop.wall_time_s is None:
        kind = "equal env steps"
    elif stop.wall_time_s is not None and stop.env_steps is None:
        kind = (
            "equal wall time (trials share the CPUs, so an algorithm slower per step "
            "samples fewer steps in it, and a trial beside more others gets less CPU)"
        )
    elif stop.wall_time_s is not None:
        kind = "equal env steps or equal wall time, whichever ran out first"
    else:
        kind = (
            "equal training iterations, so neither env steps nor time are equal (an "
            "iteration samples a different number of steps per algorithm)"
        )
    text = f"Every trial had the same budget, {' or '.join(limits)}; that is {kind}."
    if stop.success_rate is not None:
        moves = "" if stop.moves_ratio is None else f" in at most {stop.moves_ratio:g}x its moves"
        if stop.actuations_ratio is not None:
            moves += f" with at most {stop.actuations_ratio:g}x its setting changes"
        text += (
            f" A trial stopped early once its evaluation solved {stop.success_rate:.0%} of the "
            f"rows the planner solves{moves} (the target)."
        )
    return text


def selected_runs(manifest: Manifest) -> tuple[dict[tuple[str, str], list[RunRecord]], list[str]]:
    """Runs per (dataset, algorithm) that the comparison uses, and notes on what was left
    out (see the module docstring)."""
    grouped: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    notes = []
    failed = [r for r in manifest.runs if r.metrics is None]
    if failed:
        notes.append(f"{len(failed)} run(s) without an evaluation (failed early) are left out")
    for run in manifest.runs:
        if run.metrics is not None:
            grouped[(run.dataset, run.algorithm)].append(run)
    chosen = {}
    for (dataset, algorithm), runs in sorted(grouped.items()):
        configurations: dict[str, list[RunRecord]] = defaultdict(list)
        for run in runs:
            configurations[run.configuration].append(run)
        best = max(configurations.values(), key=lambda rs: _mean_rank(rs, manifest.stop))
        if len(configurations) > 1:
            notes.append(
                f"{algorithm} on {dataset}: {len(configurations)} configurations tried; "
                f"the {len(best)} run(s) of the best one (by mean rank: meeting the "
                "target, then score) are compared"
            )
        chosen[(dataset, algorithm)] = best
    return chosen, notes


def _score(run: RunRecord) -> float:
    return float("-inf") if run.metrics is None else run.metrics.score


def _mean_rank(runs: Sequence[RunRecord], stop: StopSettings) -> float:
    """The mean over ``runs`` of their checkpoints' rank (the target first, then the
    score: :func:`rllib_project.ranking.checkpoint_rank`), as the runs' own best
    checkpoints were chosen."""
    ranks = [checkpoint_rank(stop, r.metrics) for r in runs if r.metrics is not None]
    return float(np.mean(ranks)) if ranks else float("-inf")


def _finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


def _statistics(
    runs_by_dataset: dict[str, list[RunRecord]], stop: StopSettings, seed: int
) -> AlgorithmStatistics:
    metrics = {}
    for index, metric in enumerate(METRICS):
        if metric.needs_target and stop.success_rate is None:
            continue
        strata = {
            d: _finite([metric.value(r, stop) for r in runs]) for d, runs in runs_by_dataset.items()
        }
        metrics[metric.key] = estimate(strata, seed=seed + index)
    runs = [r for rs in runs_by_dataset.values() for r in rs]
    return AlgorithmStatistics(
        n_runs=len(runs),
        datasets=sorted(runs_by_dataset),
        reached_target=None
        if stop.success_rate is None
        else sum(r.target_reached is not None for r in runs),
        metrics=metrics,
    )


def _values(
    runs_by_dataset: dict[str, list[RunRecord]], value: Callable[[RunRecord], float] = _score
) -> dict[str, np.ndarray]:
    return {d: _finite([value(r) for r in runs]) for d, runs in runs_by_dataset.items()}


def _has_interval(statistics: AlgorithmStatistics) -> bool:
    return any(e.iqm_ci is not None for e in statistics.metrics.values())


def compare(manifest: Manifest, dataset: str | None = None) -> Comparison:
    """The comparison of every algorithm of ``manifest`` (of one dataset, if named)."""
    stop = manifest.stop
    chosen, notes = selected_runs(manifest)
    if dataset is not None:
        chosen = {k: v for k, v in chosen.items() if k[0] == dataset}
    by_algorithm: dict[str, dict[str, list[RunRecord]]] = defaultdict(dict)
    for (name, algorithm), runs in chosen.items():
        by_algorithm[algorithm][name] = runs
    algorithms = sorted(by_algorithm)
    overall = {a: _statistics(by_algorithm[a], stop, seed=0) for a in algorithms}
    per_dataset: dict[str, dict[str, AlgorithmStatistics]] = defaultdict(dict)
    for (name, algorithm), runs in sorted(chosen.items()):
        per_dataset[name][algorithm] = _statistics({name: runs}, stop, seed=0)
    improvements = [
        PairImprovement(
            x, y, probability_of_improvement(_values(by_algorithm[x]), _values(by_algorithm[y]))
        )
        for x, y in itertools.combinations(algorithms, 2)
    ]
    profiles = {}
    for algorithm in algorithms:
        successes = _values(by_algorithm[algorithm], lambda r: _success(r, stop))
        if any(len(v) for v in successes.values()):
            profiles[algorithm] = performance_profile(successes, PROFILE_THRESHOLDS)
    if any(not _has_interval(s) for s in overall.values()):
        notes.append(
            "one run per dataset for some algorithm: no confidence interval "
            "(set seeds: N in the experiment file, N >= 5 recommended)"
        )
    return Comparison(
        budget=budget_statement(stop),
        overall=overall,
        per_dataset=dict(per_dataset),
        improvements=improvements,
        profiles=profiles,
        notes=notes,
    )


def _cell(metric: ComparedMetric, value: Estimate | None) -> str:
    if value is None or value.n_runs == 0 or not np.isfinite(value.iqm):
        return "-"
    text = metric.fmt.format(value.iqm)
    if value.iqm_ci is None:
        return f"{text} (no CI: {value.n_runs} run{'s' if value.n_runs > 1 else ''})"
    return f"{text} [{metric.fmt.format(value.iqm_ci.low)}, {metric.fmt.format(value.iqm_ci.high)}]"


def statistics_table(
    statistics: dict[str, AlgorithmStatistics], markdown: bool = False, reached: bool = True
) -> str:
    """One row per algorithm: runs, then each metric's IQM with its 95% interval."""
    shown = [m for m in METRICS if any(m.key in s.metrics for s in statistics.values())]
    headers = ["algorithm", "runs", *(m.label for m in shown)]
    if reached and any(s.reached_target is not None for s in statistics.values()):
        headers.append("reached target")
    body = []
    for name, stats in statistics.items():
        cells = [name, str(stats.n_runs), *(_cell(m, stats.metrics.get(m.key)) for m in shown)]
        if len(headers) > len(cells):
            cells.append(f"{stats.reached_target}/{stats.n_runs}")
        body.append(cells)
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])
    widths = [max(len(row[i]) for row in [headers, *body]) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, ["-" * w for w in widths], *body]
    )


def improvement_lines(comparison: Comparison) -> list[str]:
    lines = []
    for pair in comparison.improvements:
        value = pair.improvement
        interval = (
            "no CI" if value.ci is None else f"95% CI [{value.ci.low:.2f}, {value.ci.high:.2f}]"
        )
        lines.append(f"P({pair.algorithm} > {pair.over}) = {value.probability:.2f} ({interval})")
    return lines


def format_comparison(comparison: Comparison) -> str:
    """``evaluate``'s text for the comparison over runs."""
    lines = [
        "comparison over all runs (IQM [95% bootstrap CI]; every dataset pooled):",
        statistics_table(comparison.overall),
    ]
    if comparison.improvements:
        lines += ["", f"probability of improvement ({IMPROVEMENT_METRIC}, same dataset):"]
        lines += [f"  {line}" for line in improvement_lines(comparison)]
    lines += ["", f"budget: {comparison.budget}"]
    lines += [f"note: {note}" for note in comparison.notes]
    return "\n".join(lines)
