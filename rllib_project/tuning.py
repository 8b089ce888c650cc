"""``rllib-project tune``: PPO, SAC and DQN side by side in one Tune run.

How it maps onto Ray's own machinery:

* each dataset's process model is fitted once, before any trial
  (:func:`prepare_dataset`), and shared by its trials as a file;
* one ``tune.Tuner`` over :class:`PlantTrainable`, whose param space
  (:func:`rllib_project.trial_config.param_space`) grid-searches the algorithms (each
  with its own YAML search space), the datasets and the seeds, ``num_samples`` times;
  as many run at once as the cluster holds (the variant generator's
  ``max_concurrent``), the others queue; resources are derived from the cluster
  (:mod:`rllib_project.resources`);
* optionally Tune's ASHA scheduler stops poor trials early, one competition per
  dataset x algorithm (:mod:`rllib_project.scheduling`);
* ``RunConfig(storage_path=..., stop=..., checkpoint_config=CheckpointConfig(...),
  failure_config=FailureConfig(max_failures=...))``: Tune stops trials (budget,
  target or a finish request, :mod:`rllib_project.stopping`), keeps the top
  checkpoints per trial by ``evaluation/score`` and restarts crashed trials from their
  last checkpoint;
* ``Tuner.restore(..., resume_unfinished=True, resume_errored=True)`` continues an
  interrupted run: finished trials stay finished;
* afterwards the best checkpoint of each dataset x algorithm and a record of every
  trial go into ``best.json`` in the experiment folder
  (:class:`rllib_project.manifest.Manifest`, written atomically).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from env.errors import InputError
from env.files import write_json_atomic
from env.model import PROCESS_MODEL_FILE
from env.plant import load_plant
from rllib_project.experiment import DatasetSource, Experiment, StopSettings, load_experiment
from rllib_project.manifest import MANIFEST_FILE, DatasetEntry, Manifest
from rllib_project.resources import TrialResources, cluster_node_cpus, plan_trial_resources
from rllib_project.trial_config import (
    ACTION_MODE_COLUMN,
    ALGORITHM_COLUMN,
    DATASET_COLUMN,
    SEED_COLUMN,
    PlantSource,
    TrialConfig,
    param_space,
)

if TYPE_CHECKING:
    from ray.tune import Result, ResultGrid, Tuner
    from ray.tune.experiment import Trial

    from rllib_project.stopping import PlantStopper

EXPERIMENT_SNAPSHOT = "experiment.json"
"""The resolved configuration, saved in the experiment folder when a run starts."""


# --------------------------------------------------------------------------- ray


def prepare_ray_environment(address: str | None) -> str | None:
    """Settings that must be in place before Ray is first imported; returns the address.

    Without a cluster address, the run starts its own single-machine Ray instance; with
    multi-node support switched off Ray binds every service to 127.0.0.1 instead of the
    host's address (seen with ``ss -ltn``). Ray reads that switch when it is imported,
    so this runs before anything imports Ray (if Ray was imported already, those
    settings are left as they are). Token authentication (the Ray 2.60 default) stays on
    either way. Ray's known-harmless notices are hidden
    (:mod:`rllib_project.ray_notices`).
    """
    from rllib_project.ray_notices import hide_harmless_notices

    hide_harmless_notices()
    address = address or os.environ.get("RAY_ADDRESS")
    if "ray" not in sys.modules:  # read when Ray is imported: setting them later breaks it
        if not address:
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # Token authentication on, said explicitly (Ray's default only warns about it);
        # a local instance creates ~/.ray/auth_token if missing, clients send it.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    # Our own progress table (CLIReporter) instead of Tune's new output engine.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune's experiment-state sync warning fires on every short run; it is advice only.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    return address


def init_ray(address: str | None) -> None:
    """Connect to a cluster, or start a local instance (see prepare_ray_environment).

    Without an address the instance is always new (``address="local"``): a bare
    ``ray.init()`` would join whatever cluster ``ray start`` last recorded in
    ``/tmp/ray/ray_current_cluster`` on this machine, even a stopped or unreachable one,
    and hang there instead of starting.
    """
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", include_dashboard=False, log_to_driver=False)


# --------------------------------------------------------------------------- spaces


def experiment_param_space(
    experiment: Experiment, plants: Sequence[PlantSource], plan: TrialResources
) -> dict[str, Any]:
    """Tune's param space of an experiment (see :func:`param_space`)."""
    return param_space(
        experiment.algorithms.values(),
        plants,
        plan,
        experiment.file.evaluation,
        experiment.seeds(),
    )


