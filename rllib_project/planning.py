"""``rllib-project plan SPEC``: the fewest-moves yardstick over every row of a dataset.

Prints how many rows there are, how many the planner can bring into the band within
the horizon, how many of those answers are proven minimal, the mean and largest move
count, and how long planning took. Progress lines go to stderr, so ``--json`` output on
stdout stays machine-readable (in text mode they go to stdout). The spec is checked
before the first progress line, so a bad spec ends with exactly one line on stderr.
Ray is never imported.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from env.files import refuse_to_overwrite_inputs
from env.plant import load_plant
from env.spec import load_spec
from env.yardstick import PLANNING_MODES, YardstickSummary, compute_yardstick, save_yardstick


def _progress(message: str, as_json: bool) -> None:
    print(message, file=sys.stderr if as_json else sys.stdout, flush=True)


def format_summary(summary: YardstickSummary) -> str:
    share = summary.exact / summary.rows if summary.rows else 0.0
    mean = "-" if summary.mean_moves is None else f"{summary.mean_moves:.2f}"
    largest = "-" if summary.max_moves is None else str(summary.max_moves)
    actuations = "-" if summary.mean_actuations is None else f"{summary.mean_actuations:.2f}"
    return "\n".join(
        [
            f"rows        {summary.rows}",
            f"solvable    {summary.solvable}",
            f"exact       {summary.exact} ({share:.1%} proven minimal)",
            f"mean moves  {mean}",
            f"max moves   {largest}",
            f"actuations  {actuations} (mean moves that change a setting)",
            f"seconds     {summary.seconds:.2f}",
        ]
    )


def plan_command(
    spec_path: Path,
    model_path: Path | None = None,
    mode: str = "discrete",
    as_json: bool = False,
    save: Path | None = None,
) -> int:
    if mode not in PLANNING_MODES:  # argparse restricts it; kept for direct callers
        raise ValueError(f"mode must be one of {PLANNING_MODES}")
    spec = load_spec(spec_path)  # a bad spec fails here, before any progress line
    if save is not None:
        refuse_to_overwrite_inputs(
            save, spec_path, spec.csv_path, *([model_path] if model_path else [])
        )
    started = time.perf_counter()
    fitting = " and fitting the process model" if model_path is None else ""
    _progress(f"loading the dataset{fitting} ...", as_json)
    plant = load_plant(spec_path, model_path)
    rows = len(plant.start_indices)
    _progress(
        f"model: {plant.model.family} ({time.perf_counter() - started:.1f} s); "
        f"planning {rows} rows ({mode} moves) ...",
        as_json,
    )
    yardstick = compute_yardstick(plant, mode)
    summary = yardstick.summary()
    _progress(f"planned {rows} rows in {summary.seconds:.1f} s", as_json)
    if save is not None:
        _progress(f"wrote {save_yardstick(yardstick, save)}", as_json)
    if as_json:
        print(json.dumps(summary.to_dict(), indent=1))
    else:
        print(format_summary(summary))
    return 0
