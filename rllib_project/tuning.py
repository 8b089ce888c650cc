"""``rllib-project tune``: PPO, SAC and DQN side by side in one Tune run.

How it maps onto Ray's own machinery:

* each dataset's process model is fitted and its fewest-moves yardstick planned once,
  before any trial (:mod:`rllib_project.preparation`), and shared by its trials as
  files in ``<experiment>/datasets/<name>/``;
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
  checkpoints per trial (those meeting the target first, then by the evaluation's
  score: :func:`rllib_project.ranking.checkpoint_rank`) and restarts crashed trials
  from their last checkpoint;
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
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from env.errors import InputError
from env.files import write_json_atomic
from env.typed_config import build_dataclass
from env.yardstick import planning_mode
from rllib_project.experiment import Experiment, ExperimentFile, StopSettings, load_experiment
from rllib_project.manifest import MANIFEST_FILE, DatasetEntry, Manifest
from rllib_project.preparation import (
    PreparationProcess,
    dataset_dir,
    prepare_dataset,
    say,
)
from rllib_project.resources import TrialResources, cluster_node_cpus, plan_trial_resources
from rllib_project.shape_defaults import describe_derived
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
    from ray.tune import CheckpointConfig, Result, ResultGrid, Tuner
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


def planning_modes(experiment: Experiment) -> set[str]:
    """The planner's modes the experiment's algorithms are scored in."""
    return {planning_mode(a.action_mode) for a in experiment.algorithms.values()}


def dataset_preparation_args(experiment: Experiment, experiment_dir: Path) -> tuple[Any, ...]:
    """The arguments of :func:`rllib_project.preparation.prepare_datasets` that make
    each of the experiment's datasets ready for its trials (model, yardsticks, shape),
    saved in the experiment folder before any trial starts."""
    return (
        [(d.name, d.spec, d.model) for d in experiment.datasets],
        dict(experiment.file.env),
        sorted(planning_modes(experiment)),
        experiment_dir,
    )


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
        experiment.file.stop,
    )


def stop_criteria(experiment: Experiment, experiment_dir: Path | None) -> PlantStopper:
    """Tune stopper of a trial: budget limits, the planner-relative target, or a
    finish request in ``experiment_dir`` (see :mod:`rllib_project.stopping`)."""
    from rllib_project.stopping import PlantStopper

    return PlantStopper(
        **dataclasses.asdict(experiment.file.stop),
        experiment_dir=None if experiment_dir is None else str(experiment_dir),
    )


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


def checkpoint_config(file: ExperimentFile) -> CheckpointConfig:
    """Which checkpoints a trial saves and keeps: every evaluation's, the
    ``checkpoint.num_to_keep`` best (:func:`rllib_project.ranking.checkpoint_rank`) and
    the latest."""
    from ray import tune

    from rllib_project.metrics import CHECKPOINT_SCORE

    interval = file.evaluation.interval
    return tune.CheckpointConfig(
        num_to_keep=file.checkpoint.num_to_keep,
        checkpoint_score_attribute=CHECKPOINT_SCORE,
        checkpoint_score_order="max",
        checkpoint_frequency=interval,
        # a final checkpoint is only scored correctly if it was just evaluated
        checkpoint_at_end=interval == 1,
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

    from rllib_project.kept_checkpoints import KeptCheckpointRestore
    from rllib_project.result_logs import ProgressCsvLog, ResultJsonLog
    from rllib_project.scheduling import build_scheduler
    from rllib_project.trainable import PlantTrainable
    from rllib_project.trial_progress import TrialLines

    file = experiment.file
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
            checkpoint_config=checkpoint_config(file),
            failure_config=tune.FailureConfig(max_failures=file.failure.max_failures),
            progress_reporter=progress_reporter(),
            callbacks=[TrialLines(), KeptCheckpointRestore(), ResultJsonLog(), ProgressCsvLog()],
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
    """Run an experiment; returns the experiment folder (holding ``best.json``).

    Every step before the trials prints a line as it starts and as it ends (reading
    the experiment imports RLlib, starting Ray, fitting, planning), then the trials'
    progress table takes over: no silent minutes.
    """
    address = prepare_ray_environment(address)
    say(f"reading {experiment_file} (RLlib checks every setting) ...")
    experiment = load_experiment(experiment_file, storage_path)
    experiment_dir = new_experiment_dir(experiment)
    created = topmost_missing_folder(experiment_dir)
    experiment_dir.mkdir(parents=True, exist_ok=False)
    say(f"experiment: {experiment_dir}")
    # models, yardsticks and shapes in another process while Ray starts (see there)
    preparation = PreparationProcess(*dataset_preparation_args(experiment, experiment_dir))
    try:
        node_cpus = start_ray(address)
        plants = preparation.result()
    except BaseException:
        # nothing was trained: no half-made experiment folder (nor the storage folder
        # made for it) is left behind
        preparation.stop()
        shutil.rmtree(created, ignore_errors=True)
        raise
    plan = plan_trial_resources(node_cpus, experiment.n_trials, experiment.file.resources)
    write_json_atomic(experiment_dir / EXPERIMENT_SNAPSHOT, snapshot(experiment, plants, plan))
    for source in plants:
        if source.shape is not None:
            named = f"dataset {source.dataset}: " if len(plants) > 1 else ""
            say(named + describe_derived(experiment.algorithms.values(), source.shape))
    say(
        f"{describe_trials(experiment, plan)}\n"
        f"to end early, keeping what was learned: rllib-project tune --finish {experiment_dir}"
    )
    say(f"starting {experiment.n_trials} trial(s) ({describe_stop(experiment)}) ...")
    space = experiment_param_space(experiment, plants, plan)
    work_from(experiment_dir)
    results = fit_or_read_back(build_tuner(experiment, experiment_dir, space, plan), experiment_dir)
    finish(experiment_dir, results)
    return experiment_dir


def topmost_missing_folder(folder: Path) -> Path:
    """The first folder of ``folder``'s path that does not exist yet: what creating
    ``folder`` adds, and so what to remove when the run fails before training."""
    while not folder.parent.exists():
        folder = folder.parent
    return folder


def start_ray(address: str | None) -> list[float]:
    """Start (or connect to) Ray with a line before and after; the nodes' CPUs."""
    began = time.perf_counter()
    say("connecting to Ray ..." if address else "starting Ray on this machine ...")
    init_ray(address)
    node_cpus = cluster_node_cpus()
    seconds = time.perf_counter() - began
    say(f"Ray: {len(node_cpus)} node(s), {sum(node_cpus):g} CPUs ({seconds:.1f} s)")
    return node_cpus


