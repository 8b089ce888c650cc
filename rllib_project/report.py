"""``rllib-project report``: a Markdown report of an experiment, with plots.

Writes ``<experiment>/report/``: ``report.md`` (comparison table from
:mod:`rllib_project.evaluate`, best checkpoints, the process model), and PNGs made
with matplotlib: learning curves (evaluation success and return against env steps, a
line per trial, coloured by algorithm) and example trajectories (temperature against
move with the band shaded, for a few start rows, each trained policy and the planner).
The folder is assembled aside and moved into place, so a report is whole or absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from env.errors import InputError
from env.files import staged_folder
from env.plant import Plant
from rllib_project.checkpoints import load_policies, read_manifest
from rllib_project.evaluate import EvaluationRow, evaluate_policies, format_table
from rllib_project.fitting import describe_dynamics
from rllib_project.manifest import MANIFEST_FILE, Manifest
from rllib_project.trial_config import TrialConfig

REPORT_DIR = "report"
COLORS = {"PPO": "tab:blue", "SAC": "tab:orange", "DQN": "tab:green", "planner": "black"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def trial_progress(experiment_dir: Path) -> list[tuple[str, str, pd.DataFrame]]:
    """(algorithm, trial folder name, progress table) of every trial."""
    from ray.tune.result import EXPR_PARAM_FILE, EXPR_PROGRESS_FILE

    from rllib_project.metrics import ENV_STEPS, evaluation_metric

    needed = (ENV_STEPS, evaluation_metric("success_rate"), evaluation_metric("mean_return"))
    trials = []
    for folder in sorted(p for p in experiment_dir.iterdir() if p.is_dir()):
        progress, params = folder / EXPR_PROGRESS_FILE, folder / EXPR_PARAM_FILE
        if not progress.exists() or not params.exists():
            continue
        trial = TrialConfig.from_tune(json.loads(params.read_text(encoding="utf-8")))
        table = pd.read_csv(progress)
        if all(column in table for column in needed):
            curves = table[list(needed)].set_axis(["steps", "success", "return"], axis=1)
            trials.append((trial.algorithm_name, folder.name, curves))
    return trials


def plot_learning_curves(trials: list[tuple[str, str, pd.DataFrame]], path: Path) -> None:
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    labelled = set()
    for algorithm, _trial, curves in trials:
        label = algorithm if algorithm not in labelled else None
        labelled.add(algorithm)
        color = COLORS.get(algorithm)
        top.plot(curves["steps"], curves["success"], color=color, label=label)
        bottom.plot(curves["steps"], curves["return"], color=color)
    top.set_ylabel("evaluation success rate")
    top.set_ylim(-0.02, 1.02)
    top.legend(loc="lower right")
    top.grid(alpha=0.3)
    bottom.set_ylabel("evaluation mean return")
    bottom.set_xlabel("env steps sampled")
    bottom.grid(alpha=0.3)
    fig.suptitle("Greedy evaluation during training (one line per trial)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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


def build_report(experiment_dir: Path) -> Path:
    """Write ``<experiment_dir>/report/report.md`` and its PNGs; return the .md path."""
    experiment_dir = experiment_dir.resolve()
    if not experiment_dir.is_dir():
        raise InputError(experiment_dir, "experiment folder not found")
    manifest = read_manifest(experiment_dir)
    policies = load_policies(experiment_dir)
    rows = evaluate_policies(policies)
    plant = policies[0].plant
    trials = trial_progress(experiment_dir)
    target = experiment_dir / REPORT_DIR
    with staged_folder(target) as staging:
        if trials:
            plot_learning_curves(trials, staging / "learning_curves.png")
        plot_trajectories(rows, plant.band, plant.spec.state_unit, staging / "trajectories.png")
        (staging / "report.md").write_text(
            _markdown(experiment_dir, manifest, rows, plant, bool(trials)), encoding="utf-8"
        )
    return target / "report.md"


def _markdown(
    experiment_dir: Path,
    manifest: Manifest,
    rows: list[EvaluationRow],
    plant: Plant,
    has_curves: bool,
) -> str:
    model = plant.model
    cv = ", ".join(
        f"{s.family}{'' if s.kind is None else ' ' + s.kind} {s.rmse:.2f}" for s in model.cv_scores
    )
    low, high = plant.band
    lines = [
        f"# Experiment report: {experiment_dir.name}",
        "",
        f"- dataset: `{plant.spec.csv_path}` ({plant.data.n_rows if plant.data else '?'} rows,"
        f" sha256 `{model.csv_sha256[:12]}…`)",
        f"- state `{plant.spec.state}`, band [{low:g}, {high:g}] {plant.spec.state_unit};"
        f" controls: {', '.join(plant.spec.control_names)}",
        f"- process model: {model.family} ({len(model.coef_members)}-member ensemble);"
        f" CV RMSE per family: {cv}",
        *([f"- {describe_dynamics(model.dynamics)}"] if model.dynamics is not None else []),
        f"- horizon {plant.settings.horizon} moves; every row of the CSV is a start state",
        "",
        "## Comparison (greedy, every start row)",
        "",
        format_table(rows, markdown=True),
        "",
        "`moves/opt`: total moves to band ÷ the exact planner's, over rows both solve "
        "(1.00 = optimal). `success`: reached the band and ended inside it. "
        "`actuations`: moves that change a setting, per start; `act/opt`: their total ÷ "
        "the planner's.",
        "",
        "## Best checkpoints",
        "",
    ]
    for name, entry in manifest.best.items():
        lines.append(
            f"- **{name}** ({entry.action_mode}): iteration {entry.iteration}, "
            f"{entry.env_steps} env steps, `{entry.checkpoint}`"
        )
    if manifest.trial_errors:
        lines += ["", "Trial errors:", *(f"- {e}" for e in manifest.trial_errors)]
    if has_curves:
        lines += ["", "## Learning curves", "", "![learning curves](learning_curves.png)"]
    lines += ["", "## Example trajectories", "", "![trajectories](trajectories.png)", ""]
    lines.append(f"Manifest: `{experiment_dir / MANIFEST_FILE}`")
    return "\n".join(lines) + "\n"
