"""Benchmark: how fast the project's training gets good policies, against the usual tools.

How to run (needs the bench extra: ``.venv/bin/pip install -e '.[bench]'``)::

    .venv/bin/python scripts/bench_train.py ppo [--budget-s 300]   # ours vs SB3 PPO
    .venv/bin/python scripts/bench_train.py sac [--budget-s 300]   # ours vs SB3 SAC (continuous)
    .venv/bin/python scripts/bench_train.py dqn [--budget-s 300]   # ours vs SB3 DQN (flat Discrete)
    .venv/bin/python scripts/bench_train.py dqn-default [--budget-s 120]  # vs RLlib default DQN
    .venv/bin/python scripts/bench_train.py modes [--budget-s 300] # PPO discrete vs continuous
    .venv/bin/python scripts/bench_train.py replay [--budget-s 100] # RLlib's buffer vs the ring

Every contender runs alone on this machine, one after the other in this process, on the
same environment (sample data, same fitted model) and is scored by the same greedy
evaluation over every start row of the CSV (:class:`rllib_project.scoring.PlantScorer`)
after each training iteration (ours: one RLlib iteration; SB3 PPO: one rollout of
n_steps; SB3 SAC and DQN: the first rollout end after >= 1 s of training, see
``SB3_MIN_TRAIN_S_BETWEEN_EVALS``). Clocks count training only: evaluation time is
subtracted from both. Stable-Baselines3 runs with its defaults (``MlpPolicy``, CPU,
seed 0) on the action space it supports: PPO on ``discrete`` (MultiDiscrete), SAC on
``continuous``, DQN on ``discrete_flat``; ours with the algorithm's YAML. The line
``time to 95%: ours / SB3`` is the figure to read (<= 1: ours is faster); when a
contender does not reach 95% within the budget it prints a bound.

``replay`` trains our SAC and DQN twice each, with RLlib's ``EpisodeReplayBuffer`` and
its learner connector (the baseline) and with the project's replay ring
(:mod:`rllib_project.flat_replay`, the default where it applies), and prints the env
steps per second and the time to 95% of each, and their ratios.

Results to expect (2 CPUs; the README's Results table has the runs): each of ours
reaches 95% success in less training time than its Stable-Baselines3 twin (2026-11-29:
PPO 0.15-0.17, SAC 0.78-0.85, DQN 0.43); our DQN samples >= 10x the env steps per
second of RLlib's default DQN settings (``dqn-default``); the ring samples faster than
RLlib's buffer (``replay``: SAC 1.98x, DQN 2.58x env steps/s, measured with the
fragments of 8 of that day).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import env
from env.baselines import FunctionPolicy
from rllib_project.experiment import load_experiment
from rllib_project.preparation import prepare_dataset
from rllib_project.resources import cluster_node_cpus, plan_trial_resources
from rllib_project.scoring import PlantScorer, PolicyMetrics
from rllib_project.trial_config import TrialConfig
from rllib_project.tuning import init_ray, prepare_ray_environment

REPO = Path(__file__).resolve().parent.parent
EXPERIMENT = REPO / "tune_configs" / "compare.yaml"
TARGET = 0.95
PROGRESS_EVERY_S = 20.0


@dataclass
class Trace:
    """Training progress of one contender: (train seconds, env steps, metrics) per eval."""

    name: str
    points: list[tuple[float, float, PolicyMetrics | None]] = field(default_factory=list)
    """None: not evaluated (RLlib's default DQN, measured for its speed only)."""
    printed_at: float = 0.0

    def add(self, seconds: float, steps: float, metrics: PolicyMetrics | None) -> None:
        self.points.append((seconds, steps, metrics))
        if seconds >= self.printed_at + PROGRESS_EVERY_S:  # never silent minutes
            self.printed_at = seconds
            success = "-" if metrics is None else f"{metrics.success_rate_solvable:.1%}"
            print(f"  [{self.name}] {seconds:6.1f} s, {steps:>9,.0f} env steps, success {success}")

    def time_to(self, target: float) -> float | None:
        return next((s for s, _, m in self.points if m and m.success_rate_solvable >= target), None)

    def steps_to(self, target: float) -> float | None:
        return next((n for _, n, m in self.points if m and m.success_rate_solvable >= target), None)

    @property
    def steps_per_second(self) -> float:
        seconds, steps, _ = self.points[-1]
        return steps / seconds

    @property
    def best(self) -> PolicyMetrics:
        return max((m for _, _, m in self.points if m), key=lambda m: m.score)


# --------------------------------------------------------------------------- ours


def build_trainable(algorithm: str, model_path: Path, overrides: dict | None = None) -> Any:
    """The project's own trainable (PlantTrainable) with the algorithm's YAML settings,
    on the resources of one trial alone, evaluated on every start row."""
    from rllib_project.trainable import PlantTrainable

    experiment = load_experiment(EXPERIMENT)
    spec = experiment.algorithms[algorithm]
    if overrides:
        spec = dataclasses.replace(spec, **overrides)
    plan = plan_trial_resources(cluster_node_cpus(), 1, experiment.file.resources)
    trial = TrialConfig(
        algorithm=spec,
        # the experiment's yardsticks and shape, saved beside the model (as `tune` does)
        plant=prepare_dataset(
            experiment.datasets[0].name,
            experiment.datasets[0].spec,
            model_path,
            dict(experiment.file.env),
            ["discrete", "continuous"],
            model_path.parent,
            progress=lambda _: None,
        ),
        resources=plan,
        # every row, like the SB3 contender
        evaluation=dataclasses.replace(experiment.file.evaluation, rows=None),
        seed=0,
    )
    return PlantTrainable(config=trial.to_tune())


def run_ours(
    algorithm: str,
    budget_s: float,
    model_path: Path,
    stop_at: float | None = None,
    overrides: dict | None = None,
    label: str | None = None,
) -> Trace:
    """Train through the project's own path: PlantTrainable with the YAML defaults."""
    from rllib_project.metrics import (
        EVALUATION,
        EVALUATION_SECONDS,
        TIME_THIS_ITER_S,
        env_steps,
        evaluation_of,
    )

    trainable = build_trainable(algorithm, model_path, overrides)
    trial = trainable.trial
    trace = Trace(label or f"ours {algorithm} ({trial.action_mode}, {trial.torch_threads} th)")
    train_seconds = 0.0
    try:
        while train_seconds < budget_s:
            result = trainable.train()
            evaluation = evaluation_of(result)
            assert evaluation is not None  # the trainable evaluates every result
            seconds = result[EVALUATION][EVALUATION_SECONDS]
            train_seconds += result[TIME_THIS_ITER_S] - seconds
            trace.add(train_seconds, env_steps(result), evaluation)
            if stop_at is not None and evaluation.success_rate_solvable >= stop_at:
                break
    finally:
        trainable.stop()
    return trace


# --------------------------------------------------------------------------- others


SB3_SETUP = {
    # algorithm: (SB3 class name, action mode, total_timesteps passed to learn())
    "PPO": ("PPO", "discrete", 10**9),
    # SB3's DQN needs Discrete: the flat action space. Its epsilon decays over
    # exploration_fraction (0.1) x total_timesteps: 200k gives 1.0 -> 0.05 over the first
    # 20k steps, the same length as our DQN's schedule (total_timesteps is an argument of
    # learn(), not a default; with 10**9 SB3's DQN would explore at random throughout).
    "DQN": ("DQN", "discrete_flat", 200_000),
    "SAC": ("SAC", "continuous", 10**9),  # no schedule depends on total_timesteps
}
SB3_MIN_TRAIN_S_BETWEEN_EVALS = {"PPO": 0.0, "DQN": 1.0, "SAC": 1.0}
"""SB3's off-policy rollouts are 1-4 env steps: evaluating after each would measure the
evaluation's resolution, not the learning. They are evaluated at the first rollout end
after >= 1 s of training, the length of RLlib's SAC iteration (min_time_s_per_iteration);
PPO after every rollout (2048 steps), as before."""


def run_sb3(
    algorithm: str,
    budget_s: float,
    plant: env.Plant,
    model_path: Path,
    stop_at: float | None = None,
    torch_threads: int | None = None,
) -> Trace:
    """Stable-Baselines3's algorithm with its defaults, on the same env and evaluation,
    with ``torch_threads`` intra-op threads (default: the process's current setting)."""
    import gymnasium as gym
    import stable_baselines3
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    class_name, action_mode, total_timesteps = SB3_SETUP[algorithm]
    min_between = SB3_MIN_TRAIN_S_BETWEEN_EVALS[algorithm]
    scorer = PlantScorer(plant, action_mode, plant.start_indices)
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    threads = torch.get_num_threads()
    trace = Trace(f"Stable-Baselines3 {class_name} (defaults, {action_mode}, {threads} th)")
    environment = gym.make(env.ENV_ID, action_mode=action_mode, model_path=str(model_path))
    model = getattr(stable_baselines3, class_name)("MlpPolicy", environment, seed=0, device="cpu")

    class Evaluate(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.start = time.perf_counter()
            self.eval_seconds = 0.0
            self.last_eval_at = -float("inf")

        def train_seconds(self) -> float:
            return time.perf_counter() - self.start - self.eval_seconds

        def _on_rollout_end(self) -> None:
            if self.train_seconds() - self.last_eval_at < min_between:
                return
            began = time.perf_counter()
            act = lambda obs: self.model.predict(obs, deterministic=True)[0]  # noqa: E731
            metrics = scorer.evaluate(FunctionPolicy("sb3", act))
            self.eval_seconds += time.perf_counter() - began
            self.last_eval_at = self.train_seconds()
            trace.add(self.last_eval_at, self.num_timesteps, metrics)

        def _on_step(self) -> bool:
            done = (
                stop_at is not None
                and trace.points
                and (trace.points[-1][2].success_rate_solvable >= stop_at)
            )
            return self.train_seconds() < budget_s and not done

    model.learn(total_timesteps=total_timesteps, callback=Evaluate())
    return trace


def run_rllib_default_dqn(budget_s: float, model_path: Path) -> Trace:
    """RLlib's DQN with its default settings (only env and resources set as ours)."""
    from ray.rllib.algorithms.dqn import DQNConfig

    from rllib_project.metrics import TIME_THIS_ITER_S, env_steps
    from rllib_project.registration import register

    experiment = load_experiment(EXPERIMENT)
    plan = plan_trial_resources(cluster_node_cpus(), 1, experiment.file.resources)
    register()
    config = (
        DQNConfig()
        .environment(
            env.ENV_ID,
            env_config=dataclasses.asdict(
                env.EnvConfig(str(experiment.datasets[0].spec), str(model_path), "discrete_flat")
            ),
        )
        .env_runners(num_env_runners=plan.num_env_runners)
        .learners(num_learners=0, num_cpus_per_learner=plan.main_cpus)
        .debugging(seed=0, log_level="ERROR")
    )
    algo = config.build_algo()
    trace = Trace("RLlib DQN (default settings)")
    seconds = 0.0
    try:
        while seconds < budget_s:
            result = algo.train()
            seconds += result[TIME_THIS_ITER_S]
            trace.add(seconds, env_steps(result), None)
    finally:
        algo.stop()
    return trace


def run_ours_with_rllibs_buffer(algorithm: str, budget_s: float, model_path: Path) -> Trace:
    """Ours, with RLlib's own episode buffer and learner connector instead of the ring
    (the baseline of ``replay``): the ring's choice is switched off in this process."""
    import rllib_project.flat_replay as flat_replay

    applies = flat_replay.flat_replay_applies
    flat_replay.flat_replay_applies = lambda config: False
    try:
        label = f"ours {algorithm}, RLlib's buffer"
        return run_ours(algorithm, budget_s, model_path, stop_at=TARGET, label=label)
    finally:
        flat_replay.flat_replay_applies = applies


# --------------------------------------------------------------------------- report


def describe(trace: Trace) -> str:
    best = trace.best
    reach = trace.time_to(TARGET)
    steps = trace.steps_to(TARGET)
    reach_text = "not reached" if reach is None else f"{reach:7.1f} s / {steps:>8,.0f} steps"
    return (
        f"  {trace.name:<40} {TARGET:.0%} success: {reach_text}; best success "
        f"{best.success_rate_solvable:.1%}, moves/opt {best.moves_ratio:.2f}; "
        f"{trace.steps_per_second:,.0f} env steps/s"
    )


def time_ratio(ours: Trace, other: Trace, budget_s: float) -> str:
    """ours / other time to the target; a bound when one of them did not reach it."""
    a, b = ours.time_to(TARGET), other.time_to(TARGET)
    if a is not None and b is not None:
        return f"{a / b:.2f}"
    if a is not None:  # the other's time is more than its budget
        return f"< {a / budget_s:.2f} ({other.name} did not reach it in {budget_s:.0f} s)"
    if b is not None:
        return f"> {budget_s / b:.2f} (ours did not reach it in {budget_s:.0f} s)"
    return "n/a (neither reached it)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["ppo", "dqn", "sac", "dqn-default", "modes", "replay"])
    parser.add_argument("--budget-s", type=float, default=300.0)
    args = parser.parse_args()

    prepare_ray_environment(None)
    init_ray(None)
    plant = env.load_plant(env.DEFAULT_SPEC_PATH)
    with tempfile.TemporaryDirectory() as folder:
        model_path = plant.model.save(Path(folder) / "model.json")
        print(
            f"machine: {cluster_node_cpus()} CPUs (Ray); budget {args.budget_s:.0f} s each; "
            f"evaluation over {len(plant.start_indices)} start rows after every iteration"
        )
        if args.part.upper() in SB3_SETUP:
            algorithm = args.part.upper()
            ours = run_ours(algorithm, args.budget_s, model_path, stop_at=TARGET)
            # as many torch threads as ours used (set by its trainable), so both pay the same
            threads = torch.get_num_threads()
            sb3 = run_sb3(algorithm, args.budget_s, plant, model_path, TARGET, threads)
            print(describe(ours))
            print(describe(sb3))
            print(f"  time to {TARGET:.0%}: ours / SB3 = {time_ratio(ours, sb3, args.budget_s)}")
        elif args.part == "dqn-default":
            default = run_rllib_default_dqn(args.budget_s, model_path)
            ours = run_ours("DQN", args.budget_s, model_path)
            print(describe(ours))
            print(f"  {default.name:<40} {default.steps_per_second:,.0f} env steps/s")
            print(
                f"  env steps/s: ours / RLlib default = "
                f"{ours.steps_per_second / default.steps_per_second:.1f}x"
            )
        elif args.part == "replay":
            for algorithm in ("SAC", "DQN"):
                baseline = run_ours_with_rllibs_buffer(algorithm, args.budget_s, model_path)
                label = f"ours {algorithm}, ring"
                ring = run_ours(algorithm, args.budget_s, model_path, stop_at=TARGET, label=label)
                print(describe(baseline))
                print(describe(ring))
                speed = ring.steps_per_second / baseline.steps_per_second
                print(f"  {algorithm} env steps/s: ring / RLlib's buffer = {speed:.2f}")
                print(
                    f"  {algorithm} time to {TARGET:.0%}: ring / RLlib's buffer = "
                    f"{time_ratio(ring, baseline, args.budget_s)}"
                )
        else:
            for mode in ("discrete", "continuous"):
                trace = run_ours(
                    "PPO",
                    args.budget_s,
                    model_path,
                    stop_at=TARGET,
                    overrides={"action_mode": mode},
                    label=f"ours PPO ({mode})",
                )
                print(describe(trace))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
