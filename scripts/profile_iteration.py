"""Profile: where one training iteration of our SAC or DQN spends its time.

How to run::

    .venv/bin/python scripts/profile_iteration.py sac [--iterations 3] [--top 15]
    .venv/bin/python scripts/profile_iteration.py dqn

Builds the project's trainable exactly as ``scripts/bench_train.py`` does (the
algorithm's YAML, the trial's resources, evaluation over every start row), trains
until learning has started and a few iterations more (warm-up), then runs
``--iterations`` iterations under ``cProfile`` and prints:

* the wall time of those iterations without and with the profiler (cProfile slows
  Python-heavy code more than torch, so read the shares, not the seconds);
* the breakdown of the profiled time into RLlib's parts: sampling (env runner), replay
  buffer add / sample, learner update (split into building the train batch with the
  learner connector, and torch's forward/backward/optimizer step), weight sync, our
  greedy evaluation over the start rows, and the rest (RLlib's result reduction and
  metrics, Tune's Trainable bookkeeping);
* RLlib's own timers from the last result (per call, smoothed) and how many training
  steps (sample + update rounds) one iteration ran;
* the ``--top`` functions by own time.

The machine's other load changes the seconds; the shares within one run are what the
figures in ``TrialConfig.torch_threads`` and the README ("Where SAC's and DQN's time goes") cite.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import env
from rllib_project.resources import cluster_node_cpus
from rllib_project.tuning import init_ray, prepare_ray_environment


@dataclass(frozen=True)
class Part:
    """A part of an iteration: the cumulative time of the functions named here."""

    label: str
    functions: tuple[tuple[str, str], ...]
    """(path suffix of the source file, function name); cumulative times are added."""


RLLIB = "ray/rllib/"
PARTS = (
    Part(
        "sampling (env runner)",
        ((RLLIB + "execution/rollout_ops.py", "synchronous_parallel_sample"),),
    ),
    Part(
        "replay buffer: add",
        (
            (RLLIB + "utils/replay_buffers/episode_replay_buffer.py", "add"),
            (RLLIB + "utils/replay_buffers/prioritized_episode_buffer.py", "add"),
            ("rllib_project/flat_replay.py", "add_episodes"),  # the ring, where it applies
        ),
    ),
    Part(
        "replay buffer: sample",
        (
            (RLLIB + "utils/replay_buffers/episode_replay_buffer.py", "sample"),
            (RLLIB + "utils/replay_buffers/prioritized_episode_buffer.py", "sample"),
            ("rllib_project/flat_replay.py", "sample"),
        ),
    ),
    Part(
        "learner: train batch (connector)",
        ((RLLIB + "core/learner/learner.py", "_create_iterator_if_necessary"),),
    ),
    Part("learner: torch update", ((RLLIB + "core/learner/torch/torch_learner.py", "_update"),)),
    Part("weight sync", ((RLLIB + "env/env_runner_group.py", "sync_weights"),)),
    Part("evaluation (500 rows, greedy)", (("rllib_project/trainable.py", "evaluate"),)),
)
LEARNER_GROUP_UPDATE = (RLLIB + "core/learner/learner_group.py", "update")


def cumulative(stats: pstats.Stats, functions: tuple[tuple[str, str], ...]) -> float:
    """Cumulative seconds of the given functions (outermost calls: no recursion here)."""
    total = 0.0
    for (filename, _, name), (_, _, _, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        if any(filename.endswith(f) and name == n for f, n in functions):
            total += ct
    return total


def main() -> None:
    from bench_train import build_trainable  # this folder is on sys.path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("algorithm", choices=["sac", "dqn"])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="iterations after learning starts")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument(
        "--torch-threads", type=int, default=None, help="instead of the YAML's / the CPU share"
    )
    args = parser.parse_args()
    algorithm = args.algorithm.upper()

    from rllib_project.metrics import env_steps

    prepare_ray_environment(None)
    init_ray(None)
    plant = env.load_plant(env.DEFAULT_SPEC_PATH)
    with tempfile.TemporaryDirectory() as folder:
        model_path = plant.model.save(Path(folder) / "model.json")
        overrides = None if args.torch_threads is None else {"torch_threads": args.torch_threads}
        trainable = build_trainable(algorithm, model_path, overrides)
        print(f"torch threads: {trainable.trial.torch_threads}")
        try:
            starts = trainable.algo.config.num_steps_sampled_before_learning_starts
            print(f"{algorithm}: warming up (learning starts after {starts:,} env steps) ...")
            result = trainable.train()
            while env_steps(result) < starts:
                result = trainable.train()
            for _ in range(args.warmup):
                result = trainable.train()
            steps_before = env_steps(result)
            began = time.perf_counter()
            for _ in range(args.iterations):
                result = trainable.train()
            plain = time.perf_counter() - began
            steps_plain = env_steps(result) - steps_before
            profiler = cProfile.Profile()
            steps_before = env_steps(result)
            began = time.perf_counter()
            profiler.enable()
            for _ in range(args.iterations):
                result = trainable.train()
            profiler.disable()
            profiled = time.perf_counter() - began
            steps_profiled = env_steps(result) - steps_before
            # Tune saves a checkpoint after every evaluation (evaluation.interval)
            began = time.perf_counter()
            for i in range(args.iterations):
                trainable.save(str(Path(folder) / f"checkpoint_{i}"))
            checkpoint_s = (time.perf_counter() - began) / args.iterations
        finally:
            trainable.stop()
    report(algorithm, args, plain, steps_plain, profiled, steps_profiled, profiler, result)
    print(
        f"  a checkpoint (Tune saves one per evaluation, outside the iteration): "
        f"{checkpoint_s:.3f} s, {checkpoint_s / (plain / args.iterations):.0%} of an iteration"
    )


def report(
    algorithm: str,
    args: argparse.Namespace,
    plain: float,
    steps_plain: float,
    profiled: float,
    steps_profiled: float,
    profiler: cProfile.Profile,
    result: dict,
) -> None:
    stats = pstats.Stats(profiler)
    n = args.iterations
    print(
        f"\n{algorithm}, {n} iterations after warm-up, {cluster_node_cpus()} CPUs (shared "
        f"machine: seconds vary with its load)\n"
        f"  without profiler: {plain / n:.2f} s per iteration, {steps_plain / n:,.0f} env "
        f"steps per iteration, {steps_plain / plain:,.0f} env steps/s\n"
        f"  with cProfile:    {profiled / n:.2f} s per iteration, "
        f"{steps_profiled / profiled:,.0f} env steps/s"
    )
    print("  where the profiled time goes:")
    accounted = 0.0
    for part in PARTS:
        seconds = cumulative(stats, part.functions)
        accounted += seconds
        print(f"    {part.label:<36} {seconds / n:7.3f} s/iter  {seconds / profiled:6.1%}")
    update = cumulative(stats, (LEARNER_GROUP_UPDATE,))
    inner = cumulative(stats, PARTS[3].functions + PARTS[4].functions)
    rest_of_update = max(0.0, update - inner)
    accounted += rest_of_update
    print(
        f"    {'learner: rest (metrics, group)':<36} {rest_of_update / n:7.3f} s/iter  "
        f"{rest_of_update / profiled:6.1%}"
    )
    rest = profiled - accounted
    label = "rest: RLlib results, Tune, loop"
    print(f"    {label:<36} {rest / n:7.3f} s/iter  {rest / profiled:6.1%}")
    timers = result.get("timers", {})
    if timers:
        print("  RLlib's timers (last result, seconds per call, smoothed):")
        for key, value in sorted(timers.items()):
            if isinstance(value, (int, float)):
                print(f"    {key:<40} {value:8.4f}")
    steps_per_iteration = steps_plain / n
    print(f"  env steps per iteration (unprofiled): {steps_per_iteration:,.0f}")
    print(f"  top {args.top} functions by own time (profiled):")
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
