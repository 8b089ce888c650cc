"""Benchmark: how fast the project's training gets good policies, against the usual tools.

How to run (needs the bench extra: ``.venv/bin/pip install -e '.[bench]'``)::

    .venv/bin/python scripts/bench_train.py ppo   [--budget-s 300]   # ours vs SB3 PPO
    .venv/bin/python scripts/bench_train.py dqn   [--budget-s 120]   # ours vs RLlib default DQN
    .venv/bin/python scripts/bench_train.py sac   [--budget-s 300]   # ours only
    .venv/bin/python scripts/bench_train.py modes [--budget-s 300]   # PPO discrete vs continuous

Every contender runs alone on this machine, one after the other in this process, on the
same environment (sample data, same fitted model) and is scored by the same greedy
evaluation over every start row of the CSV (:class:`rllib_project.scoring.PlantScorer`)
after each training iteration (ours: one RLlib iteration; SB3: one rollout of n_steps).
Clocks count training only: evaluation time is subtracted from both.

Results to expect (2 CPUs): our PPO reaches 95% success in less wall time than
Stable-Baselines3 PPO with its defaults (ratio <= 1); our DQN samples >= 10x the env
steps per second of RLlib's default DQN settings and still reaches the success target.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import env
from env.baselines import FunctionPolicy
from rllib_project.experiment import load_experiment
from rllib_project.resources import cluster_node_cpus, plan_trial_resources
from rllib_project.scoring import PlantScorer, PolicyMetrics
from rllib_project.trial_config import PlantSource, TrialConfig
from rllib_project.tuning import init_ray, prepare_ray_environment

REPO = Path(__file__).resolve().parent.parent
EXPERIMENT = REPO / "tune_configs" / "compare.yaml"
TARGET = 0.95


@dataclass
class Trace:
    """Training progress of one contender: (train seconds, env steps, metrics) per eval."""

    name: str
    points: list[tuple[float, float, PolicyMetrics | None]] = field(default_factory=list)
    """None: not evaluated (RLlib's default DQN, measured for its speed only)."""

    def add(self, seconds: float, steps: float, metrics: PolicyMetrics | None) -> None:
        self.points.append((seconds, steps, metrics))

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
    from rllib_project.trainable import PlantTrainable

    experiment = load_experiment(EXPERIMENT)
    spec = experiment.algorithms[algorithm]
    if overrides:
        spec = dataclasses.replace(spec, **overrides)
    plan = plan_trial_resources(cluster_node_cpus(), 1, experiment.file.resources)
    trial = TrialConfig(
        algorithm=spec,
        plant=PlantSource(
            experiment.datasets[0].name,
            str(experiment.datasets[0].spec),
            str(model_path),
            dict(experiment.file.env),
        ),
        resources=plan,
        # every row, like the SB3 contender
        evaluation=dataclasses.replace(experiment.file.evaluation, rows=None),
        seed=0,
    )
    trace = Trace(label or f"ours {algorithm} ({spec.action_mode})")
    trainable = PlantTrainable(config=trial.to_tune())
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


def run_sb3_ppo(
    budget_s: float, plant: env.Plant, model_path: Path, stop_at: float | None = None
) -> Trace:
    """Stable-Baselines3 PPO with its defaults, on the same env and evaluation."""
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    scorer = PlantScorer(plant, "discrete", plant.start_indices)
    trace = Trace("Stable-Baselines3 PPO (defaults)")
    environment = gym.make(env.ENV_ID, action_mode="discrete", model_path=str(model_path))
    model = PPO("MlpPolicy", environment, seed=0, device="cpu")

    class Evaluate(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.start = time.perf_counter()
            self.eval_seconds = 0.0

        def _on_rollout_end(self) -> None:
            began = time.perf_counter()
            act = lambda obs: self.model.predict(obs, deterministic=True)[0]  # noqa: E731
            metrics = scorer.evaluate(FunctionPolicy("sb3", act))
            self.eval_seconds += time.perf_counter() - began
            trace.add(
                time.perf_counter() - self.start - self.eval_seconds, self.num_timesteps, metrics
            )

        def _on_step(self) -> bool:
            seconds = time.perf_counter() - self.start - self.eval_seconds
            done = (
                stop_at is not None
                and trace.points
                and (trace.points[-1][2].success_rate_solvable >= stop_at)
            )
            return seconds < budget_s and not done

    model.learn(total_timesteps=10**9, callback=Evaluate())
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


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "n/a"
    return f"{a / b:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["ppo", "dqn", "sac", "modes"])
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
        if args.part == "ppo":
            ours = run_ours("PPO", args.budget_s, model_path, stop_at=TARGET)
            sb3 = run_sb3_ppo(args.budget_s, plant, model_path, stop_at=TARGET)
            print(describe(ours))
            print(describe(sb3))
            print(
                f"  time to {TARGET:.0%}: ours / SB3 = "
                f"{ratio(ours.time_to(TARGET), sb3.time_to(TARGET))}"
            )
        elif args.part == "dqn":
            default = run_rllib_default_dqn(args.budget_s, model_path)
            ours = run_ours("DQN", args.budget_s, model_path)
            print(describe(ours))
            print(f"  {default.name:<40} {default.steps_per_second:,.0f} env steps/s")
            print(
                f"  env steps/s: ours / RLlib default = "
                f"{ours.steps_per_second / default.steps_per_second:.1f}x"
            )
        elif args.part == "sac":
            print(describe(run_ours("SAC", args.budget_s, model_path)))
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
