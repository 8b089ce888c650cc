"""Benchmark: environment steps per second against CartPole-v1, and planner time.

How to run::

    .venv/bin/python scripts/bench_env.py [--steps 50000] [--repeats 5]

Results to expect (2-core machine): ``TemperatureControl-v0`` at >= 0.5x the steps per
second of ``CartPole-v1`` in every action mode, both made with ``gym.make`` (same
wrappers) and stepped by the same loop in this process; the planner over every row of
the sample CSV (all rows in one batch) in well under 1 s. ``bench_planner.py`` measures
the planner on plants of other shapes. One more line steps the bundled time-ordered
furnace log (a lag and a dead time of 2 identified from it: the settings in flight are
part of the state, and the observation is longer).

Each figure is the best of ``--repeats`` runs (the least disturbed by other load).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import env
from env.planner import plan_rows

FURNACE_LOG = Path(__file__).resolve().parent.parent / "data" / "furnace_log_spec.yaml"


def steps_per_second(environment: gym.Env, steps: int, seed: int = 0) -> float:
    """Step with a fixed sequence of random actions, resetting at episode ends."""
    environment.reset(seed=seed)
    environment.action_space.seed(seed)
    actions = [environment.action_space.sample() for _ in range(256)]
    start = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, _ = environment.step(actions[i & 255])
        if terminated or truncated:
            environment.reset()
    return steps / (time.perf_counter() - start)


def best_of(repeats: int, measure) -> float:
    return max(measure() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    cartpole = gym.make("CartPole-v1")
    baseline = best_of(args.repeats, lambda: steps_per_second(cartpole, args.steps))
    print(f"{'environment':<42} {'steps/s':>10} {'ratio':>7}")
    print(f"{'CartPole-v1 (baseline)':<42} {baseline:>10,.0f} {1.0:>7.2f}")
    for mode in env.ACTION_MODES:
        ours = gym.make(env.ENV_ID, action_mode=mode)
        rate = best_of(args.repeats, lambda e=ours: steps_per_second(e, args.steps))
        print(f"{env.ENV_ID + ' ' + mode:<42} {rate:>10,.0f} {rate / baseline:>7.2f}")
    lagging = gym.make(env.ENV_ID, spec_path=FURNACE_LOG)
    rate = best_of(args.repeats, lambda: steps_per_second(lagging, args.steps))
    print(
        f"{'  furnace log (lag, dead time 2) discrete':<42} {rate:>10,.0f} {rate / baseline:>7.2f}"
    )

    plant = env.load_plant()
    temps = plant.data.state[plant.start_indices]
    controls = plant.data.controls[plant.start_indices]
    for name in ("discrete", "continuous"):
        start = time.perf_counter()
        plans = plan_rows(plant, temps, controls, name)
        elapsed = time.perf_counter() - start
        moves = np.array([p.moves for p in plans if p.moves is not None])
        exact = sum(p.exact for p in plans)
        print(
            f"planner {name}: {len(plans)} rows in {elapsed:.3f} s "
            f"({1e3 * elapsed / len(plans):.2f} ms/row), {len(moves)} reachable, "
            f"mean {moves.mean():.2f} / max {moves.max()} moves, {exact} proven exact"
        )


if __name__ == "__main__":
    main()
