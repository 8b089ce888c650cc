"""Experiment files: ``tune_configs/compare.yaml`` and one YAML per algorithm.

Both are validated before Ray starts: unknown keys, wrong types, negative budgets,
unknown algorithms and unwritable storage paths are refused with one line naming the
file and the key. RLlib settings (``training``, ``env_runners``, ``model``) are checked
against the installed RLlib's own signatures, so a typo in a hyper-parameter name is
caught too.

Search spaces are written in YAML as one-key mappings in place of a value::

    training:
      lr: {loguniform: [1.0e-4, 1.0e-3]}
      num_epochs: {choice: [4, 8]}
      gamma: {grid: [0.95, 0.99]}
      minibatch_size: {randint: [64, 257]}
      lambda_: {uniform: [0.9, 1.0]}

An experiment trains on one dataset (``dataset: spec.yaml``) or several
(``datasets: [a.yaml, b.yaml]``), each algorithm ``seeds`` times (distinct seeds) per
search-space sample: Tune runs every algorithm x dataset x seed x sample combination.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from env.actions import ActionMode
from env.errors import InputError
from env.spec import EnvSettings
from env.typed_config import build_dataclass, read_yaml_mapping

AlgorithmName = Literal["PPO", "SAC", "DQN"]
ALGORITHM_NAMES: tuple[str, ...] = ("PPO", "SAC", "DQN")
SEARCH_KINDS = ("grid", "choice", "uniform", "loguniform", "randint")
SEARCH_SPACE_SECTIONS = ("training", "env_runners", "model")
"""The sections of an algorithm's YAML that may hold search spaces."""
ALLOWED_ACTION_MODES: dict[str, tuple[str, ...]] = {
    "PPO": ("discrete", "continuous"),
    "SAC": ("continuous",),
    "DQN": ("discrete", "discrete_flat"),  # discrete: one Q-head per control
}
# Derived from the cluster by the runner (see resources.py), never set per algorithm.
RESOURCE_KEYS = (
    "num_env_runners",
    "num_cpus_per_env_runner",
    "num_gpus_per_env_runner",
    "custom_resources_per_env_runner",
)
ENV_RUNNER_KEYS = (
    "num_envs_per_env_runner",
    "rollout_fragment_length",
    "gym_env_vectorize_mode",
    "batch_mode",
    "explore",
)


