"""One function from (algorithm, trial settings) to an RLlib ``AlgorithmConfig``.

PPO, SAC and DQN share everything except their ``training`` settings and action
mode, so they are built by the same code path on RLlib's new API stack
(RLModule / Learner / EnvRunner), never by three copies of the same setup.
"""

from __future__ import annotations

import dataclasses
import inspect
from functools import cache
from typing import TYPE_CHECKING

from env import ENV_ID
from rllib_project.registration import register
from rllib_project.shape_defaults import derived_settings

if TYPE_CHECKING:
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    from rllib_project.trial_config import TrialConfig


def algorithm_config_class(name: str) -> type[AlgorithmConfig]:
    """The config class of an algorithm (imported on demand: each pulls in torch)."""
    if name == "PPO":
        from ray.rllib.algorithms.ppo import PPOConfig

        return PPOConfig
    if name == "SAC":
        from ray.rllib.algorithms.sac import SACConfig

        return SACConfig
    if name == "DQN":
        from ray.rllib.algorithms.dqn import DQNConfig

        return DQNConfig
    raise ValueError(f"unknown algorithm {name!r}")


@cache
def allowed_training_keys(name: str) -> frozenset[str]:
    """Parameters of ``<Algo>Config.training()`` in the installed RLlib."""
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    keys: set[str] = set()
    for method in (algorithm_config_class(name).training, AlgorithmConfig.training):
        keys.update(
            p.name
            for p in inspect.signature(method).parameters.values()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"
        )
    # the network is configured in the algorithm file's `model` section
    return frozenset(keys - {"model", "learner_class", "learner_connector", "optimizer"})


@cache
def allowed_model_keys() -> frozenset[str]:
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    return frozenset(f.name for f in dataclasses.fields(DefaultModelConfig))


def build_algorithm_config(trial: TrialConfig) -> AlgorithmConfig:
    """RLlib config of one trial: the algorithm file's settings, over the defaults the
    plant's shape gives (:mod:`rllib_project.shape_defaults`), on the trial's resources."""
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    from rllib_project.torch_seeding import use_light_torch_seeding

    register()
    use_light_torch_seeding()  # seconds less set-up per trial (see there)
    settings, resources = trial.algorithm, trial.resources
    training, model = dict(settings.training), dict(settings.model)
    shape = trial.plant.shape
    if shape is not None:  # the YAML's own values win over the shape's
        derived = derived_settings(settings.algorithm, shape)
        training = {**derived.training, **training}
        model = {**derived.model, **model}
    config = (
        algorithm_config_class(settings.algorithm)()
        .environment(ENV_ID, env_config=dataclasses.asdict(trial.env_config))
        .framework("torch")
        .env_runners(
            num_env_runners=resources.num_env_runners,
            # RLlib annotates these as int; Ray takes fractional CPUs (see resources.py)
            num_cpus_per_env_runner=resources.cpus_per_env_runner or 1,  # type: ignore[arg-type]
            **settings.env_runners,
        )
        .learners(num_learners=0, num_cpus_per_learner=resources.main_cpus)
        .resources(num_cpus_for_main_process=resources.main_cpus)  # type: ignore[arg-type]
        .training(**training)
        .rl_module(model_config=DefaultModelConfig(**model))
        .debugging(seed=trial.seed, log_level="WARN")
        .reporting(metrics_num_episodes_for_smoothing=20)
    )
    if settings.algorithm == "DQN" and settings.action_mode == "discrete":
        use_branching_q(config)
    if settings.algorithm in ("DQN", "SAC"):
        # replay from numpy arrays where that computes RLlib's own batches: about half
        # of their iteration was RLlib's episode buffer and its connector
        from rllib_project.flat_replay import use_flat_replay

        use_flat_replay(config, settings.algorithm)
    # Restart crashed env runners in place; a crashed trial is restarted by Tune.
    config.fault_tolerance(restart_failed_env_runners=True)
    return config


def use_branching_q(config: AlgorithmConfig) -> None:
    """DQN over ``MultiDiscrete([3] * k)``: one Q-head per control instead of one
    output per combination of moves (:mod:`rllib_project.branching_q`)."""
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from rllib_project.branching_q import (
        BranchingQCatalog,
        BranchingQTorchLearner,
        BranchingQTorchRLModule,
    )

    config.rl_module(
        rl_module_spec=RLModuleSpec(
            module_class=BranchingQTorchRLModule, catalog_class=BranchingQCatalog
        )
    )
    config.learners(learner_class=BranchingQTorchLearner)
