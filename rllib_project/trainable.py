"""The Tune trainable: one RLlib algorithm per trial, scored by the planner yardstick.

One class serves PPO, SAC and DQN, so that a single ``Tuner`` (one experiment folder,
one ``Tuner.restore``) runs all of them side by side. Each trial

* builds its algorithm from the trial config (:func:`build_algorithm_config`) and asks
  Tune for exactly the resources RLlib computes for it (``default_resource_request``);
* after every ``evaluation.interval`` training iterations runs its greedy policy from
  the fixed, seeded start rows and reports ``evaluation/...`` metrics (success rate,
  moves to band, planner ratio, return, and the checkpoint ``score``), see
  :mod:`rllib_project.scoring`;
* saves plain RLlib Algorithm checkpoints (loadable with ``Algorithm.from_checkpoint``
  and ``RLModule.from_checkpoint``) plus ``plant_policy.json`` saying what they are.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.result import AUTO_RESULT_KEYS, DONE, EPISODES_TOTAL, TIMESTEPS_TOTAL

from env.evaluation import fixed_start_rows
from env.files import json_safe, write_json_atomic
from env.temperature_env import TemperatureControlEnv
from rllib_project.algorithms import build_algorithm_config
from rllib_project.checkpoints import POLICY_METADATA
from rllib_project.inference import LearnerModuleMirror, greedy_action_function
from rllib_project.scoring import PlantScorer

_TRAINABLE_KEYS = {*AUTO_RESULT_KEYS, DONE, TIMESTEPS_TOTAL, EPISODES_TOTAL, "config"}


def trial_settings(config: dict[str, Any]) -> dict[str, Any]:
    """Flatten a Tune trial config into what :func:`build_algorithm_config` reads."""
    trial = dict(config["trial"])
    env_config = {**config["env_config"], "action_mode": trial["action_mode"]}
    return {
        **trial,
        "env_config": env_config,
        "resources": config["resources"],
        "seed": config.get("seed", 0),
    }


class PlantTrainable(tune.Trainable):
    """Runs one RLlib algorithm; see the module docstring."""

    @classmethod
    def default_resource_request(cls, config: dict[str, Any]) -> tune.PlacementGroupFactory:
        algo_config = build_algorithm_config(trial_settings(config))
        return algo_config.algo_class.default_resource_request(algo_config)

    def setup(self, config: dict[str, Any]) -> None:
        import torch

        self.settings = trial_settings(config)
        torch.set_num_threads(
            self.settings.get("torch_threads") or max(1, int(config["resources"]["main_cpus"]))
        )
        reference_env = TemperatureControlEnv(self.settings["env_config"])
        evaluation = config["evaluation"]
        self.evaluation_interval = int(evaluation["interval"])
        rows = fixed_start_rows(reference_env.plant, evaluation.get("rows"), evaluation["seed"])
        self.scorer = PlantScorer(reference_env.plant, self.settings["action_mode"], rows)
        self.algo = build_algorithm_config(self.settings).build_algo()
        self.mirror = LearnerModuleMirror(
            self.algo, reference_env.observation_space, reference_env.action_space
        )
        self.act = greedy_action_function(
            self.mirror.module, reference_env.action_space, self.algo.config.normalize_actions
        )
        self.last_evaluation: dict[str, float] | None = None

    def evaluate(self) -> dict[str, float]:
        """Greedy policy of the learner's current weights on the fixed start rows."""
        start = time.perf_counter()
        self.mirror.refresh()
        metrics = self.scorer.evaluate_function(self.settings["algorithm"], self.act)
        metrics["time_s"] = time.perf_counter() - start  # benchmarks subtract it
        return metrics

    def step(self) -> dict[str, Any]:
        result = {k: v for k, v in self.algo.train().items() if k not in _TRAINABLE_KEYS}
        iteration = self.iteration + 1
        if self.last_evaluation is None or iteration % self.evaluation_interval == 0:
            self.last_evaluation = {**self.evaluate(), "iteration": iteration}
        result["evaluation"] = dict(self.last_evaluation)
        result["algorithm"] = self.settings["algorithm"]
        result["action_mode"] = self.settings["action_mode"]
        result["node_id"] = _node_id()
        return result

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        self.algo.save_to_path(checkpoint_dir)
        metadata = {
            "algorithm": self.settings["algorithm"],
            "action_mode": self.settings["action_mode"],
            "env_config": self.settings["env_config"],
            "training_iteration": self.iteration,
            "evaluation": self.last_evaluation,
        }
        write_json_atomic(Path(checkpoint_dir) / POLICY_METADATA, json_safe(metadata))

    def load_checkpoint(self, checkpoint: str | dict | None) -> None:
        self.algo.restore_from_path(str(checkpoint))
        self.last_evaluation = None  # evaluate the restored weights afresh

    def cleanup(self) -> None:
        self.algo.stop()


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()