def describe_stop(experiment: Experiment) -> str:
    """How the trials end, in words (for the line that starts them)."""
    stop = experiment.file.stop
    parts = []
    if stop.wall_time_s is not None:
        parts.append(f"{stop.wall_time_s:g} s of wall time each")
    if stop.training_iterations is not None:
        parts.append(f"{stop.training_iterations} iterations")
    if stop.env_steps is not None:
        parts.append(f"{stop.env_steps:,} env steps")
    if stop.success_rate is not None:
        target = f"{stop.success_rate:.0%} success"
        if stop.moves_ratio is not None:
            target += f" within {stop.moves_ratio:g}x the planner's moves"
        parts.append(target)
    return "each ends at the first of: " + ", ".join(parts)


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
    are read back from the experiment folder instead of being lost with the run.
    SIGTERM (``ray job stop``) ends the run as Ctrl-C does, with its state saved whole."""
    from ray import tune

    from rllib_project.graceful_stop import sigterm_ends_tune_cleanly
    from rllib_project.trainable import PlantTrainable

    try:
        with sigterm_ends_tune_cleanly():
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
    """Continue an interrupted run from its last checkpoints.

    The saved model and yardsticks are checked (and loaded, not planned again) before
    Tune restores the trials, which load them too.
    """
    address = prepare_ray_environment(address)  # before Ray is imported
    experiment_dir = experiment_folder(experiment_dir)
    say(f"resuming: {experiment_dir}")
    check_prepared_datasets(experiment_dir)
    from ray import tune

    from rllib_project.trainable import PlantTrainable

    start_ray(address)
    if not tune.Tuner.can_restore(str(experiment_dir)):
        raise InputError(experiment_dir, "Tune has no state to resume here yet")
    say("restoring the trials from their last checkpoints ...")
    tuner = tune.Tuner.restore(
        str(experiment_dir),
        trainable=PlantTrainable,
        resume_unfinished=True,
        resume_errored=True,
    )
    work_from(experiment_dir)
    finish(experiment_dir, fit_or_read_back(tuner, experiment_dir))
    return experiment_dir


def check_prepared_datasets(experiment_dir: Path) -> list[PlantSource]:
    """Load (or, if missing or stale, plan again) the yardsticks the run's trials use,
    dataset by dataset.

    Runs made before the yardsticks were saved with the experiment have no record of
    them (an empty list): their trials plan for themselves, as they did.
    """
    where = experiment_dir / EXPERIMENT_SNAPSHOT
    recorded = read_snapshot(experiment_dir).get("plants") or []
    sources = [build_dataclass(PlantSource, plant, where, "plants") for plant in recorded]
    return [
        prepare_dataset(
            source.dataset,
            Path(source.spec_path),
            Path(source.model_path),
            source.settings,
            source.yardsticks,
            dataset_dir(experiment_dir, source.dataset),
            say if len(sources) == 1 else _named(source.dataset),
        )
        for source in sources
    ]


def _named(dataset: str) -> Any:
    return lambda message: say(f"dataset {dataset}: {message}")


def request_finish_of(experiment_dir: Path, names: Sequence[str] = ()) -> str:
    """``tune --finish``: ask a run to end ``names`` (trials or algorithms; none = all)
    after their current iteration (see :mod:`rllib_project.stopping`)."""
    from rllib_project.finish_request import request_finish

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
    """The resolved configuration, saved with the run (``plants``: what the trials were
    given, with the saved yardsticks, which ``--resume`` checks and loads)."""
    return {
        "experiment_file": str(experiment.source),
        "datasets": {
            p.dataset: dataclasses.asdict(DatasetEntry(p.spec_path, p.model_path)) for p in plants
        },
        "plants": [dataclasses.asdict(p) for p in plants],
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
        score=f"{SCORE} (success rate, ties broken by mean return); checkpoints meeting "
        "the stop target rank first",
        stop=stop,
        best=best_per_dataset_algorithm(each(results), stop),
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