def stop_criteria(experiment: Experiment, experiment_dir: Path | None) -> PlantStopper:
    """Tune stopper of a trial: budget limits, the planner-relative target, or a
    finish request in ``experiment_dir`` (see :mod:`rllib_project.stopping`)."""
    from rllib_project.stopping import PlantStopper

    return PlantStopper(
        **dataclasses.asdict(experiment.file.stop),
        experiment_dir=None if experiment_dir is None else str(experiment_dir),
    )


# --------------------------------------------------------------------------- datasets

DATASETS_DIR = "datasets"
"""Inside the experiment folder: one folder per dataset with what its trials share."""


def dataset_dir(experiment_dir: Path, name: str) -> Path:
    return experiment_dir / DATASETS_DIR / name


def prepare_dataset(
    experiment: Experiment, dataset: DatasetSource, experiment_dir: Path
) -> PlantSource:
    """Everything the trials of one dataset share, built once before any trial starts:
    the data validated and the process model fitted (or the given one checked), saved in
    ``<experiment>/datasets/<name>/``. Returns the plant the trials are given."""
    start = time.perf_counter()
    print(f"dataset {dataset.name}: {dataset.spec} ...", flush=True)
    plant = load_plant(dataset.spec, dataset.model)  # validates data + model
    folder = dataset_dir(experiment_dir, dataset.name)
    folder.mkdir(parents=True, exist_ok=True)
    model = dataset.model or plant.model.save(folder / PROCESS_MODEL_FILE)
    print(
        f"dataset {dataset.name}: {plant.data.n_rows if plant.data else '?'} rows, "
        f"{len(plant.spec.control_names)} controls, model {plant.model.family} "
        f"({time.perf_counter() - start:.1f} s)",
        flush=True,
    )
    return PlantSource(dataset.name, str(dataset.spec), str(model), dict(experiment.file.env))


# --------------------------------------------------------------------------- run


def trial_dirname(trial: Trial) -> str:
    """Short trial folders, ``<algorithm>_<dataset>_<trial id>``, instead of every
    hyper-parameter."""
    from rllib_project.stopping import trial_name

    config = TrialConfig.from_tune(trial.config)
    return trial_name(config.algorithm_name, config.dataset, trial.trial_id)


def progress_reporter() -> Any:
    """Our progress table: a row per trial, the columns a newcomer needs."""
    from ray import tune

    from rllib_project.metrics import (
        ENV_STEPS,
        TIME_TOTAL_S,
        TRAINING_ITERATION,
        evaluation_metric,
    )

    return tune.CLIReporter(
        metric_columns={
            TRAINING_ITERATION: "iter",
            ENV_STEPS: "env steps",
            TIME_TOTAL_S: "time (s)",
            evaluation_metric("success_rate"): "success",
            evaluation_metric("mean_moves_to_band"): "moves",
            evaluation_metric("moves_ratio"): "moves/opt",
            evaluation_metric("mean_return"): "return",
        },
        parameter_columns={
            ALGORITHM_COLUMN: "algorithm",
            DATASET_COLUMN: "dataset",
            SEED_COLUMN: "seed",
            ACTION_MODE_COLUMN: "actions",
        },
        max_report_frequency=30,
        sort_by_metric=False,
    )


def build_tuner(
    experiment: Experiment,
    experiment_dir: Path,
    space: dict[str, Any],
    plan: TrialResources,
    finish_requests: bool = True,
) -> Tuner:
    """The Tuner of a run; ``finish_requests=False`` ignores ``tune --finish`` (benchmarks)."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from rllib_project.metrics import SCORE
    from rllib_project.scheduling import build_scheduler
    from rllib_project.trainable import PlantTrainable

    file = experiment.file
    interval = file.evaluation.interval
    return tune.Tuner(
        PlantTrainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            num_samples=file.samples_per_algorithm,
            # the generator enforces the limit (Tune ignores TuneConfig's with a generator)
            search_alg=BasicVariantGenerator(
                random_state=file.seed, max_concurrent=plan.max_concurrent_trials
            ),
            scheduler=build_scheduler(file.scheduler, file.stop),
            reuse_actors=False,
            trial_dirname_creator=trial_dirname,
            trial_name_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=experiment_dir.name,
            storage_path=str(experiment_dir.parent),
            stop=stop_criteria(experiment, experiment_dir if finish_requests else None),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=file.checkpoint.num_to_keep,
                checkpoint_score_attribute=SCORE,
                checkpoint_score_order="max",
                checkpoint_frequency=interval,
                # a final checkpoint is only scored correctly if it was just evaluated
                checkpoint_at_end=interval == 1,
            ),
            failure_config=tune.FailureConfig(max_failures=file.failure.max_failures),
            progress_reporter=progress_reporter(),
            verbose=1,
        ),
    )


def new_experiment_dir(experiment: Experiment) -> Path:
    """``<storage>/<name>_<UTC time>``: a fresh folder per run, never mixed."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return experiment.storage_path / f"{experiment.name}_{stamp}"