@dataclass(frozen=True)
class StopSettings:
    """When a trial stops: whichever limit comes first (all optional)."""

    training_iterations: int | None = None
    env_steps: int | None = None
    wall_time_s: float | None = None
    """Wall time of each trial in seconds, set-up and evaluation included (the trial
    stops before an iteration that would end past it)."""
    success_rate: float | None = None
    """Target: stop once the evaluation success rate over the rows the planner can
    solve reaches this (0..1) ..."""
    moves_ratio: float | None = None
    """... and, if given, the moves to band are at most this many times the planner's ..."""
    actuations_ratio: float | None = None
    """... and, if given, the setting changes at most this many times the planner's
    (for lagging plants, where a policy can arrive in time but saw at the valves)."""

    def __post_init__(self) -> None:
        for name in ("training_iterations", "env_steps", "wall_time_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"stop.{name} must be positive, got {value}")
        if self.success_rate is not None and not 0.0 < self.success_rate <= 1.0:
            raise ValueError(f"stop.success_rate must be in (0, 1], got {self.success_rate}")
        if self.moves_ratio is not None and (self.success_rate is None or self.moves_ratio < 1):
            raise ValueError("stop.moves_ratio must be >= 1 and goes with stop.success_rate")
        if self.actuations_ratio is not None and (
            self.success_rate is None or not self.actuations_ratio > 0
        ):
            raise ValueError("stop.actuations_ratio must be > 0 and goes with stop.success_rate")
        if all(getattr(self, f.name) is None for f in dataclasses.fields(self)):
            raise ValueError("stop needs at least one limit (e.g. training_iterations)")


@dataclass(frozen=True)
class EvaluationSettings:
    """Greedy evaluation from a fixed, seeded set of start rows."""

    interval: int = 1
    """Training iterations between evaluations (the checkpoint frequency too)."""
    rows: int | None = None
    """How many start rows (a seeded subset); None = every valid row of the CSV."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise ValueError(f"evaluation.interval must be >= 1, got {self.interval}")
        if self.rows is not None and self.rows < 1:
            raise ValueError(f"evaluation.rows must be >= 1, got {self.rows}")


@dataclass(frozen=True)
class CheckpointSettings:
    num_to_keep: int = 2
    """Best checkpoints kept per trial, besides its newest (those meeting the target
    first, then by the evaluation score)."""

    def __post_init__(self) -> None:
        if self.num_to_keep < 1:
            raise ValueError(f"checkpoint.num_to_keep must be >= 1, got {self.num_to_keep}")


@dataclass(frozen=True)
class ResourceSettings:
    max_concurrent_trials: int | None = None
    """Default: as many trials at once as the cluster's CPUs hold at half a CPU each
    (every trial, if fewer); the others wait in Tune's queue (see resources.py)."""
    max_env_runners_per_trial: int = 4
    """Upper bound of remote env runners per trial when the cluster has CPUs to spare
    (below 2, trials always sample in their own process)."""
    cpus: float | None = None
    """CPUs to plan for; default: what the Ray cluster reports."""

    def __post_init__(self) -> None:
        if self.max_concurrent_trials is not None and self.max_concurrent_trials < 1:
            raise ValueError("resources.max_concurrent_trials must be >= 1")
        if self.max_env_runners_per_trial < 0:
            raise ValueError("resources.max_env_runners_per_trial must be >= 0")
        if self.cpus is not None and self.cpus <= 0:
            raise ValueError("resources.cpus must be positive")


SchedulerKind = Literal["asha"]
SchedulerTimeAttribute = Literal["training_iteration", "env_steps", "time_total_s"]


@dataclass(frozen=True)
class SchedulerSettings:
    """Early stopping of poor trials (Tune's ASHA), on the evaluation score.

    Each dataset x algorithm is its own competition (see :mod:`rllib_project.scheduling`):
    a PPO trial is only ever compared with PPO trials on the same dataset.
    """

    kind: SchedulerKind = "asha"
    time_attr: SchedulerTimeAttribute = "training_iteration"
    """What progress is measured in: iterations, env steps sampled, or training seconds."""
    grace_period: float = 1
    """Progress every trial gets before it can be stopped."""
    reduction_factor: float = 3
    """At each rung only the best 1/reduction_factor go on."""
    max_t: float | None = None
    """Progress after which the scheduler stops any trial; default: the stop budget in
    the same unit, if there is one, else unlimited (the stop settings end trials)."""

    def __post_init__(self) -> None:
        if self.grace_period <= 0:
            raise ValueError("scheduler.grace_period must be positive")
        if self.reduction_factor <= 1:
            raise ValueError("scheduler.reduction_factor must be > 1")
        if self.max_t is not None and self.max_t < self.grace_period:
            raise ValueError("scheduler.max_t must be >= scheduler.grace_period")


@dataclass(frozen=True)
class FailureSettings:
    max_failures: int = 2
    """Times a crashed trial is restarted from its last checkpoint."""

    def __post_init__(self) -> None:
        if self.max_failures < 0:
            raise ValueError("failure.max_failures must be >= 0")


@dataclass(frozen=True)
class ExperimentFile:
    """The experiment YAML as written (paths relative to the file)."""

    algorithms: dict[str, str]
    """Algorithm name -> its YAML (PPO, SAC, DQN)."""
    stop: StopSettings
    dataset: str | None = None
    """Dataset spec YAML (one dataset) ..."""
    datasets: list[str] | None = None
    """... or several, trained on in one run (each trial on one of them)."""
    storage_path: str = "../results"
    """Where Tune writes checkpoints; on a cluster a path every node can reach."""
    name: str = "compare"
    model: str | None = None
    """A fitted model JSON for ``dataset``; default: fit from each dataset and save in
    the experiment."""
    samples_per_algorithm: int = 1
    """Search-space samples per algorithm and dataset (see the algorithm YAMLs)."""
    seeds: int = 1
    """Runs of every algorithm x dataset x sample, each with its own seed: the
    statistics (interquartile mean, bootstrap intervals) are over these runs."""
    scheduler: SchedulerSettings | None = None
    """Stop poor trials early (e.g. ``scheduler: {kind: asha}``); default: none."""
    env: dict[str, Any] = field(default_factory=dict)
    """Overrides of the dataset spec's env section for training (e.g. noise_std)."""
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings)
    resources: ResourceSettings = field(default_factory=ResourceSettings)
    failure: FailureSettings = field(default_factory=FailureSettings)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples_per_algorithm < 1:
            raise ValueError("samples_per_algorithm must be >= 1")
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")
        if self.dataset is not None and self.datasets is not None:
            raise ValueError("give either dataset (one spec) or datasets (a list), not both")
        if self.dataset is None and self.datasets is None:
            raise ValueError("dataset (one spec) or datasets (a list of specs) is required")
        if self.datasets is not None and not self.datasets:
            raise ValueError("datasets must list at least one dataset spec")
        if self.datasets is not None and self.model is not None:
            raise ValueError("model goes with a single dataset; with datasets each is fitted")
        if not self.algorithms:
            raise ValueError("algorithms must name at least one algorithm")
        if not self.name or any(c in self.name for c in "/\\"):
            raise ValueError(f"name must be a plain folder name, got {self.name!r}")


