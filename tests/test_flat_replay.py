"""The flat replay ring: what it stores is the env's transitions, it is used exactly
where it computes RLlib's own batches, and SAC and DQN learn from it (real RLlib)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, SAMPLE_SPEC
from tests.flat_replay_run import ALGORITHMS, TERMINAL, TIME_LIMIT

pytestmark = pytest.mark.slow  # trains SAC and DQN with Ray


@pytest.fixture(scope="module")
def flat_replay_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SAC and DQN trained one iteration each on the counting env, in one process."""
    folder = tmp_path_factory.mktemp("flat_replay")
    subprocess.run(
        [sys.executable, "-m", "tests.flat_replay_run", str(folder)],
        cwd=REPO,
        check=True,
        timeout=600,
    )
    return folder


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_ring_holds_the_envs_transitions_and_the_learner_trains_on_them(
    algorithm: str, flat_replay_runs: Path
) -> None:
    run = np.load(flat_replay_runs / f"{algorithm}.npz")
    assert str(run["algo_class"]) == f"FlatReplay{algorithm}"
    assert int(run["trained"]) > 0
    assert int(run["size"]) == 50  # full: the ring wrapped around (capacity 50)
    assert {"n_step", "weights"} <= set(run["sample_keys"])
    obs, next_obs = run["ring_obs"][:, 0], run["ring_new_obs"][:, 0]
    rewards, terminated = run["ring_rewards"], run["ring_terminateds"]
    np.testing.assert_array_equal(next_obs, obs + 1)  # each pair is one real step
    np.testing.assert_array_equal(rewards, obs)
    # only a step onto the terminal reading ends an episode; truncated ones bootstrap
    np.testing.assert_array_equal(terminated, next_obs == TERMINAL)
    truncated_ends = (next_obs < TERMINAL) & (next_obs - TIME_LIMIT >= 0)
    assert truncated_ends.any() and terminated.any()


def test_flat_replay_is_chosen_only_where_it_computes_rllibs_batches() -> None:
    from rllib_project.algorithms import build_algorithm_config
    from rllib_project.experiment import load_experiment
    from rllib_project.resources import TrialResources
    from rllib_project.trial_config import PlantSource, TrialConfig

    experiment = load_experiment(REPO / "tune_configs" / "compare.yaml")

    def algo_class(name: str, **training: object) -> str:
        spec = experiment.algorithms[name]
        spec = dataclasses.replace(spec, training={**spec.training, **training})
        trial = TrialConfig(
            algorithm=spec,
            plant=PlantSource("sample", str(SAMPLE_SPEC), "unused.json"),
            resources=TrialResources(0.66, 0, 0.0, 3),
            evaluation=experiment.file.evaluation,
        )
        chosen = build_algorithm_config(trial).algo_class
        assert chosen is not None
        return chosen.__name__

    assert algo_class("SAC") == "FlatReplaySAC"
    assert algo_class("DQN") == "FlatReplayDQN"
    assert algo_class("PPO") == "PPO"
    assert algo_class("SAC", n_step=3) == "SAC"  # n-step returns: RLlib's buffer
    prioritised = {"type": "PrioritizedEpisodeReplayBuffer", "capacity": 1000}
    assert algo_class("DQN", replay_buffer_config=prioritised) == "DQN"
