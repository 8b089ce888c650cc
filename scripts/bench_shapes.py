"""Benchmark: the whole workbench on plants of every shape, as a user runs it.

How to run::

    .venv/bin/python scripts/bench_shapes.py [--controls 2 4 6 8] [--depths 2 8 20]
        [--budget-s 240] [--rows 500] [--out results/bench_shapes]

For every shape, k controls x mean planner depth (a plant from ``env.synthetic``:
non-linear, with interactions and measurement noise, 500 rows, seed 0), it runs
``rllib-project tune`` as a user would: ``tune_configs/compare.yaml``'s algorithms,
stop rule and evaluation (every row), on the generated dataset, with the budget
``--budget-s`` of wall time per trial; the three trials run together on this machine's
CPUs. Each run is a fresh process with its own Ray instance. Printed per shape, from
the run's own files:

* ``depth``: the planner's mean fewest moves; ``plan s``: seconds to plan every row
  (discrete moves); ``exact``: share of rows proven minimal;
* ``setup s``: the slowest trial's set-up (plant, yardstick, algorithm; loading the
  code before it is in ``load s``);
* per algorithm, the best checkpoint's success over all rows and moves/opt (total
  moves ÷ the planner's), as ``best.json`` lists them;
* ``run s``: wall time of the whole command, against ``budget + 30 s``.

A second table scores the same checkpoints as the advice built on them does, with its
"land" rule (``env.land_in_one_move``: on these plants without lag a move that lands
in the band on the model replaces a policy's move that would not), which the trials'
score leaves out (:mod:`rllib_project.scoring`): what an operator is advised.

Targets (2 cores): every algorithm >= 98% success and <= 1.10x the planner's moves on
every shape with k <= 6; k = 8 reported; set-up <= 5 s; run <= budget + 30 s. The
machine may be shared: the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from env.synthetic import SyntheticSettings, make_synthetic_plant
from env.yardstick import YARDSTICK_FILE, load_yardstick
from rllib_project.preparation import DATASETS_DIR

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "tune_configs"
ALGORITHMS = ("PPO", "SAC", "DQN")


@dataclass(frozen=True)
class ShapeResult:
    k: int
    depth_target: float
    depth: float
    plan_seconds: float
    exact: float
    load_seconds: float
    setup_seconds: float
    run_seconds: float
    algorithms: dict[str, tuple[float, float]]
    """Algorithm -> (success over all rows, moves/opt) of its best checkpoint."""
    errors: list[str]
    advised: dict[str, tuple[float, float]]
    """The same for the advice built on each checkpoint (:func:`advised_figures`)."""


def advised_figures(experiment_dir: Path) -> dict[str, tuple[float, float]]:
    """Algorithm -> (success, moves/opt) over every row of the advice built on each
    best checkpoint: as scored, plus the advice's "land" rule."""
    from env.baselines import FunctionPolicy
    from rllib_project.checkpoints import load_policies
    from rllib_project.scoring import PlantScorer

    figures = {}
    for policy in load_policies(experiment_dir):
        scorer = PlantScorer(policy.plant, policy.action_mode, policy.plant.start_indices)
        metrics = scorer.advised(FunctionPolicy(policy.name, policy.act))
        figures[policy.algorithm] = (metrics.success_rate, metrics.moves_ratio)
    return figures


def experiment_file(folder: Path, spec: Path, budget_s: float) -> Path:
    """compare.yaml's settings on the generated dataset, with the budget given."""
    data = yaml.safe_load((CONFIGS / "compare.yaml").read_text(encoding="utf-8"))
    data.update(
        name="shape",
        dataset=str(spec),
        algorithms={name: str(CONFIGS / f"{name.lower()}.yaml") for name in ALGORITHMS},
        storage_path=str(folder / "results"),
    )
    data["stop"]["wall_time_s"] = budget_s
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def trial_clock(experiment_dir: Path) -> tuple[float, float]:
    """The slowest (loading, set-up) seconds over the run's trials."""
    load, setup = 0.0, 0.0
    for result_file in experiment_dir.glob("*/result.json"):
        lines = [line for line in result_file.read_text().splitlines() if line.strip()]
        if lines:
            clock = json.loads(lines[0]).get("trial", {})
            load = max(load, float(clock.get("start_s", 0.0)))
            setup = max(setup, float(clock.get("setup_s", 0.0)))
    return load, setup


