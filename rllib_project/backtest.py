"""``rllib-project backtest SOURCE``: a policy replayed against the time-ordered log.

The log is the one of the policy's own spec (``time:`` set). Two questions, from every
logged row that can start an episode and has ``H`` (the spec's horizon) later rows in
its segment:

* **advice vs the operator**: at row ``r`` the state is the reading of ``r`` with the
  settings of row ``r - 1`` (and those in flight); the operator's decision is row
  ``r``'s settings. Per control, the policy's first move and the operator's are each
  "decrease", "keep" or "raise"; they *agree* when the directions are the same. Also
  given: agreement on the rows where the operator did change something (most logged
  rows are "keep" for both, which flatters the overall figure);
* **time in band**: the share of the ``H`` logged readings after row ``r`` inside the
  band, against the share of the ``H`` readings simulated on the fitted model (with
  its lag and dead time, shifted by the disturbance the log's observer estimates at
  the row, :mod:`env.observer`) when the policy acts from the same state. Windows of
  neighbouring rows overlap: every row counts as a start, as in ``evaluate``.

Writes ``backtest.md`` and ``backtest.png`` (the logged readings with the policy's
simulated paths from non-overlapping windows) into a folder, assembled aside and moved
into place; ``--json`` prints the figures (keys :data:`JSON_KEYS`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from env.baselines import FunctionPolicy
from env.errors import InputError
from env.evaluation import Rollouts, rollout, start_pending, start_states
from env.files import check_output_folder, json_safe, staged_folder
from env.plant import Plant
from rllib_project.checkpoints import LoadedPolicy, is_experiment, load_best_policy, resolve_source

BACKTEST_DIR = "backtest"
MARKDOWN_FILE = "backtest.md"
PLOT_FILE = "backtest.png"
DIRECTIONS = ("decrease", "keep", "raise")
JSON_KEYS = ("rows", "agreement", "time_in_band_log", "time_in_band_policy")
"""Keys ``--json`` always has (with ``policy``, ``horizon``, ``folder``, ...)."""


@dataclass(frozen=True)
class Agreement:
    """How often the policy's first move matches the operator's next decision."""

    all_controls: float
    """Rows where every control's direction agrees."""
    per_control: dict[str, float]
    """Per control: rows where its direction agrees."""
    operator_moved_rows: int
    """Rows where the operator changed at least one setting ..."""
    when_operator_moved: float
    """... and on those, the share where every direction agrees (NaN if none)."""


@dataclass(frozen=True)
class Backtest:
    """The figures of one backtest (what ``--json`` prints)."""

    policy: str
    source: str
    spec: str
    horizon: int
    rows: int
    """Logged rows compared (starts with ``horizon`` later rows in their segment)."""
    agreement: Agreement
    time_in_band_log: float
    time_in_band_policy: float
    folder: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def backtest_rows(plant: Plant, horizon: int) -> np.ndarray:
    """Start rows (data indices) with ``horizon`` later rows in their own segment."""
    data = plant.rows
    if not data.is_time_series or data.segment is None:
        raise InputError(
            plant.spec.source, "backtest needs a time-ordered log: set `time:` in the spec"
        )
    starts = plant.start_indices
    starts = starts[starts + horizon < data.n_rows]
    same = data.segment[starts + horizon] == data.segment[starts]
    rows = starts[same]
    if not len(rows):
        raise InputError(
            plant.spec.source, f"no logged row has {horizon} later samples in its segment"
        )
    return rows