@dataclass(frozen=True)
class AlgorithmSettings:
    """One algorithm's settings: as its YAML gives them (search spaces included) and,
    inside a trial, with the values Tune sampled (see :mod:`rllib_project.trial_config`)."""

    algorithm: AlgorithmName
    action_mode: ActionMode
    training: dict[str, Any] = field(default_factory=dict)
    env_runners: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    torch_threads: int | None = None
    """Intra-op threads of the learner's torch; default: one while the trial samples in
    its own process, else its main CPUs (see ``TrialConfig.torch_threads``)."""


def search_space(value: Any) -> tuple[str, Any] | None:
    """``(kind, arguments)`` when ``value`` is a YAML search space (a mapping with exactly
    one key, a kind of :data:`SEARCH_KINDS`, e.g. ``{loguniform: [1e-4, 1e-2]}``), else
    None: the one reading of "is this a search space" that validation, the trial count
    and the Tune param space share."""
    if isinstance(value, dict) and len(value) == 1:
        kind, args = next(iter(value.items()))
        if kind in SEARCH_KINDS:
            return kind, args
    return None


def grid_points(settings: AlgorithmSettings) -> int:
    """The combinations of ``{grid: [...]}`` values in one algorithm's search-space
    sections (1 without a grid): Tune runs each of them ``samples_per_algorithm`` times."""

    def points(value: Any) -> int:
        space = search_space(value)
        if space is not None:
            kind, args = space
            return len(args) if kind == "grid" else 1
        if isinstance(value, dict):
            return math.prod(points(v) for v in value.values())
        return 1

    return math.prod(points(getattr(settings, s)) for s in SEARCH_SPACE_SECTIONS)


@dataclass(frozen=True)
class DatasetSource:
    """One dataset of an experiment, as the experiment file names it."""

    name: str
    """Short, unique within the experiment: trial names, tables and ``--dataset NAME``."""
    spec: Path
    model: Path | None = None
    """A fitted model to use instead of fitting one (single-dataset experiments)."""


