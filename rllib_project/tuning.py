"""``rllib-project tune``: PPO, SAC and DQN side by side in one Tune run.

How it maps onto Ray's own machinery:

* one ``tune.Tuner`` over :class:`PlantTrainable`, whose param space grid-searches the
  algorithms (each with its own YAML search space), ``num_samples`` trials each, all
  running concurrently (``max_concurrent_trials``) with resources derived from the
  cluster (:mod:`rllib_project.resources`);
* ``RunConfig(storage_path=..., stop=..., checkpoint_config=CheckpointConfig(...),
  failure_config=FailureConfig(max_failures=...))``: Tune stops trials, keeps the top
  checkpoints per trial by ``evaluation/score`` and restarts crashed trials from their
  last checkpoint;
* ``Tuner.restore(..., resume_unfinished=True, resume_errored=True)`` continues an
  interrupted run: finished trials stay finished;
* afterwards the best checkpoint of each algorithm goes into ``best.json`` in the
  experiment folder, written atomically.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from env.errors import InputError
from env.files import json_safe, write_json_atomic
from env.plant import load_plant
from rllib_project.checkpoints import MANIFEST
from rllib_project.experiment import AlgorithmFile, Experiment, load_experiment
from rllib_project.resources import TrialResources, cluster_node_cpus, plan_trial_resources

EXPERIMENT_SNAPSHOT = "experiment.json"
MODEL_FILE = "process_model.json"
SCORE = "evaluation/score"
ENV_STEPS = "env_runners/num_env_steps_sampled_lifetime"
REPORT_COLUMNS = {
    "training_iteration": "iter",
    ENV_STEPS: "env steps",
    "time_total_s": "time (s)",
    "evaluation/success_rate": "success",
    "evaluation/mean_moves_to_band": "moves",
    "evaluation/moves_ratio": "moves/opt",
    "evaluation/mean_return": "return",
}


# --------------------------------------------------------------------------- ray


def prepare_ray_environment(address: str | None) -> str | None:
    """Settings that must be in place before Ray is first imported; returns the address.

    Without a cluster address, the run starts its own single-machine Ray instance; with
    multi-node support switched off Ray binds every service to 127.0.0.1 instead of the
    host's address (seen with ``ss -ltn``). Ray reads that switch when it is imported,
    so this runs before anything imports Ray. Token authentication (the Ray 2.60
    default) stays on either way.
    """
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # Our own progress table (CLIReporter) instead of Tune's new output engine.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune's experiment-state sync warning fires on every short run; it is advice only.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    return address


def init_ray(address: str | None) -> None:
    """Connect to a cluster, or start a local instance (see prepare_ray_environment)."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(include_dashboard=False, log_to_driver=False)


# --------------------------------------------------------------------------- spaces


def to_search_space(value: Any) -> Any:
    """YAML search-space mappings (``{loguniform: [a, b]}``...) to Tune domains."""
    from ray import tune

    if isinstance(value, dict):
        if len(value) == 1:
            kind, args = next(iter(value.items()))
            makers = {
                "grid": lambda a: tune.grid_search(list(a)),
                "choice": lambda a: tune.choice(list(a)),
                "uniform": lambda a: tune.uniform(*a),
                "loguniform": lambda a: tune.loguniform(*a),
                "randint": lambda a: tune.randint(*a),
            }
            if kind in makers:
                return makers[kind](args)
        return {k: to_search_space(v) for k, v in value.items()}
    return value


def algorithm_entry(name: str, spec: AlgorithmFile) -> dict[str, Any]:
    """The per-algorithm part of a trial config (search spaces become Tune domains)."""
    return {
        "algorithm": name,
        "action_mode": spec.action_mode,
        "training": to_search_space(spec.training),
        "env_runners": to_search_space(spec.env_runners),
        "model": to_search_space(spec.model),
        "torch_threads": spec.torch_threads,
    }


