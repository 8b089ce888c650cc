"""Derive each trial's resources from the cluster, so no trial waits forever.

RLlib's defaults ask for one CPU for the algorithm plus one per env runner (PPO: three
CPUs), so on a two-CPU machine a PPO trial can never be placed and Tune leaves it
PENDING for good. Here the CPUs of the cluster are shared out instead:

* all trials run at once, up to two per CPU (or ``max_concurrent_trials``), packed
  onto the nodes, so a trial's share is ``min(node CPUs / trials on that node)``; the
  others wait in Tune's queue and start as running ones end (many seeds and datasets
  give more trials than that). Below half a CPU per trial more trials at once add
  memory (each trial is a process with torch and RLlib) and context switches, not
  throughput;
* a share below three CPUs samples in the trial's own process (``num_env_runners=0``)
  with a fractional CPU request, e.g. three trials on two CPUs get 0.66 each. PPO,
  SAC and DQN sample and learn in turn, so a single remote env runner only adds
  inter-process traffic: measured on 2 CPUs, PPO reached 95% success in 8.8 s with one
  remote runner and in 6.0 s sampling locally (scripts/bench_train.py);
* a share of three or more CPUs keeps the rest for the learner after giving at least
  two remote env runners a CPU each (up to ``max_env_runners_per_trial``), so the same
  experiment file spreads out on a bigger cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rllib_project.experiment import ResourceSettings

MIN_CPUS_PER_TRIAL = 0.5
"""The smallest CPU share the default concurrency gives a trial (see module docstring)."""
MIN_SHARE_FOR_REMOTE_RUNNERS = 3.0
"""CPUs a trial needs before remote env runners pay off (two runners + the learner)."""


@dataclass(frozen=True)
class TrialResources:
    """What one trial asks Ray for."""

    main_cpus: float
    """CPUs of the trial's own process (algorithm + local learner)."""
    num_env_runners: int
    cpus_per_env_runner: float
    max_concurrent_trials: int
    """Trials running at once (all of them up to two per CPU, unless the experiment
    file says otherwise); the rest queue."""


def _floor_cents(value: float) -> float:
    """Round down to 0.01 CPU so that n shares never add up to more than the whole."""
    return max(0.01, math.floor(value * 100.0) / 100.0)


def plan_trial_resources(
    node_cpus: list[float], n_trials: int, settings: ResourceSettings
) -> TrialResources:
    """Share the nodes' CPUs among ``n_trials`` trials (see module docstring)."""
    if settings.cpus is not None:
        node_cpus = [settings.cpus]
    node_cpus = sorted((c for c in node_cpus if c > 0), reverse=True)
    if not node_cpus:
        raise ValueError("the Ray cluster reports no CPUs")
    if settings.max_concurrent_trials is not None:
        concurrent = min(n_trials, settings.max_concurrent_trials)
    else:  # the most trials that each get at least MIN_CPUS_PER_TRIAL (at least one)
        fitting = (c for c in range(n_trials, 0, -1) if _share(node_cpus, c) >= MIN_CPUS_PER_TRIAL)
        concurrent = next(fitting, 1)
    share = _share(node_cpus, concurrent)
    if share < MIN_SHARE_FOR_REMOTE_RUNNERS or settings.max_env_runners_per_trial < 2:
        return TrialResources(_floor_cents(share), 0, 0.0, concurrent)
    runners = min(math.floor(share) - 1, settings.max_env_runners_per_trial)
    # what the runners leave goes to the learner (more torch threads)
    return TrialResources(float(math.floor(share) - runners), runners, 1.0, concurrent)


def _share(node_cpus: list[float], concurrent: int) -> float:
    """CPUs per trial when ``concurrent`` trials are packed onto the nodes (largest first).

    Trials are packed per node, so the smallest node that must host ``per_node`` trials
    bounds the share; with fewer trials than nodes each trial gets a node's CPUs.
    """
    per_node = math.ceil(concurrent / len(node_cpus))
    hosting = node_cpus[: math.ceil(concurrent / per_node)]
    return min(cpus / per_node for cpus in hosting)


def cluster_node_cpus() -> list[float]:
    """CPUs of every alive node of the connected Ray cluster."""
    import ray

    return [
        float(node["Resources"].get("CPU", 0.0))
        for node in ray.nodes()
        if node.get("Alive") and node["Resources"].get("CPU", 0.0) > 0
    ]
