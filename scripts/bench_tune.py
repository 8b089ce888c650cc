"""Benchmark: PPO, SAC and DQN trained concurrently vs one after the other.

How to run::

    .venv/bin/python scripts/bench_tune.py [--env-steps 15000]

Runs the project's Tune path (the same Tuner, trainable, resources and evaluation as
``rllib-project tune``) on the sample data, with the same budget for every trial (a
number of sampled env steps): first all three algorithms in one Tune run, then each
algorithm alone in its own Tune run. Ray is started once; only the tuning loops
(``Tuner.fit``) are timed. Prints the wall times, the ratio concurrent / sum of alone,
and env steps sampled per second per algorithm in both settings.

Results to expect (2 CPUs): ratio <= 0.6. Alone, a trial gets both CPUs but PPO, SAC and
DQN alternate sampling and learning in one process, so they use about one core; run
together, the three trials fill both.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import env
from rllib_project.experiment import StopSettings, load_experiment
from rllib_project.resources import cluster_node_cpus, plan_trial_resources
from rllib_project.trial_config import PlantSource, TrialConfig
from rllib_project.tuning import (
    build_tuner,
    experiment_param_space,
    init_ray,
    prepare_ray_environment,
)

REPO = Path(__file__).resolve().parent.parent
EXPERIMENT = REPO / "tune_configs" / "compare.yaml"


def run(algorithms: tuple[str, ...], env_steps: int, storage: Path, model: Path) -> dict:
    """One Tune run of ``algorithms`` side by side; wall time and steps/s per trial."""
    from rllib_project import metrics  # imports Ray: after its set-up

    experiment = load_experiment(EXPERIMENT, storage)
    experiment = dataclasses.replace(
        experiment,
        file=dataclasses.replace(experiment.file, stop=StopSettings(env_steps=env_steps)),
        algorithms={a: experiment.algorithms[a] for a in algorithms},
    )
    plan = plan_trial_resources(cluster_node_cpus(), len(algorithms), experiment.file.resources)
    experiment_dir = storage / f"bench_{'_'.join(algorithms)}"
    experiment_dir.mkdir(parents=True)
    dataset = experiment.datasets[0]
    plant = PlantSource(dataset.name, str(dataset.spec), str(model), dict(experiment.file.env))
    space = experiment_param_space(experiment, [plant], plan)
    tuner = build_tuner(experiment, experiment_dir, space, plan, finish_requests=False)
    start = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - start
    rates = {}
    for result in results:
        if result.error is not None:
            raise RuntimeError(f"trial failed: {result.error}")
        algorithm = TrialConfig.from_tune(result.config).algorithm_name
        rates[algorithm] = metrics.env_steps(result.metrics) / result.metrics[metrics.TIME_TOTAL_S]
    return {"wall": wall, "rates": rates, "plan": plan}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-steps", type=int, default=15_000)
    args = parser.parse_args()
    prepare_ray_environment(None)
    init_ray(None)
    algorithms = ("PPO", "SAC", "DQN")
    with tempfile.TemporaryDirectory() as folder:
        storage = Path(folder)
        model = env.load_plant(env.DEFAULT_SPEC_PATH).model.save(storage / "model.json")
        together = run(algorithms, args.env_steps, storage, model)
        alone = {a: run((a,), args.env_steps, storage, model) for a in algorithms}
    total_alone = sum(r["wall"] for r in alone.values())
    print(f"\nbudget: {args.env_steps:,} env steps per trial; CPUs: {cluster_node_cpus()}")
    plan = together["plan"]
    print(f"concurrent: 3 trials x {plan.main_cpus:g} CPU, wall {together['wall']:.1f} s")
    for name, result in alone.items():
        print(f"alone {name}: {result['plan'].main_cpus:g} CPU, wall {result['wall']:.1f} s")
    print(
        f"ratio concurrent / sum alone: {together['wall']:.1f} / {total_alone:.1f} = "
        f"{together['wall'] / total_alone:.2f}"
    )
    print("env steps sampled per second (concurrent | alone):")
    for name in algorithms:
        print(f"  {name}: {together['rates'][name]:8,.0f} | {alone[name]['rates'][name]:8,.0f}")


if __name__ == "__main__":
    main()
