"""``rllib-project report``: a Markdown report of an experiment, with plots.

Writes ``<experiment>/report/``: ``report.md`` and PNGs made with matplotlib:

* the budget every trial had (equal env steps or equal wall time, said which);
* the comparison over all runs (:mod:`rllib_project.comparison`): a table of the IQM
  with its 95% bootstrap interval per algorithm, pooled over datasets and per dataset;
* ``learning_curves.png``: per algorithm, the IQM over runs of the evaluation success
  (of the rows the planner solves) with a shaded 95% band, against env steps and
  against training time;
* ``improvement.png``: the probability of improvement for each pair of algorithms,
  with its interval; ``performance_profile.png``: the fraction of runs reaching each
  success level, with its band;
* per dataset, the best policies beside the planner and baselines on every start row
  (:mod:`rllib_project.evaluate`) and example trajectories (temperature against move,
  the band shaded) in ``trajectories.png`` (``trajectories_<dataset>.png`` with
  several datasets).

The folder is assembled aside and moved into place, so a report is whole or absent.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from env.errors import InputError
from env.files import staged_folder
from rllib_project.checkpoints import LoadedPolicy, load_policies, read_manifest
from rllib_project.comparison import (
    IMPROVEMENT_METRIC,
    PROFILE_METRIC,
    Comparison,
    compare,
    improvement_lines,
    selected_runs,
    statistics_table,
)
from rllib_project.evaluate import EvaluationRow, evaluate_policies, format_table
from rllib_project.fitting import describe_dynamics
from rllib_project.manifest import MANIFEST_FILE, Manifest
from rllib_project.statistics import iqm_band
from rllib_project.trial_config import TrialConfig

REPORT_DIR = "report"
COLORS = {"PPO": "tab:blue", "SAC": "tab:orange", "DQN": "tab:green", "planner": "black"}
CURVE_POINTS = 80
"""Points of the common grid the runs' learning curves are read at."""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass(frozen=True)
class RunCurve:
    """One run's evaluations during training."""

    algorithm: str
    dataset: str
    trial_id: str
    steps: np.ndarray
    seconds: np.ndarray
    success: np.ndarray
    """Evaluation success over the rows the planner solves (planner-normalised)."""


def trial_curves(experiment_dir: Path) -> list[RunCurve]:
    """The learning curve of every trial folder (``params.json`` + ``progress.csv``)."""
    from ray.tune.result import EXPR_PARAM_FILE, EXPR_PROGRESS_FILE, TIME_TOTAL_S, TRIAL_ID

    from rllib_project.metrics import ENV_STEPS, evaluation_metric

    success = evaluation_metric("success_rate_solvable")
    curves = []
    for folder in sorted(p for p in experiment_dir.iterdir() if p.is_dir()):
        progress, params = folder / EXPR_PROGRESS_FILE, folder / EXPR_PARAM_FILE
        if not progress.exists() or not params.exists():
            continue
        trial = TrialConfig.from_tune(json.loads(params.read_text(encoding="utf-8")))
        table = pd.read_csv(progress)
        if table.empty or not all(c in table for c in (ENV_STEPS, TIME_TOTAL_S, success)):
            continue
        curves.append(
            RunCurve(
                trial.algorithm_name,
                trial.dataset,
                str(table[TRIAL_ID].iloc[0]),
                table[ENV_STEPS].to_numpy(float),
                table[TIME_TOTAL_S].to_numpy(float),
                table[success].fillna(0.0).to_numpy(float),
            )
        )
    return curves


