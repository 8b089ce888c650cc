"""Uniform one-step replay for SAC and DQN held in numpy arrays, not in episodes.

Why: profiling an iteration (``scripts/profile_iteration.py``) showed that RLlib's
``EpisodeReplayBuffer`` and the learner connector behind it took about half of SAC's
and DQN's time on this problem: the buffer builds one ``SingleAgentEpisode`` per
sampled transition (slices, an n-step reward through ``scipy.signal.lfilter``, copies)
and the learner connector turns those episodes back into a train batch, Python work
per transition. Stable-Baselines3 indexes preallocated arrays instead. With uniform
replay and one-step returns the two compute the same batch, so this module stores each
sampled transition once in a ring of arrays and hands the learner a ready
``MultiAgentBatch`` (RLlib's ``Learner.update(batch=...)`` takes one and skips the
connector).

It is used only where it computes what RLlib's buffer would: ``EpisodeReplayBuffer``
(uniform), ``n_step`` 1 and a stateless module (:func:`flat_replay_applies`);
prioritised replay, n-step returns or recurrent modules keep RLlib's own training step.
Like RLlib's default (``store_buffer_in_checkpoints`` off), the buffer is not part of
a checkpoint: a restored trial refills it from fresh samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np
from ray.rllib.algorithms.dqn import DQN
from ray.rllib.algorithms.dqn.dqn import calculate_rr_weights
from ray.rllib.algorithms.sac import SAC
from ray.rllib.core import ALL_MODULES, DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    REPLAY_BUFFER_ADD_DATA_TIMER,
    REPLAY_BUFFER_SAMPLE_TIMER,
    SYNCH_WORKER_WEIGHTS_TIMER,
    TD_ERROR_KEY,
    TIMERS,
)
from ray.rllib.utils.replay_buffers.episode_replay_buffer import EpisodeReplayBuffer

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode

N_STEP = "n_step"
"""Column of the n-step horizon of each transition; RLlib's DQN and SAC losses
discount the bootstrap by ``gamma ** n_step``."""
WEIGHTS = "weights"
"""Column of importance weights in RLlib's DQN and SAC losses (1 under uniform replay)."""


class TransitionRing:
    """The latest ``capacity`` one-step transitions, in preallocated arrays.

    Arrays are allocated from the first transitions added (their shapes and dtypes
    are the spaces'), so the ring needs no knowledge of the spaces. When full, the
    oldest transition is overwritten.
    """

    def __init__(self, capacity: int, seed: int | None) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._rng = np.random.default_rng(seed)
        self._arrays: dict[str, np.ndarray] = {}
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add_episodes(self, episodes: Iterable[SingleAgentEpisode]) -> int:
        """Store every transition of the episode chunks an env runner returned; the
        number stored. A chunk's last transition ends the episode only if the chunk
        terminated (a truncated or continuing chunk bootstraps from its last reading)."""
        added = 0
        for episode in episodes:
            steps = len(episode)
            if steps == 0:
                continue
            observations = np.asarray(episode.get_observations())
            terminated = np.zeros(steps, dtype=bool)
            terminated[-1] = bool(episode.is_terminated)
            self._add(
                {
                    Columns.OBS: observations[:-1],
                    Columns.NEXT_OBS: observations[1:],
                    Columns.ACTIONS: np.asarray(episode.get_actions()),
                    Columns.REWARDS: np.asarray(episode.get_rewards(), dtype=np.float32),
                    Columns.TERMINATEDS: terminated,
                }
            )
            added += steps
        return added

    def _add(self, columns: dict[str, np.ndarray]) -> None:
        count = len(columns[Columns.REWARDS])
        if not self._arrays:
            self._arrays = {
                key: np.zeros((self.capacity, *value.shape[1:]), dtype=value.dtype)
                for key, value in columns.items()
            }
        if count > self.capacity:  # only the newest fit
            columns = {key: value[-self.capacity :] for key, value in columns.items()}
            count = self.capacity
        slots = (self._next + np.arange(count)) % self.capacity
        for key, value in columns.items():
            self._arrays[key][slots] = value
        self._next = (self._next + count) % self.capacity
        self._size = min(self._size + count, self.capacity)

    def sample(self, count: int) -> dict[str, np.ndarray]:
        """``count`` transitions drawn uniformly with replacement (as RLlib's uniform
        buffer draws them), with the loss's ``n_step`` and ``weights`` columns."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay ring")
        picks = self._rng.integers(0, self._size, size=count)
        batch = {key: array[picks] for key, array in self._arrays.items()}
        batch[N_STEP] = np.ones(count, dtype=np.float32)
        batch[WEIGHTS] = np.ones(count, dtype=np.float32)
        return batch


def use_flat_replay(config: AlgorithmConfig, algorithm: str) -> None:
    """Replay from the ring (module docstring) where that computes RLlib's own batches."""
    if algorithm in FLAT_REPLAY_CLASSES and flat_replay_applies(config):
        config.algo_class = FLAT_REPLAY_CLASSES[algorithm]