def run_tune(
    experiment_file: Path, address: str | None = None, storage_path: Path | None = None
) -> Path:
    """Run an experiment; returns the experiment folder (holding ``best.json``)."""
    address = prepare_ray_environment(address)
    experiment = load_experiment(experiment_file, storage_path)
    experiment_dir = new_experiment_dir(experiment)
    init_ray(address)
    plan = plan_trial_resources(cluster_node_cpus(), experiment.n_trials, experiment.file.resources)
    experiment_dir.mkdir(parents=True, exist_ok=False)
    print(f"experiment: {experiment_dir}", flush=True)
    plants = [prepare_dataset(experiment, d, experiment_dir) for d in experiment.datasets]
    write_json_atomic(experiment_dir / EXPERIMENT_SNAPSHOT, snapshot(experiment, plants, plan))
    print(
        f"{describe_trials(experiment, plan)}\n"
        f"to end early, keeping what was learned: rllib-project tune --finish {experiment_dir}",
        flush=True,
    )
    space = experiment_param_space(experiment, plants, plan)
    work_from(experiment_dir)
    results = fit_or_read_back(build_tuner(experiment, experiment_dir, space, plan), experiment_dir)
    finish(experiment_dir, results)
    return experiment_dir


def describe_trials(experiment: Experiment, plan: TrialResources) -> str:
    """What the run will do, in one line: the grid and how much runs at once."""
    file = experiment.file
    queued = experiment.n_trials > plan.max_concurrent_trials
    return (
        f"trials: {len(experiment.algorithms)} algorithm(s) x {len(experiment.datasets)} "
        f"dataset(s) x {file.seeds} seed(s) x {file.samples_per_algorithm} sample(s) = "
        f"{experiment.n_trials}, {plan.max_concurrent_trials} at once"
        f"{' (the others queue)' if queued else ''}, each {plan.main_cpus:g} CPU + "
        f"{plan.num_env_runners} env runner(s)"
        f"{'; ASHA stops poor trials early' if file.scheduler else ''}"
    )


def work_from(experiment_dir: Path) -> None:
    """Make the experiment folder the driver's working directory.

    A Ray job's driver starts inside the job's uploaded working directory, which Ray
    deletes once no worker of that node uses it any more; where two raylets share one
    session folder (two nodes on one machine) that happens while the driver still runs,
    and Tune's result analysis, which resolves paths against the working directory,
    then fails with ``FileNotFoundError``. Every path is absolute by now, so the driver
    works from the experiment folder, which exists as long as the run does.
    """
    os.chdir(experiment_dir)


def fit_or_read_back(tuner: Tuner, experiment_dir: Path) -> ResultGrid:
    """``tuner.fit()``; if Tune fails after the trials (its result analysis), the results
    are read back from the experiment folder instead of being lost with the run."""
    from ray import tune

    from rllib_project.trainable import PlantTrainable

    try:
        return tuner.fit()
    except Exception as exc:
        if not tune.Tuner.can_restore(str(experiment_dir)):
            raise
        print(
            f"warning: Tune failed after the trials ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); reading the results saved in "
            f"{experiment_dir}",
            flush=True,
        )
        return tune.Tuner.restore(str(experiment_dir), trainable=PlantTrainable).get_results()


def each(results: ResultGrid) -> list[Result]:
    """The results of a ResultGrid (indexable, but not typed as iterable)."""
    return [results[i] for i in range(len(results))]


class RunInterrupted(Exception):
    """Tune stopped before every trial finished (Ctrl-C); the run can be resumed."""


def finish(experiment_dir: Path, results: ResultGrid) -> None:
    """Write the manifest, unless the run was interrupted before all trials ended."""
    from ray.tune.result import DONE

    unfinished = [r for r in each(results) if r.error is None and not (r.metrics or {}).get(DONE)]
    if unfinished:
        raise RunInterrupted(
            f"{len(unfinished)} trial(s) unfinished; continue with: "
            f"rllib-project tune --resume {experiment_dir}"
        )
    write_manifest(experiment_dir, results)


def experiment_folder(experiment_dir: Path) -> Path:
    """An experiment folder made by ``tune`` (absolute), or an InputError."""
    experiment_dir = experiment_dir.resolve()
    if not (experiment_dir / EXPERIMENT_SNAPSHOT).exists():
        raise InputError(experiment_dir, f"not an experiment folder (no {EXPERIMENT_SNAPSHOT})")
    return experiment_dir