@dataclass(frozen=True)
class Experiment:
    """A validated experiment: absolute paths and every algorithm's settings."""

    source: Path
    file: ExperimentFile
    datasets: tuple[DatasetSource, ...]
    storage_path: Path
    algorithms: dict[str, AlgorithmSettings]

    @property
    def name(self) -> str:
        return self.file.name

    @property
    def n_trials(self) -> int:
        """Trials Tune runs: per algorithm, its YAML's grid points x datasets x seeds x
        samples (Tune expands a grid inside one algorithm's settings for that algorithm
        only; the resource plan and the progress lines count on this number)."""
        file = self.file
        per_algorithm = len(self.datasets) * file.seeds * file.samples_per_algorithm
        return per_algorithm * sum(grid_points(s) for s in self.algorithms.values())

    def seeds(self) -> list[int]:
        """The distinct seeds of the runs, drawn from the file's ``seed``.

        Random, not ``seed + i``: RLlib seeds a trial's env runners with ``seed +
        worker index`` and Gymnasium a runner's vectorised envs with ``seed + i``, so
        consecutive trial seeds would give two trials the same environment streams.
        """
        import numpy as np

        rng = np.random.default_rng(self.file.seed)
        seeds: list[int] = []
        while len(seeds) < self.file.seeds:
            value = int(rng.integers(0, 2**31 - 1))
            if value not in seeds:
                seeds.append(value)
        return seeds


def _resolve(base: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (base / path).resolve()


def _check_search_spaces(source: Path, where: str, values: dict[str, Any]) -> None:
    for key, value in values.items():
        space = search_space(value)
        if space is not None:
            kind, args = space
            if not isinstance(args, list) or not args:
                raise InputError(source, f"{kind} needs a non-empty list", f"{where}.{key}")
            if kind in ("uniform", "loguniform", "randint") and len(args) != 2:
                raise InputError(source, f"{kind} needs [low, high]", f"{where}.{key}")
            if kind in ("uniform", "loguniform", "randint"):
                low, high = args
                if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in args):
                    raise InputError(source, f"{kind} bounds must be numbers", f"{where}.{key}")
                if low >= high or (kind == "loguniform" and low <= 0):
                    raise InputError(
                        source,
                        f"{kind} bounds must satisfy 0 < low < high"
                        if kind == "loguniform"
                        else f"{kind} needs low < high",
                        f"{where}.{key}",
                    )
        elif isinstance(value, dict) and any(k in SEARCH_KINDS for k in value):
            raise InputError(
                source,
                f"a search space is a mapping with exactly one key ({', '.join(SEARCH_KINDS)})",
                f"{where}.{key}",
            )


def _check_rllib_keys(source: Path, spec: AlgorithmSettings) -> None:
    """Refuse hyper-parameter names the installed RLlib does not know."""
    from rllib_project.algorithms import allowed_model_keys, allowed_training_keys

    allowed = allowed_training_keys(spec.algorithm)
    for key in spec.training:
        if key not in allowed:
            raise InputError(
                source, f"unknown {spec.algorithm} training setting", f"training.{key}"
            )
    for key in spec.env_runners:
        if key in RESOURCE_KEYS:
            raise InputError(
                source,
                "is derived from the cluster's CPUs; set resources in the experiment file instead",
                f"env_runners.{key}",
            )
        if key not in ENV_RUNNER_KEYS:
            raise InputError(
                source,
                f"unknown env_runners setting (allowed: {', '.join(ENV_RUNNER_KEYS)})",
                f"env_runners.{key}",
            )
    for key in spec.model:
        if key not in allowed_model_keys():
            raise InputError(source, "unknown model setting", f"model.{key}")


def dataset_names(specs: list[Path]) -> list[str]:
    """Short unique names for dataset specs: the file name without ``.yaml``, with as
    many parent folders in front (``a_spec``, ``b_spec``) as it takes to tell equal
    names apart. Characters other than letters, digits, ``.``, ``-`` and ``_`` become
    ``-``, so a name is a valid part of a folder name."""

    def name(spec: Path, depth: int) -> str:
        parts = [*spec.parent.parts[len(spec.parent.parts) - depth :], spec.stem]
        return re.sub(r"[^\w.-]", "-", "_".join(p for p in parts if p not in ("", "/")))

    depths = [0] * len(specs)
    while True:
        names = [name(spec, depth) for spec, depth in zip(specs, depths, strict=True)]
        clashing = [i for i, n in enumerate(names) if names.count(n) > 1]
        if not clashing:
            return names
        for i in clashing:
            depths[i] += 1


