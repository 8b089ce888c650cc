"""Trains RLlib's SAC or DQN with the flat replay ring on a counting env (run by
``tests/test_flat_replay.py`` in its own process, so that pytest's stays free of Ray).

Usage: ``python -m tests.flat_replay_run FOLDER``. Trains SAC, then DQN, one iteration
each, and writes ``FOLDER/<algorithm>.npz``: the ring's arrays, the algorithm's class
name and the learner's trained-steps count.

The env makes every transition checkable: the reading counts up by one per step from
a random start in 0..4, the reward is the reading before the step, the episode
terminates on reaching 6 and is truncated after 4 steps (so both endings occur, and
chunks of 3 steps cut episodes in the middle).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

TERMINAL = 6
TIME_LIMIT = 4


class CountingEnv(gym.Env[np.ndarray, Any]):
    """Reading +1 per step; reward = reading before the step; ends at TERMINAL."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.discrete = bool((config or {}).get("discrete"))
        self.observation_space = gym.spaces.Box(0.0, 10.0, (1,), np.float32)
        self.action_space: gym.Space[Any] = (
            gym.spaces.Discrete(2) if self.discrete else gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        )
        self.count = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.count = int(self.np_random.integers(0, 5))
        return np.array([self.count], np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        reward = float(self.count)
        self.count += 1
        return np.array([self.count], np.float32), reward, self.count == TERMINAL, False, {}


ALGORITHMS = ("SAC", "DQN")


def main(folder: Path) -> None:
    from ray.tune.registry import register_env

    from rllib_project.tuning import init_ray, prepare_ray_environment

    prepare_ray_environment(None)
    init_ray(None)
    register_env(
        "counting",
        lambda config: gym.wrappers.TimeLimit(CountingEnv(config), max_episode_steps=TIME_LIMIT),
    )
    for algorithm in ALGORITHMS:
        train_and_save(algorithm, folder / f"{algorithm}.npz")


def train_and_save(algorithm: str, out: Path) -> None:
    """One iteration of at least 120 steps: learning starts after 24, the ring (50) wraps."""
    from rllib_project.algorithms import algorithm_config_class
    from rllib_project.flat_replay import use_flat_replay

    config = (
        algorithm_config_class(algorithm)()
        .environment("counting", env_config={"discrete": algorithm == "DQN"})
        .env_runners(num_env_runners=0, num_envs_per_env_runner=2, rollout_fragment_length=3)
        .training(
            train_batch_size_per_learner=32,
            num_steps_sampled_before_learning_starts=24,
            replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": 50},
        )
        .reporting(min_sample_timesteps_per_iteration=120)
        .debugging(seed=0)
    )
    use_flat_replay(config, algorithm)
    algo = config.build_algo()
    result = algo.train()
    ring = algo._ring  # type: ignore[attr-defined]
    trained = result["learners"]["default_policy"]["num_module_steps_trained_lifetime"]
    np.savez(
        out,
        algo_class=type(algo).__name__,
        size=len(ring),
        trained=trained,
        sample_keys=sorted(ring.sample(4)),
        **{f"ring_{k}": v for k, v in ring._arrays.items()},
    )
    algo.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