def directions(delta: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """-1 / 0 / +1 per control of setting changes (changes below a millionth of a step
    are round-off, not a move)."""
    return np.where(np.abs(delta) <= 1e-6 * steps, 0, np.sign(delta)).astype(np.int64)


def agreement_of(operator: np.ndarray, policy: np.ndarray, names: list[str]) -> Agreement:
    same = operator == policy
    moved = (operator != 0).any(axis=1)
    return Agreement(
        all_controls=float(same.all(axis=1).mean()),
        per_control={n: float(same[:, i].mean()) for i, n in enumerate(names)},
        operator_moved_rows=int(moved.sum()),
        when_operator_moved=float(same[moved].all(axis=1).mean()) if moved.any() else float("nan"),
    )


def log_windows(plant: Plant, rows: np.ndarray, horizon: int) -> np.ndarray:
    """(n, horizon) logged readings after each start row."""
    return plant.rows.state[rows[:, None] + np.arange(1, horizon + 1)[None, :]]


def simulate(policy: LoadedPolicy, rows: np.ndarray, horizon: int) -> Rollouts:
    """The policy from each start row on the model, shifted by the disturbance the log's
    readings up to the row estimate (:mod:`env.observer`; 0 where it is off), as
    ``recommend --row`` advises that row."""
    plant = policy.plant
    temperatures, controls = start_states(plant, rows)
    return rollout(
        plant,
        policy.codec,
        FunctionPolicy(policy.name, policy.act),
        temperatures,
        controls,
        horizon=horizon,
        pending=start_pending(plant, rows),
        offsets=plant.start_observer(rows).disturbance,
    )


def default_folder(source: Path) -> Path:
    """``<experiment>/backtest``; for a checkpoint or export ``./backtest_<name>`` (a
    policy's own folder is left as it was exported)."""
    return source / BACKTEST_DIR if is_experiment(source) else Path(f"{BACKTEST_DIR}_{source.name}")


def run_backtest(
    source: str | Path, folder: Path | None = None, dataset: str | None = None
) -> Backtest:
    """Backtest the policy ``source`` names against its log; write the Markdown and plot."""
    path = resolve_source(source)
    if not path.exists():
        raise InputError(path, "not found: give an experiment, checkpoint or export folder")
    target = (folder or default_folder(path)).resolve()
    check_output_folder(target, produces=(PLOT_FILE, MARKDOWN_FILE))  # before the work
    policy = load_best_policy(path, dataset)
    plant = policy.plant
    horizon = plant.settings.horizon
    rows = backtest_rows(plant, horizon)
    print(f"backtest: {policy.name} on {len(rows)} logged rows, {horizon} samples ahead ...",
          file=sys.stderr, flush=True)  # fmt: skip
    simulated = simulate(policy, rows, horizon)
    steps = plant.steps
    operator = directions(plant.rows.controls[rows] - plant.start_controls(rows), steps)
    advised = directions(simulated.controls[:, 1] - simulated.controls[:, 0], steps)
    agreement = agreement_of(operator, advised, list(plant.spec.control_names))
    logged = log_windows(plant, rows, horizon)
    result = Backtest(
        policy=policy.name,
        source=str(path),
        spec=str(plant.spec.source),
        horizon=horizon,
        rows=len(rows),
        agreement=agreement,
        time_in_band_log=float(plant.in_band(logged).mean()),
        time_in_band_policy=float(simulated.time_in_band.mean()),
        folder=str(target),
    )
    with staged_folder(target) as staging:
        plot(plant, rows, simulated, staging / PLOT_FILE)
        (staging / MARKDOWN_FILE).write_text(markdown(result, plant), encoding="utf-8")
    return result


def plot(plant: Plant, rows: np.ndarray, simulated: Rollouts, path: Path) -> None:
    """Logged readings against time (sample index) with the band, and the policy's
    simulated paths from starts at least one horizon apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = plant.rows
    horizon = simulated.temperatures.shape[1] - 1
    fig, ax = plt.subplots(figsize=(11, 4))
    low, high = plant.band
    ax.axhspan(low, high, color="tab:green", alpha=0.2, label="band")
    ax.plot(np.arange(data.n_rows), data.state, color="gray", linewidth=0.8, label="log")
    shown, last = 0, -horizon
    for i, r in enumerate(rows):
        if r - last < horizon:
            continue
        last = int(r)
        label = "policy (simulated from the logged state)" if not shown else None
        ax.plot(r + np.arange(horizon + 1), simulated.temperatures[i], color="tab:blue",
                linewidth=1.0, label=label)  # fmt: skip
        shown += 1
    unit = f" [{plant.spec.state_unit}]" if plant.spec.state_unit else ""
    ax.set_xlabel("logged row (kept rows, in time order)")
    ax.set_ylabel(f"{plant.spec.state}{unit}")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(result: Backtest, plant: Plant) -> str:
    a = result.agreement
    lines = [
        f"# Backtest: {result.policy}",
        "",
        f"Log: `{result.spec}` ({plant.rows.n_rows} kept rows). From each of {result.rows} "
        f"logged rows with {result.horizon} later samples in their segment: the policy's "
        "first move against the operator's next decision, and the time in band over the "
        f"next {result.horizon} samples, logged vs simulated on the fitted model with the "
        "policy acting from the same state.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| rows compared | {result.rows} |",
        f"| advice agrees with the operator (every control) | {a.all_controls:.1%} |",
        *(f"| ... on `{name}` | {share:.1%} |" for name, share in a.per_control.items()),
        f"| rows where the operator changed a setting | {a.operator_moved_rows} |",
        f"| ... agreement on those rows | {a.when_operator_moved:.1%} |",
        f"| time in band, log | {result.time_in_band_log:.1%} |",
        f"| time in band, under the policy (simulated) | {result.time_in_band_policy:.1%} |",
        "",
        f"![log and policy]({PLOT_FILE})",
        "",
        "The simulated time in band is a prediction of the fitted model (see "
        "`rllib-project fit`): it is as good as the model's free-run error.",
        "",
    ]
    return "\n".join(lines)


def format_backtest(result: Backtest) -> str:
    a = result.agreement
    return "\n".join(
        [
            f"rows compared         {result.rows} ({result.horizon} samples ahead)",
            f"agreement             {a.all_controls:.1%} of rows (every control); "
            + ", ".join(f"{n} {s:.1%}" for n, s in a.per_control.items()),
            f"operator moved        {a.operator_moved_rows} rows; agreement there "
            f"{a.when_operator_moved:.1%}",
            f"time in band, log     {result.time_in_band_log:.1%}",
            f"time in band, policy  {result.time_in_band_policy:.1%} (simulated on the model)",
            f"written               {Path(result.folder) / MARKDOWN_FILE}, {PLOT_FILE}",
        ]
    )


def format_json(result: Backtest) -> str:
    return json.dumps(json_safe(result.to_dict()), indent=1, allow_nan=False, ensure_ascii=False)