def flat_replay_applies(config: AlgorithmConfig) -> bool:
    """Whether the ring computes the same train batches as RLlib's buffer would here:
    uniform ``EpisodeReplayBuffer``, one-step returns, a stateless module."""
    buffer_type = config.replay_buffer_config.get("type")  # type: ignore[attr-defined]
    uniform = buffer_type in (EpisodeReplayBuffer, "EpisodeReplayBuffer")
    stateless = not config.model_config.get("use_lstm", False)
    return uniform and getattr(config, "n_step", 1) == 1 and stateless


class _FlatReplayTrainingStep:
    """RLlib's DQN/SAC training step (``DQN._training_step_new_api_stack``, Ray 2.60)
    with the ring in place of the episode buffer; everything else (sampling, replay
    ratio, learning start, timers, weight sync) is RLlib's. Mixed into subclasses of
    :class:`DQN` and :class:`SAC` below."""

    config: Any
    metrics: Any
    env_runner_group: Any
    learner_group: Any
    _ring: TransitionRing | None = None

    def _training_step_new_api_stack(self) -> None:
        if self._ring is None:
            self._ring = TransitionRing(
                int(self.config.replay_buffer_config["capacity"]), self.config.seed
            )
        ring = self._ring
        store_weight, sample_and_train_weight = map(int, calculate_rr_weights(self.config))
        for _ in range(store_weight):
            with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
                sampled = synchronous_parallel_sample(
                    worker_set=self.env_runner_group,
                    concat=True,
                    sample_timeout_s=self.config.sample_timeout_s,
                    _uses_new_env_runners=True,
                    _return_metrics=True,
                )
            # with _return_metrics on the new stack: (episodes, metrics per runner)
            episodes, env_runner_results = cast("tuple[list[SingleAgentEpisode], Any]", sampled)
            self.metrics.aggregate(env_runner_results, key=ENV_RUNNER_RESULTS)
            with self.metrics.log_time((TIMERS, REPLAY_BUFFER_ADD_DATA_TIMER)):
                ring.add_episodes(episodes)

        steps_sampled = self.metrics.peek(
            (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0
        )
        if steps_sampled < self.config.num_steps_sampled_before_learning_starts or not len(ring):
            return
        timesteps = {
            NUM_ENV_STEPS_SAMPLED_LIFETIME: steps_sampled,
            NUM_AGENT_STEPS_SAMPLED_LIFETIME: self.metrics.peek(
                (ENV_RUNNER_RESULTS, NUM_AGENT_STEPS_SAMPLED_LIFETIME), default={}
            ),
        }
        learner_results: list[dict[str, Any]] = []
        for _ in range(sample_and_train_weight):
            with self.metrics.log_time((TIMERS, REPLAY_BUFFER_SAMPLE_TIMER)):
                size = self.config.total_train_batch_size
                batch = MultiAgentBatch(
                    {DEFAULT_MODULE_ID: SampleBatch(ring.sample(size))}, env_steps=size
                )
            with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
                learner_results = self.learner_group.update(batch=batch, timesteps=timesteps)
                for result in learner_results:  # per-sample TD errors: for priorities only
                    for module_results in result.values():
                        module_results.pop(TD_ERROR_KEY, None)
                self.metrics.aggregate(learner_results, key=LEARNER_RESULTS)
        with self.metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
            self.env_runner_group.sync_weights(
                from_worker_or_learner_group=self.learner_group,
                policies=set(learner_results[0].keys()) - {ALL_MODULES},
                global_vars=None,
                inference_only=True,
            )


class FlatReplayDQN(_FlatReplayTrainingStep, DQN):
    """RLlib's DQN with replay in arrays (module docstring)."""


class FlatReplaySAC(_FlatReplayTrainingStep, SAC):
    """RLlib's SAC with replay in arrays (module docstring)."""


FLAT_REPLAY_CLASSES: dict[str, type] = {"DQN": FlatReplayDQN, "SAC": FlatReplaySAC}
"""Algorithm name -> its flat-replay class."""
