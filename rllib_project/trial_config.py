"""One trial's configuration, typed from the experiment files through Tune to RLlib.

The experiment YAML becomes dataclasses (:mod:`rllib_project.experiment`); a trial
runs on a :class:`TrialConfig`. Between the two sits Tune, whose param space must be
plain data (dicts, lists, numbers) with search-space domains inside: Tune samples it,
saves it (``params.json``, the experiment state ``Tuner.restore`` reads) and hands
each trial the resolved copy. So the typed config crosses Tune as plain data:

* :func:`param_space` lays the dataclasses out as Tune's param space: a grid over the
  algorithms (each with its YAML search spaces as Tune domains), the datasets and the
  seeds;
* :meth:`TrialConfig.from_tune` turns the resolved config a trial receives back into a
  ``TrialConfig``, refusing anything that does not fit (unknown keys, wrong types);
* :meth:`TrialConfig.to_tune` is the plain form of a fixed config (no search spaces),
  for running the trainable directly (benchmarks, tests).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from env.actions import ActionMode
from env.temperature_env import EnvConfig
from env.typed_config import build_dataclass
from rllib_project.experiment import (
    SEARCH_KINDS,
    SEARCH_SPACE_SECTIONS,
    AlgorithmSettings,
    EvaluationSettings,
    StopSettings,
    search_space,
)
from rllib_project.resources import TrialResources
from rllib_project.shape_defaults import PlantShape

ALGORITHM_COLUMN = "algorithm/algorithm"
"""Tune's path of the algorithm name in a trial config (progress table column)."""
ACTION_MODE_COLUMN = "algorithm/action_mode"
DATASET_COLUMN = "plant/dataset"
SEED_COLUMN = "seed"


@dataclass(frozen=True)
class PlantSource:
    """The plant a trial trains on (one of the experiment's datasets): the env config
    minus the action mode (which each algorithm chooses)."""

    dataset: str
    """The dataset's name in the experiment (see ``experiment.dataset_names``)."""
    spec_path: str
    """Dataset spec YAML."""
    model_path: str
    """The fitted process model every trial of the dataset shares (fitted once)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The experiment's overrides of the spec's env section."""
    yardsticks: dict[str, str] = field(default_factory=dict)
    """Planning mode (``discrete``, ``continuous``) -> the experiment's saved yardstick,
    planned once before any trial (:mod:`env.yardstick`); trials replay it. A mode
    without one is planned by each trial itself."""
    shape: PlantShape | None = None
    """The plant's shape, which the algorithms' defaults follow
    (:mod:`rllib_project.shape_defaults`); None: the shape is not known (k-derived
    defaults only)."""


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial needs, search spaces resolved."""

    algorithm: AlgorithmSettings
    plant: PlantSource
    resources: TrialResources
    evaluation: EvaluationSettings
    seed: int = 0
    """RLlib's seed for the trial (networks, exploration, env streams)."""
    stop: StopSettings | None = None
    """The experiment's stop settings: its target ranks the trial's checkpoints
    (:func:`rllib_project.ranking.checkpoint_rank`); None: by score alone."""

    @property
    def algorithm_name(self) -> str:
        return self.algorithm.algorithm

    @property
    def dataset(self) -> str:
        return self.plant.dataset

    @property
    def configuration(self) -> str:
        """A short hash of the algorithm settings as sampled: trials that differ only
        in their seed (runs of one configuration) share it."""
        text = json.dumps(dataclasses.asdict(self.algorithm), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def action_mode(self) -> ActionMode:
        return self.algorithm.action_mode

    @property
    def env_config(self) -> EnvConfig:
        """What RLlib's env runners (and the trial's reference env) are built from."""
        plant = self.plant
        return EnvConfig(
            spec_path=plant.spec_path,
            model_path=plant.model_path,
            action_mode=self.action_mode,
            settings=dict(plant.settings),
        )

    @property
    def torch_threads(self) -> int:
        """The algorithm file's choice; else one while the trial samples in its own
        process, and its whole main CPUs once remote env runners sample (a share of
        three CPUs or more, see :mod:`rllib_project.resources`).

        Why one: below three CPUs sampling, learning and evaluation take turns in one
        process, on networks (64x64) and batches (128-1,024 rows) too small for torch's
        intra-op threads to pay, and on shared cores those threads wait on each other.
        Measured on 2 CPUs shared with other jobs (scripts/profile_iteration.py), two
        threads -> one: SAC 23 -> 120 env steps/s (learner update 3.07 -> 0.18 s and
        evaluation 1.46 -> 0.12 s per iteration), DQN 69 -> 359 env steps/s; a PPO trial
        alone ran about 80 s per iteration with two threads, 5 s with one beside two
        other trials (scripts/bench_tune.py).
        """
        if self.algorithm.torch_threads is not None:
            return self.algorithm.torch_threads
        if self.resources.num_env_runners == 0:
            return 1
        return max(1, int(self.resources.main_cpus))

    @classmethod
    def from_tune(cls, config: Mapping[str, Any]) -> TrialConfig:
        """The config a Tune trial receives (resolved param space, or ``params.json``)."""
        return build_dataclass(cls, config, "Tune trial config")

    def to_tune(self) -> dict[str, Any]:
        """Plain data in the layout :meth:`from_tune` reads (no search spaces)."""
        return dataclasses.asdict(self)


def to_search_space(value: Any) -> Any:
    """YAML search-space mappings (``{loguniform: [a, b]}`` ...) to Tune domains."""
    from ray import tune

    makers: dict[str, Callable[[list[Any]], Any]] = {
        "grid": lambda a: tune.grid_search(list(a)),
        "choice": lambda a: tune.choice(list(a)),
        "uniform": lambda a: tune.uniform(*a),
        "loguniform": lambda a: tune.loguniform(*a),
        "randint": lambda a: tune.randint(*a),
    }
    assert makers.keys() == set(SEARCH_KINDS)  # the kinds experiment.py validates
    space = search_space(value)
    if space is not None:
        kind, args = space
        return makers[kind](args)
    if isinstance(value, dict):
        return {k: to_search_space(v) for k, v in value.items()}
    return value


def param_space(
    algorithms: Iterable[AlgorithmSettings],
    plants: Sequence[PlantSource],
    resources: TrialResources,
    evaluation: EvaluationSettings,
    seeds: Sequence[int],
    stop: StopSettings | None = None,
) -> dict[str, Any]:
    """Tune's param space: the :class:`TrialConfig` layout, a grid over the algorithms
    (each with its own search spaces), the datasets' plants and the seeds. Tune repeats
    the grid ``num_samples`` times, sampling the search spaces anew each time."""
    from ray import tune

    def searchable(settings: AlgorithmSettings) -> dict[str, Any]:
        plain = dataclasses.asdict(settings)
        return {**plain, **{s: to_search_space(plain[s]) for s in SEARCH_SPACE_SECTIONS}}

    return {
        "algorithm": tune.grid_search([searchable(a) for a in algorithms]),
        "plant": tune.grid_search([dataclasses.asdict(p) for p in plants]),
        "resources": dataclasses.asdict(resources),
        "evaluation": dataclasses.asdict(evaluation),
        "seed": tune.grid_search(list(seeds)),
        "stop": None if stop is None else dataclasses.asdict(stop),
    }