def _dataset_sources(path: Path, file: ExperimentFile, base: Path) -> tuple[DatasetSource, ...]:
    key = "dataset" if file.dataset is not None else "datasets"
    listed = [file.dataset] if file.dataset is not None else list(file.datasets or [])
    specs = [_resolve(base, value) for value in listed]
    for index, spec in enumerate(specs):
        where = key if file.dataset is not None else f"datasets[{index}]"
        if not spec.exists():
            raise InputError(path, f"dataset spec {spec} not found", where)
        if spec in specs[:index]:
            raise InputError(path, f"{listed[index]} is listed twice", where)
    model = None if file.model is None else _resolve(base, file.model)
    if model is not None and not model.exists():
        raise InputError(path, f"model {model} not found", "model")
    return tuple(
        DatasetSource(name, spec, model)
        for name, spec in zip(dataset_names(specs), specs, strict=True)
    )


def load_algorithm_settings(path: Path, expected: str) -> AlgorithmSettings:
    data = read_yaml_mapping(path)
    spec = build_dataclass(AlgorithmSettings, data, path)
    if spec.algorithm != expected:
        raise InputError(
            path, f"file is for {spec.algorithm}, but listed as {expected}", "algorithm"
        )
    if spec.action_mode not in ALLOWED_ACTION_MODES[spec.algorithm]:
        raise InputError(
            path,
            f"{spec.algorithm} cannot use action_mode {spec.action_mode!r} "
            f"(allowed: {', '.join(ALLOWED_ACTION_MODES[spec.algorithm])})",
            "action_mode",
        )
    if spec.torch_threads is not None and spec.torch_threads < 1:
        raise InputError(path, "must be >= 1", "torch_threads")
    for section in SEARCH_SPACE_SECTIONS:
        _check_search_spaces(path, section, getattr(spec, section))
    _check_rllib_keys(path, spec)
    return spec


def check_storage_path(source: Path, path: Path) -> None:
    """The storage path must be a folder we can create and write into."""
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(source, f"{existing} is not a folder", "storage_path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(source, f"{existing} is not writable", "storage_path")
    if path.exists():
        try:
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as exc:
            raise InputError(
                source, f"cannot write into {path} ({exc.strerror})", "storage_path"
            ) from exc


def load_experiment(path: str | Path, storage_path: str | Path | None = None) -> Experiment:
    """Read and validate an experiment file and the algorithm files it names.

    ``storage_path`` overrides the file's (cluster jobs point it at shared storage).
    """
    path = Path(path)
    data = read_yaml_mapping(path)
    file = build_dataclass(ExperimentFile, data, path)
    base = path.resolve().parent
    for name in file.algorithms:
        if name not in ALGORITHM_NAMES:
            raise InputError(
                path,
                f"unknown algorithm {name!r} (known: {', '.join(ALGORITHM_NAMES)})",
                "algorithms",
            )
    algorithms = {}
    for name, relative in file.algorithms.items():
        algo_path = _resolve(base, relative)
        if not algo_path.exists():
            raise InputError(path, f"{algo_path} not found", f"algorithms.{name}")
        algorithms[name] = load_algorithm_settings(algo_path, name)
    datasets = _dataset_sources(path, file, base)
    if storage_path is not None:
        storage = _resolve(Path.cwd(), str(storage_path))
        check_storage_path(Path("--storage-path"), storage)
    else:
        storage = _resolve(base, file.storage_path)
        check_storage_path(path, storage)
    env_keys = {f.name for f in dataclasses.fields(EnvSettings)}
    for key in file.env:
        if key not in env_keys:
            raise InputError(path, "unknown env setting", f"env.{key}")
    return Experiment(path.resolve(), file, datasets, storage, algorithms)