def run_shape(k: int, depth: float, args: argparse.Namespace) -> ShapeResult:
    folder = args.out / f"k{k}_d{depth:g}"
    folder.mkdir(parents=True, exist_ok=True)
    spec = make_synthetic_plant(
        SyntheticSettings(n_controls=k, mean_depth=depth, rows=args.rows, seed=0)
    ).write(folder / "plant")
    experiment = experiment_file(folder, spec, args.budget_s)
    began = time.perf_counter()
    with open(folder / "tune.log", "w") as log:
        done = subprocess.run(
            [sys.executable, "-m", "rllib_project", "tune", str(experiment)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    run_seconds = time.perf_counter() - began
    runs = sorted((folder / "results").iterdir())
    experiment_dir = runs[-1]
    (yardstick_file,) = (experiment_dir / DATASETS_DIR).glob(f"*/{YARDSTICK_FILE}")
    yardstick = load_yardstick(yardstick_file)
    summary = yardstick.summary()
    manifest_path = experiment_dir / "best.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    best = {
        entry["algorithm"]: (
            entry["metrics"]["success_rate"],
            entry["metrics"]["moves_ratio"] or float("nan"),
        )
        for entry in manifest.get("best", {}).values()
    }
    errors = list(manifest.get("trial_errors", []))
    if done.returncode != 0:
        errors.append(f"tune exited {done.returncode} (see {folder / 'tune.log'})")
    load, setup = trial_clock(experiment_dir)
    return ShapeResult(
        k=k,
        depth_target=depth,
        depth=summary.mean_moves or 0.0,
        plan_seconds=summary.seconds,
        exact=summary.exact / summary.rows,
        load_seconds=load,
        setup_seconds=setup,
        run_seconds=run_seconds,
        algorithms=best,
        errors=errors,
        advised=advised_figures(experiment_dir) if manifest else {},
    )


def header() -> str:
    algos = " ".join(f"{name + ' succ  x opt':>15}" for name in ALGORITHMS)
    return f" k depth  plan s  exact  load s setup s {algos}   run s"


def row(r: ShapeResult, advised: bool = False) -> str:
    cells = []
    figures = r.advised if advised else r.algorithms
    for name in ALGORITHMS:
        success, ratio = figures.get(name, (float("nan"), float("nan")))
        cells.append(f"{success:>9.1%} {ratio:>5.2f}")
    return (
        f"{r.k:>2} {r.depth:>5.1f} {r.plan_seconds:>7.2f} {r.exact:>6.1%} "
        f"{r.load_seconds:>7.1f} {r.setup_seconds:>7.1f} {' '.join(cells)} {r.run_seconds:>7.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--controls", type=int, nargs="+", default=[2, 4, 6, 8])
    parser.add_argument("--depths", type=float, nargs="+", default=[2, 8, 20])
    parser.add_argument("--budget-s", type=float, default=240.0)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench_shapes")
    args = parser.parse_args()
    args.out = args.out.resolve()
    load_before = os.getloadavg()
    print(f"load average at start: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    print(header(), flush=True)
    results = []
    for k in args.controls:
        for depth in args.depths:
            result = run_shape(k, depth, args)
            results.append(result)
            print(row(result), flush=True)
            for error in result.errors:
                print(f"   error: {error}", flush=True)
    load_after = os.getloadavg()
    print(
        f"\nbudget {args.budget_s:g} s of wall time per trial, 3 trials at once on "
        f"{os.cpu_count()} CPUs; load average at the end: {load_after[0]:.2f} "
        f"{load_after[1]:.2f} {load_after[2]:.2f}"
    )
    print(header())
    print("\n".join(row(r) for r in results))
    print("\nthe advice built on the same checkpoints (with its land rule):")
    print(header())
    print("\n".join(row(r, advised=True) for r in results))
    worst = max(r.run_seconds for r in results)
    print(f"longest run: {worst:.0f} s (target: budget + 30 = {args.budget_s + 30:.0f} s)")


if __name__ == "__main__":
    main()