def shared_entries(experiment: Experiment, model_path: Path, plan: TrialResources) -> dict:
    """The part of a trial config every algorithm shares."""
    file = experiment.file
    return {
        "env_config": {
            "spec_path": str(experiment.dataset),
            "model_path": str(model_path),
            "settings": dict(file.env),
        },
        "resources": plan.to_dict(),
        "evaluation": {
            "interval": file.evaluation.interval,
            "rows": file.evaluation.rows,
            "seed": file.evaluation.seed,
        },
    }


def param_space(experiment: Experiment, model_path: Path, plan: TrialResources) -> dict:
    """Tune's param space: a grid over algorithms, each with its own search space."""
    from ray import tune

    algorithms = [algorithm_entry(n, s) for n, s in experiment.algorithms.items()]
    return {
        "trial": tune.grid_search(algorithms),
        **shared_entries(experiment, model_path, plan),
        "seed": tune.randint(0, 2**31 - 1),
    }


def stop_criteria(experiment: Experiment):
    """Tune stopper of a trial: budget limits, or the planner-relative target met."""
    from rllib_project.stopping import PlantStopper

    return PlantStopper(**dataclasses.asdict(experiment.file.stop))


# --------------------------------------------------------------------------- model


def prepare_model(experiment: Experiment, experiment_dir: Path) -> Path:
    """The model every trial uses: the given one, or fitted once and saved here."""
    plant = load_plant(experiment.dataset, experiment.model)  # validates data + model
    if experiment.model is not None:
        return experiment.model
    return plant.model.save(experiment_dir / MODEL_FILE)


# --------------------------------------------------------------------------- run


def trial_dirname(trial) -> str:
    """Short trial folders: ``PPO_<trial id>`` instead of every hyper-parameter."""
    return f"{trial.config['trial']['algorithm']}_{trial.trial_id}"


def build_tuner(experiment: Experiment, experiment_dir: Path, space: dict, plan: TrialResources):
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from rllib_project.trainable import PlantTrainable

    file = experiment.file
    interval = file.evaluation.interval
    reporter = tune.CLIReporter(
        metric_columns=REPORT_COLUMNS,
        parameter_columns={"trial/algorithm": "algorithm", "trial/action_mode": "actions"},
        max_report_frequency=30,
        sort_by_metric=False,
    )
    return tune.Tuner(
        PlantTrainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            num_samples=file.samples_per_algorithm,
            max_concurrent_trials=plan.max_concurrent_trials,
            search_alg=BasicVariantGenerator(random_state=file.seed),
            reuse_actors=False,
            trial_dirname_creator=trial_dirname,
            trial_name_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=experiment_dir.name,
            storage_path=str(experiment_dir.parent),
            stop=stop_criteria(experiment),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=file.checkpoint.num_to_keep,
                checkpoint_score_attribute=SCORE,
                checkpoint_score_order="max",
                checkpoint_frequency=interval,
                # a final checkpoint is only scored correctly if it was just evaluated
                checkpoint_at_end=interval == 1,
            ),
            failure_config=tune.FailureConfig(max_failures=file.failure.max_failures),
            progress_reporter=reporter,
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
    plan = plan_trial_resources(
        cluster_node_cpus(),
        len(experiment.algorithms) * experiment.file.samples_per_algorithm,
        experiment.file.resources,
    )
    experiment_dir.mkdir(parents=True, exist_ok=False)
    model_path = prepare_model(experiment, experiment_dir)
    write_json_atomic(
        experiment_dir / EXPERIMENT_SNAPSHOT,
        snapshot(experiment, model_path, plan),
    )
    print(
        f"experiment: {experiment_dir}\n"
        f"trials: {len(experiment.algorithms)} algorithm(s) x "
        f"{experiment.file.samples_per_algorithm} sample(s), {plan.max_concurrent_trials} at "
        f"once, each {plan.main_cpus:g} CPU + {plan.num_env_runners} env runner(s)",
        flush=True,
    )
    space = param_space(experiment, model_path, plan)
    work_from(experiment_dir)
    results = fit_or_read_back(build_tuner(experiment, experiment_dir, space, plan), experiment_dir)
    finish(experiment_dir, results)
    return experiment_dir


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


def fit_or_read_back(tuner, experiment_dir: Path):
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


