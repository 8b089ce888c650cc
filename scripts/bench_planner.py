"""Benchmark: the fewest-moves planner (the yardstick) on generated plants of every shape.

How to run::

    .venv/bin/python scripts/bench_planner.py [--rows 500] [--sample 20] [--cap 30]
        [--controls 2 4 6 8] [--depths 2 8 20] [--families poly rbf]

For every shape, k controls x mean planner depth (``env.synthetic``: non-linear, with
interactions and noise, seeded) x model family (``poly``: the spec's candidates are
linear/quadratic/cubic and cross-validation picks one; ``rbf``: ``candidates: [rbf]``),
it prints: rows, rows the planner solves within the horizon, the share proven minimal,
mean and max moves, seconds for all rows (discrete, and the continuous counterpart),
and the baseline: the exhaustive lattice planner this project used before
(``scripts/planner_baseline.py``), run in this process on ``--sample`` rows drawn from
the same rows, stopped after ``--cap`` seconds per shape, its time extrapolated to all
rows (rows done x mean time per row; ``>`` marks a lower bound when the cap stopped it
inside its first row). ``agree`` counts sampled rows where both planners claim a proven
minimum and report the same move count.

Targets: planner seconds <= 5 for 500 rows at every shape, >= 95% of rows proven
minimal. The machine may be shared: the ratio to the baseline is the robust figure.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import env
from env.planner import plan_rows
from env.synthetic import SyntheticSettings, make_synthetic_plant

sys.path.insert(0, str(Path(__file__).resolve().parent))
import planner_baseline

FAMILIES = {"poly": ("linear", "quadratic", "cubic"), "rbf": ("rbf",)}


class _Timeout(Exception):
    pass


@dataclass(frozen=True)
class BaselineTiming:
    rows_done: int
    seconds: float
    agree: int
    compared: int
    stopped: bool

    def extrapolated(self, rows: int) -> str:
        if self.rows_done == 0:
            return f">{self.seconds:.0f}"
        estimate = self.seconds / self.rows_done * rows
        return f"{'~' if self.stopped or self.rows_done < rows else ''}{estimate:.1f}"


def _on_alarm(signum: int, frame: object) -> None:
    raise _Timeout


def time_baseline(
    plant: env.Plant, rows: np.ndarray, new_moves: dict[int, tuple[int | None, bool]], cap: float
) -> BaselineTiming:
    """Run the old planner row by row until done or ``cap`` seconds have passed."""
    done = agree = compared = 0
    start = time.perf_counter()
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, cap)
    try:
        for row in rows:
            plan = planner_baseline.plan_discrete(
                plant, plant.data.controls[row], float(plant.data.state[row])
            )
            done += 1
            moves, exact = new_moves[int(row)]
            if plan.exact and exact:
                compared += 1
                agree += plan.moves == moves
    except _Timeout:
        pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    elapsed = time.perf_counter() - start
    return BaselineTiming(done, elapsed, agree, compared, done < len(rows))


def bench_shape(
    folder: Path, k: int, depth: float, family: str, args: argparse.Namespace
) -> list[str]:
    settings = SyntheticSettings(
        n_controls=k, mean_depth=depth, rows=args.rows, seed=args.seed, candidates=FAMILIES[family]
    )
    spec = make_synthetic_plant(settings).write(folder / f"k{k}_d{depth:g}_{family}")
    plant = env.load_plant(spec)
    rows = plant.start_indices
    temps, controls = plant.data.state[rows], plant.data.controls[rows]
    start = time.perf_counter()
    plans = plan_rows(plant, temps, controls, "discrete")
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    plan_rows(plant, temps, controls, "continuous")
    continuous = time.perf_counter() - start
    moves = np.array([np.nan if p.moves is None else p.moves for p in plans])
    solved = ~np.isnan(moves)
    exact = np.array([p.exact for p in plans])
    by_row = {int(r): (p.moves, p.exact) for r, p in zip(rows, plans, strict=True)}
    sample = np.random.default_rng(args.seed).choice(rows, min(args.sample, len(rows)), False)
    baseline = time_baseline(plant, sample, by_row, args.cap)
    old = baseline.extrapolated(len(rows))
    if baseline.rows_done:
        speedup = baseline.seconds / baseline.rows_done * len(rows) / seconds
        ratio = f"{speedup:.1f}x" if speedup < 10 else f"{speedup:.0f}x"
    else:
        ratio = f">{baseline.seconds / seconds:.0f}x"
    return [
        f"{k}",
        f"{depth:g}",
        f"{family}:{plant.model.family}",
        f"{len(rows)}",
        f"{solved.sum()}",
        f"{exact.mean():.1%}",
        f"{np.nanmean(moves):.1f}" if solved.any() else "-",
        f"{int(np.nanmax(moves))}" if solved.any() else "-",
        f"{seconds:.2f}",
        f"{continuous:.2f}",
        f"{old}",
        f"{baseline.rows_done}/{len(sample)}",
        ratio,
        f"{baseline.agree}/{baseline.compared}",
    ]


HEADER = [
    "k", "depth", "model", "rows", "solvable", "exact", "mean", "max",
    "s", "s cont", "old s", "old rows", "speed-up", "agree",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--sample", type=int, default=20, help="rows given to the baseline")
    parser.add_argument("--cap", type=float, default=30.0, help="baseline seconds per shape")
    parser.add_argument("--controls", type=int, nargs="+", default=[2, 4, 6, 8])
    parser.add_argument("--depths", type=float, nargs="+", default=[2, 8, 20])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    widths = [2, 5, 13, 5, 8, 6, 5, 4, 6, 6, 7, 8, 8, 6]
    print("  ".join(h.rjust(w) for h, w in zip(HEADER, widths, strict=True)), flush=True)
    worst_seconds, worst_exact = 0.0, 1.0
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families:
            for k in args.controls:
                for depth in args.depths:
                    cells = bench_shape(Path(tmp), k, depth, family, args)
                    worst_seconds = max(worst_seconds, float(cells[8]))
                    worst_exact = min(worst_exact, float(cells[5].rstrip("%")) / 100)
                    print("  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)),
                          flush=True)  # fmt: skip
    print(
        f"\nslowest shape: {worst_seconds:.2f} s for {args.rows} rows (target <= 5 s: "
        f"{'met' if worst_seconds <= 5 else 'NOT met'}); lowest share proven minimal: "
        f"{worst_exact:.1%} (target >= 95%: {'met' if worst_exact >= 0.95 else 'NOT met'})"
    )
    print(
        "old s: the previous exhaustive planner on the sampled rows, extrapolated to all rows "
        "(~: extrapolated, >: lower bound); speed-up = old s / s."
    )


if __name__ == "__main__":
    main()