def curve_on_grid(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A run's value at each grid point: its last evaluation at or before the point
    (its first evaluation before it began, its last after it ended)."""
    order = np.argsort(x, kind="stable")  # a resumed run repeats some iterations
    x, y = x[order], y[order]
    index = np.searchsorted(x, grid, side="right") - 1
    return y[np.clip(index, 0, len(y) - 1)]


def plot_learning_curves(curves: list[RunCurve], path: Path) -> bool:
    """IQM over runs (pooled over datasets, stratified by dataset) with a 95% band, by
    env steps and by training time; False if there is nothing to plot."""
    if not curves:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    for ax, axis, label in (
        (axes[0], "steps", "env steps sampled"),
        (axes[1], "seconds", "training wall time (s, Tune's time_total_s)"),
    ):
        end = max(float(getattr(c, axis)[-1]) for c in curves)
        grid = np.linspace(0.0, end, CURVE_POINTS)
        by_algorithm: dict[str, dict[str, list[np.ndarray]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for c in curves:
            by_algorithm[c.algorithm][c.dataset].append(
                curve_on_grid(getattr(c, axis), c.success, grid)
            )
        for algorithm, strata in sorted(by_algorithm.items()):
            band = iqm_band({d: np.array(runs) for d, runs in strata.items()})
            runs = sum(len(r) for r in strata.values())
            color = COLORS.get(algorithm)
            ax.plot(grid, band.center, color=color, label=f"{algorithm} (IQM of {runs} runs)")
            if band.low is not None and band.high is not None:
                ax.fill_between(grid, band.low, band.high, color=color, alpha=0.2, linewidth=0)
        ax.set_xlabel(label)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("evaluation success (of rows the planner solves)")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle("Learning curves: IQM over runs, shaded: 95% bootstrap band")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_improvement(comparison: Comparison, path: Path) -> bool:
    """P(X > Y) per pair of algorithms, with its interval; False without a pair."""
    pairs = comparison.improvements
    if not pairs:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 1.8 + 0.6 * len(pairs)))
    for row, pair in enumerate(pairs):
        value = pair.improvement
        ax.plot([value.probability], [row], "o", color=COLORS.get(pair.algorithm, "black"))
        if value.ci is not None:
            ax.hlines(row, value.ci.low, value.ci.high, color=COLORS.get(pair.algorithm, "black"))
    ax.axvline(0.5, color="gray", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(pairs)), [f"P({p.algorithm} > {p.over})" for p in pairs])
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel(f"probability of improvement ({IMPROVEMENT_METRIC}, same dataset); 95% CI")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_profiles(comparison: Comparison, path: Path) -> bool:
    """Fraction of runs with at least each success, with its band; False if empty."""
    if not comparison.profiles:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for algorithm, profile in comparison.profiles.items():
        color = COLORS.get(algorithm)
        ax.step(profile.thresholds, profile.fraction, where="post", color=color, label=algorithm)
        if profile.low is not None and profile.high is not None:
            ax.fill_between(
                profile.thresholds, profile.low, profile.high, step="post", color=color, alpha=0.2
            )
    ax.set_xlabel("success threshold (share of the rows the planner solves)")
    ax.set_ylabel("fraction of runs with success >= threshold")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title("Performance profile (shaded: 95% bootstrap band)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def example_rows(planner: EvaluationRow, count: int = 4) -> list[int]:
    """Start rows worth showing: outside the band, from the hardest down, both sides."""
    moves = planner.rollouts.moves_to_band
    start = planner.rollouts.temperatures[:, 0]
    order = np.argsort(-np.nan_to_num(moves, nan=-1.0), kind="stable")
    below = [int(i) for i in order if moves[i] > 0 and start[i] < start.mean()]
    above = [int(i) for i in order if moves[i] > 0 and start[i] >= start.mean()]
    chosen = below[: count - count // 2] + above[: count // 2]
    return chosen or [int(i) for i in order[:count]]


def plot_trajectories(
    rows: list[EvaluationRow], band: tuple[float, float], unit: str, path: Path
) -> None:
    plt = _pyplot()
    planner = next(r for r in rows if r.policy == "planner")
    picks = example_rows(planner)
    columns = 2
    lines = (len(picks) + 1) // columns
    fig, axes = plt.subplots(lines, columns, figsize=(10, 3.4 * lines), squeeze=False)
    shown = [r for r in rows if r.kind == "trained"] + [planner]
    for ax, index in zip(axes.flat, picks, strict=False):
        for row in shown:
            algorithm = row.policy.split()[0]
            temps = row.rollouts.temperatures[index]
            ax.plot(
                np.arange(len(temps)),
                temps,
                marker=".",
                label=row.policy,
                color=COLORS.get(algorithm),
                linestyle="--" if row.kind != "trained" else "-",
            )
        ax.axhspan(band[0], band[1], color="tab:green", alpha=0.15, label="band")
        ax.set_title(f"start {planner.rollouts.temperatures[index, 0]:.1f} {unit}")
        ax.set_xlabel("move")
        ax.set_ylabel(f"temperature {unit}".strip())
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(picks) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Example trajectories on the model (greedy policies, planner dashed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@dataclass(frozen=True)
class DatasetSection:
    """What the report shows of one dataset: its plant, policies and trajectories."""

    name: str
    policies: list[LoadedPolicy]
    rows: list[EvaluationRow]
    trajectories: str
    """File name of its trajectories PNG."""


def build_report(experiment_dir: Path) -> Path:
    """Write ``<experiment_dir>/report/report.md`` and its PNGs; return the .md path."""
    experiment_dir = experiment_dir.resolve()
    if not experiment_dir.is_dir():
        raise InputError(experiment_dir, "experiment folder not found")
    manifest = read_manifest(experiment_dir)
    comparison = compare(manifest)
    policies = load_policies(experiment_dir)
    sections = []
    for name in manifest.datasets:
        chosen = [p for p in policies if p.dataset == name]
        if chosen:
            png = "trajectories.png" if len(manifest.datasets) == 1 else f"trajectories_{name}.png"
            sections.append(DatasetSection(name, chosen, evaluate_policies(chosen), png))
    compared = {r.trial_id for runs in selected_runs(manifest)[0].values() for r in runs}
    curves = [c for c in trial_curves(experiment_dir) if c.trial_id in compared]
    target = experiment_dir / REPORT_DIR
    with staged_folder(target, project_owned=True) as staging:  # always ours
        plots = {
            "learning_curves.png": plot_learning_curves(curves, staging / "learning_curves.png"),
            "improvement.png": plot_improvement(comparison, staging / "improvement.png"),
            "performance_profile.png": plot_profiles(
                comparison, staging / "performance_profile.png"
            ),
        }
        for section in sections:
            plant = section.policies[0].plant
            plot_trajectories(
                section.rows, plant.band, plant.spec.state_unit, staging / section.trajectories
            )
        text = _markdown(experiment_dir, manifest, comparison, sections, plots)
        (staging / "report.md").write_text(text, encoding="utf-8")
    return target / "report.md"


def _markdown(
    experiment_dir: Path,
    manifest: Manifest,
    comparison: Comparison,
    sections: list[DatasetSection],
    plots: dict[str, bool],
) -> str:
    lines = [
        f"# Experiment report: {experiment_dir.name}",
        "",
        f"Datasets: {', '.join(f'`{name}`' for name in manifest.datasets)}; "
        f"algorithms: {', '.join(sorted(comparison.overall))}; "
        f"{len(manifest.runs)} runs (trials).",
        "",
        "## Budget",
        "",
        comparison.budget,
        "",
        *_comparison_markdown(comparison, plots),
    ]
    for section in sections:
        lines += _dataset_markdown(section, manifest)
    if manifest.trial_errors:
        lines += ["", "Trial errors:", *(f"- {e}" for e in manifest.trial_errors)]
    lines += ["", f"Manifest: `{experiment_dir / MANIFEST_FILE}`"]
    return "\n".join(lines) + "\n"


def _comparison_markdown(comparison: Comparison, plots: dict[str, bool]) -> list[str]:
    lines = [
        "## Comparison over all runs",
        "",
        "Interquartile mean (IQM: the mean of the middle half of the runs) with its 95% "
        "stratified bootstrap confidence interval; every dataset pooled. `success`: "
        "evaluation success over the rows the planner solves, of each run's best "
        "checkpoint; `moves/opt`: moves to band ÷ the planner's; `time to target`: "
        "training seconds (and env steps) until the evaluation first met the target, runs "
        "that never met it counted at the budget (see `rllib_project/comparison.py`).",
        "",
        statistics_table(comparison.overall, markdown=True),
    ]
    if len(comparison.per_dataset) > 1:
        for dataset, statistics in comparison.per_dataset.items():
            lines += ["", f"On `{dataset}`:", "", statistics_table(statistics, markdown=True)]
    if comparison.notes:
        lines += ["", *(f"- {note}" for note in comparison.notes)]
    if plots["learning_curves.png"]:
        lines += [
            "",
            "## Learning curves",
            "",
            "IQM over runs of the evaluation success, shaded: 95% bootstrap band. A run that "
            "ended early (target met, or stopped) counts with its last evaluation after it "
            "ended.",
            "",
            "![learning curves](learning_curves.png)",
        ]
    if plots["improvement.png"]:
        lines += [
            "",
            "## Probability of improvement",
            "",
            "The chance that a run of the first algorithm scores higher than a run of the "
            "second on the same dataset (ties count half), averaged over datasets; 0.5 = "
            "no difference.",
            "",
            *(f"- {line}" for line in improvement_lines(comparison)),
            "",
            "![probability of improvement](improvement.png)",
        ]
    if plots["performance_profile.png"]:
        lines += [
            "",
            "## Performance profile",
            "",
            f"Fraction of runs whose `{PROFILE_METRIC}` is at least each threshold "
            "(averaged over datasets).",
            "",
            "![performance profile](performance_profile.png)",
        ]
    return lines


def _dataset_markdown(section: DatasetSection, manifest: Manifest) -> list[str]:
    plant = section.policies[0].plant
    model = plant.model
    cv = ", ".join(
        f"{s.family}{'' if s.kind is None else ' ' + s.kind} {s.rmse:.2f}" for s in model.cv_scores
    )
    low, high = plant.band
    lines = [
        "",
        f"## Dataset `{section.name}`",
        "",
        f"- data: `{plant.spec.csv_path}` ({plant.data.n_rows if plant.data else '?'} rows,"
        f" sha256 `{model.csv_sha256[:12]}…`)",
        f"- state `{plant.spec.state}`, band [{low:g}, {high:g}] {plant.spec.state_unit};"
        f" controls: {', '.join(plant.spec.control_names)}",
        f"- process model: {model.family} ({len(model.coef_members)}-member ensemble);"
        f" CV RMSE per family: {cv}",
        *([f"- {describe_dynamics(model.dynamics)}"] if model.dynamics is not None else []),
        f"- horizon {plant.settings.horizon} moves; every row of the CSV is a start state",
        "",
        "Best policy per algorithm (greedy, every start row):",
        "",
        format_table(section.rows, markdown=True),
        "",
        "`moves/opt`: total moves to band ÷ the exact planner's, over rows both solve "
        "(1.00 = optimal). `success`: reached the band and ended inside it. "
        "`actuations`: moves that change a setting, per start; `act/opt`: their total ÷ "
        "the planner's.",
        "",
    ]
    for entry in manifest.entries(section.name).values():
        lines.append(
            f"- **{entry.algorithm}** ({entry.action_mode}): seed {entry.config.seed}, "
            f"iteration {entry.iteration}, {entry.env_steps} env steps, `{entry.checkpoint}`"
        )
    lines += ["", f"![trajectories]({section.trajectories})"]
    return lines
