"""The Tune trainable: one RLlib algorithm per trial, scored by the planner yardstick.

One class serves PPO, SAC and DQN, so that a single ``Tuner`` (one experiment folder,
one ``Tuner.restore``) runs all of them side by side. Each trial

* reads its :class:`~rllib_project.trial_config.TrialConfig` from the config Tune hands
  it, builds its algorithm from it (:func:`build_algorithm_config`) and asks Tune for
  exactly the resources RLlib computes for it (``default_resource_request``);
* loads the experiment's saved yardstick (planned once before any trial, see
  :mod:`rllib_project.preparation`) and replays it, so that set-up takes seconds on
  any plant; every result says how many rows the trial planned itself (0 then) and
  how long set-up took (the ``trial`` sub-dict, :mod:`rllib_project.metrics`);
* keeps its own wall clock from the start of set-up (``trial/wall_s``): what a
  wall-time budget bounds (:mod:`rllib_project.stopping`), since Tune's
  ``time_total_s`` leaves out set-up and the time between iterations;
* after every ``evaluation.interval`` training iterations runs its greedy policy from
  the fixed, seeded start rows and reports the ``evaluation`` metrics (success rate,
  moves to band, planner ratio, return, and the checkpoint ``score``), see
  :mod:`rllib_project.scoring` and :mod:`rllib_project.metrics`;
* saves plain RLlib Algorithm checkpoints (loadable with ``Algorithm.from_checkpoint``
  and ``RLModule.from_checkpoint``) plus ``plant_policy.json`` saying what they are
  (:class:`~rllib_project.checkpoints.CheckpointInfo`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ray import tune
from ray.tune.result import AUTO_RESULT_KEYS, DONE, EPISODES_TOTAL, TIMESTEPS_TOTAL

from env.evaluation import fixed_start_rows
from env.planner import rows_planned
from env.temperature_env import TemperatureControlEnv
from env.yardstick import matching_yardstick, planning_mode
from rllib_project.algorithms import build_algorithm_config
from rllib_project.checkpoints import CheckpointInfo, file_sizes
from rllib_project.inference import LearnerModuleMirror, greedy_action_function
from rllib_project.metrics import (
    ACTION_MODE,
    ALGORITHM,
    DATASET,
    EVALUATED_AT,
    EVALUATION_SECONDS,
    NODE_ID,
    ROWS_PLANNED,
    SETUP_SECONDS,
    START_SECONDS,
    STEP_WALL_SECONDS,
    TRIAL,
    WALL_SECONDS,
    evaluation_fields,
)
from rllib_project.scoring import PlantScorer, PolicyMetrics
from rllib_project.trial_config import TrialConfig

if TYPE_CHECKING:
    from ray.rllib.algorithms.algorithm import Algorithm

_TRAINABLE_KEYS = {*AUTO_RESULT_KEYS, DONE, TIMESTEPS_TOTAL, EPISODES_TOTAL, "config"}
"""Keys of RLlib's result that Tune's Trainable sets itself (RLlib's would clash)."""


class PlantTrainable(tune.Trainable):
    """Runs one RLlib algorithm; see the module docstring."""

    @classmethod
    def default_resource_request(cls, config: dict[str, Any]) -> tune.PlacementGroupFactory:
        algo_config = build_algorithm_config(TrialConfig.from_tune(config))
        # RLlib types algo_class as a bare `type`; PPO, SAC and DQN are Algorithms
        algo_class = cast("type[Algorithm]", algo_config.algo_class)
        request = algo_class.default_resource_request(algo_config)
        assert isinstance(request, tune.PlacementGroupFactory)  # always, on the new stack
        return request

    def setup(self, config: dict[str, Any]) -> None:
        import torch

        self._clock_start = _trial_clock_start()
        self.start_seconds = time.monotonic() - self._clock_start  # loading the code
        self._wall_before = 0.0  # wall time of earlier runs (a restore sets it)
        self.trial = trial = TrialConfig.from_tune(config)
        torch.set_num_threads(trial.torch_threads)
        reference_env = TemperatureControlEnv(dataclasses.asdict(trial.env_config))
        plant = reference_env.plant
        rows = fixed_start_rows(plant, trial.evaluation.rows, trial.evaluation.seed)
        mode = planning_mode(trial.action_mode)
        self.yardstick_path = trial.plant.yardsticks.get(mode)
        yardstick = matching_yardstick(self.yardstick_path, plant, mode)
        self.scorer = PlantScorer(plant, trial.action_mode, rows, yardstick)
        self.algo = build_algorithm_config(trial).build_algo()
        self.mirror = LearnerModuleMirror(
            self.algo, reference_env.observation_space, reference_env.action_space
        )
        assert self.algo.config is not None  # a built algorithm has its config
        self.act = greedy_action_function(
            self.mirror.module, reference_env.action_space, self.algo.config.normalize_actions
        )
        self.last_evaluation: PolicyMetrics | None = None
        self.last_evaluation_extra: dict[str, float] = {}
        self._last_result_at = time.monotonic()  # the first step's time is its own
        self.setup_seconds = self._last_result_at - self._clock_start - self.start_seconds

    @property
    def wall_seconds(self) -> float:
        """Wall time of this trial: set-up, iterations, evaluations, checkpoints, and
        what it had used before a restore."""
        return self._wall_before + time.monotonic() - self._clock_start

    def evaluate(self) -> tuple[PolicyMetrics, float]:
        """Greedy policy of the learner's current weights on the fixed start rows, and
        the seconds that took."""
        start = time.perf_counter()
        self.mirror.refresh()
        metrics = self.scorer.evaluate_function(self.trial.algorithm_name, self.act)
        return metrics, time.perf_counter() - start

    def step(self) -> dict[str, Any]:
        result = {k: v for k, v in self.algo.train().items() if k not in _TRAINABLE_KEYS}
        iteration = self.iteration + 1
        if self.last_evaluation is None or iteration % self.trial.evaluation.interval == 0:
            self.last_evaluation, seconds = self.evaluate()
            self.last_evaluation_extra = {EVALUATION_SECONDS: seconds, EVALUATED_AT: iteration}
        extra, stop = self.last_evaluation_extra, self.trial.stop
        result.update(evaluation_fields(self.last_evaluation, extra, stop))
        result[ALGORITHM] = self.trial.algorithm_name
        result[DATASET] = self.trial.dataset
        result[ACTION_MODE] = self.trial.action_mode
        result[NODE_ID] = _node_id()
        now = time.monotonic()
        result[TRIAL] = {
            WALL_SECONDS: self.wall_seconds,
            STEP_WALL_SECONDS: now - self._last_result_at,
            START_SECONDS: self.start_seconds,
            SETUP_SECONDS: self.setup_seconds,
            ROWS_PLANNED: rows_planned(),
        }
        self._last_result_at = now
        return result

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        self.algo.save_to_path(checkpoint_dir)
        CheckpointInfo(
            algorithm=self.trial.algorithm_name,
            action_mode=self.trial.action_mode,
            env_config=self.trial.env_config,
            training_iteration=self.iteration,
            evaluation=self.last_evaluation,
            yardstick=self.yardstick_path,
            wall_time_s=self.wall_seconds,
            files=file_sizes(Path(checkpoint_dir)),
        ).write(Path(checkpoint_dir))

    def load_checkpoint(self, checkpoint: str | dict | None) -> None:
        self.algo.restore_from_path(str(checkpoint))
        self.last_evaluation = None  # evaluate the restored weights afresh
        # the budget goes on from the wall time used up to the checkpoint; this
        # process's set-up counts too (it is part of the trial's wall time)
        self._wall_before = CheckpointInfo.read(Path(str(checkpoint))).wall_time_s

    def cleanup(self) -> None:
        self.algo.stop()


def _trial_clock_start() -> float:
    """Where a trial's wall clock starts: when its Ray worker began importing the
    project (:data:`rllib_project.LOADED_AT`), so loading RLlib and torch counts; a
    trainable built in the caller's own process (benchmarks) starts now."""
    import ray

    import rllib_project

    if ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None:
        return rllib_project.LOADED_AT
    return time.monotonic()


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()
