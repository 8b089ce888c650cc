"""Benchmark: PPO, SAC and DQN x 3 seeds on the sample data, then the comparison.

How to run::

    .venv/bin/python scripts/bench_seeds.py [--experiment tune_configs/seeds.yaml]

Runs ``rllib-project tune`` on the experiment (by default ``tune_configs/seeds.yaml``:
3 algorithms x 3 seeds, 10,000 env steps per trial) into a temporary folder, then
``evaluate`` and ``report``, and prints:

* the wall time of the run, and whether every trial ended (none left pending);
* the baseline, in the same run: the sum of the trials' own training times (Tune's
  ``time_total_s``, i.e. the trials one after another with no start-up or queueing),
  and the ratio wall / that sum;
* the cost of one trial in CPU-seconds (wall x CPUs / trials: start-up, sampling,
  learning, evaluation and checkpoints, as the run spent them), and from it an
  estimate of the wall time of a 3 algorithms x 5 seeds x 4 datasets job (60 trials)
  on N nodes of the same CPUs: 60 x cost / (N x CPUs), but never less than the
  slowest trial of this run took from its start to its end (a trial does not get
  faster than at its half-CPU share: PPO, SAC and DQN sample and learn in turn in one
  process). It assumes datasets of the sample's size and at most 2 CPUs per trial
  (more per trial changes how RLlib samples, see README "Scaling");
* the comparison table with its 95% intervals, as ``evaluate`` prints it.

Results to expect (2 CPUs): all 9 trials end, 4 at a time; a few minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from rllib_project.comparison import compare, statistics_table
from rllib_project.manifest import Manifest
from rllib_project.report import build_report
from rllib_project.resources import cluster_node_cpus
from rllib_project.tuning import init_ray, prepare_ray_environment, read_snapshot, run_tune

REPO = Path(__file__).resolve().parent.parent
EXPERIMENT = REPO / "tune_configs" / "seeds.yaml"
GRID = (3, 5, 4)
"""Algorithms x seeds x datasets of the estimated job."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", type=Path, default=EXPERIMENT)
    args = parser.parse_args()
    prepare_ray_environment(None)
    init_ray(None)
    cpus = sum(cluster_node_cpus())
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        experiment_dir = run_tune(args.experiment, storage_path=Path(folder))
        wall = time.perf_counter() - start
        manifest = Manifest.read(experiment_dir)
        plan = read_snapshot(experiment_dir)["resources"]
        report = build_report(experiment_dir)
        has_intervals = "[" in report.read_text(encoding="utf-8")
        comparison = compare(manifest)
    runs = manifest.runs
    training = sum(r.time_total_s for r in runs)
    per_trial = wall * cpus / len(runs)
    slowest = max(r.time_total_s for r in runs)
    print(
        f"\nexperiment: {args.experiment.name}; CPUs: {cpus:g}; {len(runs)} trials, "
        f"{plan['max_concurrent_trials']} at once at {plan['main_cpus']:g} CPU each"
    )
    ended = sum(r.error is None and r.metrics is not None for r in runs)
    print(f"trials ended with an evaluation: {ended}/{len(runs)}; errors: {manifest.trial_errors}")
    print(f"wall time of the run (tune, from start to best.json): {wall:.1f} s")
    print(
        f"baseline, the trials' own training times one after another: {training:.1f} s; "
        f"ratio wall / baseline: {wall / training:.2f}"
    )
    print(f"cost per trial: {per_trial:.1f} CPU-seconds (wall x CPUs / trials)")
    n = math.prod(GRID)
    print(f"estimate for {' x '.join(map(str, GRID))} = {n} trials on N nodes of {cpus:g} CPUs:")
    for nodes in (1, 2, 4, 8, 15, 30):
        estimate = max(n * per_trial / (nodes * cpus), slowest)
        print(f"  N = {nodes:>2}: {estimate / 60:6.1f} min")
    print(f"  (never below the slowest trial's training time here: {slowest:.0f} s)")
    print(f"report shows confidence intervals: {has_intervals and comparison.has_intervals}")
    print(statistics_table(comparison.overall))
    print(json.dumps({"budget": comparison.budget, "notes": comparison.notes}, indent=1))


if __name__ == "__main__":
    main()