def resume_tune(experiment_dir: Path, address: str | None = None) -> Path:
    """Continue an interrupted run from its last checkpoints."""
    address = prepare_ray_environment(address)  # before Ray is imported
    experiment_dir = experiment_folder(experiment_dir)
    from ray import tune

    from rllib_project.trainable import PlantTrainable

    init_ray(address)
    if not tune.Tuner.can_restore(str(experiment_dir)):
        raise InputError(experiment_dir, "Tune has no state to resume here yet")
    print(f"resuming: {experiment_dir}", flush=True)
    tuner = tune.Tuner.restore(
        str(experiment_dir),
        trainable=PlantTrainable,
        resume_unfinished=True,
        resume_errored=True,
    )
    work_from(experiment_dir)
    finish(experiment_dir, fit_or_read_back(tuner, experiment_dir))
    return experiment_dir


def request_finish_of(experiment_dir: Path, names: Sequence[str] = ()) -> str:
    """``tune --finish``: ask a run to end ``names`` (trials or algorithms; none = all)
    after their current iteration (see :mod:`rllib_project.stopping`)."""
    from rllib_project.stopping import request_finish

    experiment_dir = experiment_folder(experiment_dir)
    if (experiment_dir / MANIFEST_FILE).exists():
        raise InputError(experiment_dir, f"already finished ({MANIFEST_FILE} written)")
    recorded = read_snapshot(experiment_dir)
    known = set(recorded["algorithms"]) | set(recorded["datasets"])
    known |= {p.name for p in experiment_dir.iterdir() if p.is_dir()}
    unknown = sorted(set(names) - known)
    if unknown:
        raise InputError(
            "--only", f"no trial, algorithm or dataset {', '.join(unknown)} in {experiment_dir}"
        )
    requested = request_finish(experiment_dir, names)
    return (
        f"requested: {', '.join(sorted(requested))} finish after the current iteration "
        f"(a run resumed later honours it too); best.json follows when every trial ended"
    )


def snapshot(
    experiment: Experiment, plants: Sequence[PlantSource], plan: TrialResources
) -> dict[str, Any]:
    """The resolved configuration, saved with the run."""
    return {
        "experiment_file": str(experiment.source),
        "datasets": {
            p.dataset: dataclasses.asdict(DatasetEntry(p.spec_path, p.model_path)) for p in plants
        },
        "seeds": experiment.seeds(),
        "resources": dataclasses.asdict(plan),
        "experiment": dataclasses.asdict(experiment.file),
        "algorithms": {k: dataclasses.asdict(v) for k, v in experiment.algorithms.items()},
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def read_snapshot(experiment_dir: Path) -> dict[str, Any]:
    return json.loads((experiment_dir / EXPERIMENT_SNAPSHOT).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- manifest


def write_manifest(experiment_dir: Path, results: ResultGrid) -> Path:
    """Write ``best.json`` (atomically) and print the best checkpoint per dataset x
    algorithm."""
    from rllib_project.metrics import SCORE
    from rllib_project.run_records import best_per_dataset_algorithm, run_records

    recorded = read_snapshot(experiment_dir)
    stop = StopSettings(**recorded["experiment"]["stop"])
    manifest = Manifest(
        experiment=str(experiment_dir),
        datasets={k: DatasetEntry(**v) for k, v in recorded["datasets"].items()},
        score=f"{SCORE} (success rate, ties broken by mean return)",
        stop=stop,
        best=best_per_dataset_algorithm(each(results)),
        runs=run_records(each(results), stop),
        trial_errors=[str(r.error).splitlines()[0] for r in each(results) if r.error is not None],
        written_utc=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    path = manifest.write(experiment_dir)
    print(format_best(manifest))
    return path


def format_best(manifest: Manifest) -> str:
    lines = [f"best checkpoint per dataset x algorithm ({manifest.experiment}/{MANIFEST_FILE}):"]
    width = max((len(name) for name in manifest.best), default=4)
    for name, entry in manifest.best.items():
        m = entry.metrics
        lines.append(
            f"  {name:<{width}} success {m.success_rate:.1%}  moves {m.mean_moves_to_band:.2f}"
            f" ({m.moves_ratio:.2f}x optimal)  return {m.mean_return:.1f}  "
            f"iter {entry.iteration}  {entry.checkpoint}"
        )
    for error in manifest.trial_errors:
        lines.append(f"  trial error: {error}")
    return "\n".join(lines)