class RunInterrupted(Exception):
    """Tune stopped before every trial finished (Ctrl-C); the run can be resumed."""


def finish(experiment_dir: Path, results) -> None:
    """Write the manifest, unless the run was interrupted before all trials ended."""
    unfinished = [
        r for r in results if r.error is None and not (r.metrics or {}).get("done", False)
    ]
    if unfinished:
        raise RunInterrupted(
            f"{len(unfinished)} trial(s) unfinished; continue with: "
            f"rllib-project tune --resume {experiment_dir}"
        )
    write_manifest(experiment_dir, results)


def resume_tune(experiment_dir: Path, address: str | None = None) -> Path:
    """Continue an interrupted run from its last checkpoints."""
    from ray import tune

    from rllib_project.trainable import PlantTrainable

    address = prepare_ray_environment(address)
    experiment_dir = experiment_dir.resolve()
    if not (experiment_dir / EXPERIMENT_SNAPSHOT).exists():
        raise InputError(experiment_dir, "not an experiment folder (no experiment.json)")
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


def snapshot(experiment: Experiment, model_path: Path, plan: TrialResources) -> dict:
    """The resolved configuration, saved with the run."""
    return {
        "experiment_file": str(experiment.source),
        "dataset": str(experiment.dataset),
        "model": str(model_path),
        "resources": plan.to_dict(),
        "experiment": dataclasses.asdict(experiment.file),
        "algorithms": {k: dataclasses.asdict(v) for k, v in experiment.algorithms.items()},
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------- manifest


def best_per_algorithm(results) -> dict[str, dict[str, Any]]:
    """The best kept checkpoint of each algorithm over all its trials, by score."""
    best: dict[str, dict[str, Any]] = {}
    for result in results:
        if result.config is None:
            continue
        algorithm = result.config["trial"]["algorithm"]
        for checkpoint, metrics in result.best_checkpoints or []:
            value = metrics.get("evaluation", {}).get("score")
            if value is None:
                continue
            current = best.get(algorithm)
            if current is None or value > current["metrics"]["score"]:
                best[algorithm] = {
                    "algorithm": algorithm,
                    "action_mode": result.config["trial"]["action_mode"],
                    "checkpoint": checkpoint.path,
                    "trial_id": metrics.get("trial_id"),
                    "iteration": metrics.get("training_iteration"),
                    "env_steps": metrics.get("env_runners", {}).get(
                        "num_env_steps_sampled_lifetime"
                    ),
                    "time_total_s": metrics.get("time_total_s"),
                    "metrics": metrics["evaluation"],
                    "config": result.config,
                }
    return best


def write_manifest(experiment_dir: Path, results) -> Path:
    """Write ``best.json`` (atomically) and print the best checkpoint per algorithm."""
    best = best_per_algorithm(results)
    errors = [str(r.error).splitlines()[0] for r in results if r.error is not None]
    snapshot_data = json.loads((experiment_dir / EXPERIMENT_SNAPSHOT).read_text())
    manifest = {
        "experiment": str(experiment_dir),
        "dataset": snapshot_data["dataset"],
        "model": snapshot_data["model"],
        "score": f"{SCORE} (success rate, ties broken by mean return)",
        "best": best,
        "trial_errors": errors,
        "written_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    path = write_json_atomic(experiment_dir / MANIFEST, json_safe(manifest))
    print(format_best(manifest))
    return path


def format_best(manifest: dict) -> str:
    lines = [f"best checkpoint per algorithm ({manifest['experiment']}/{MANIFEST}):"]
    for name, entry in manifest["best"].items():
        m = entry["metrics"]
        lines.append(
            f"  {name:<4} success {m['success_rate']:.1%}  moves {m['mean_moves_to_band']:.2f}"
            f" ({m['moves_ratio']:.2f}x optimal)  return {m['mean_return']:.1f}  "
            f"iter {entry['iteration']}  {entry['checkpoint']}"
        )
    for error in manifest["trial_errors"]:
        lines.append(f"  trial error: {error}")
    return "\n".join(lines)
