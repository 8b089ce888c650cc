from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest
from hypothesis import settings

import env
from tests.datasets import write_dataset

REPO = Path(__file__).resolve().parent.parent
SAMPLE_SPEC = REPO / "data" / "sample_spec.yaml"
TUNE_OUTPUT = "tune_output.txt"
"""What the tiny run printed (stdout, then stderr), beside its results folder."""

# The property tests draw the same examples on every run, so the suite's verdict never
# depends on luck: a failure found once is found again on every machine. To explore new
# examples while developing: ``pytest --hypothesis-profile=explore``.
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile("repeatable")

RAY_GROUP = "ray"
"""The pytest-xdist group of every test that starts Ray (marked ``slow``, not
``without_ray``): all run one after another in one worker, so that two never share the
machine's 2 CPUs (their Ray instances would each count both) nor Ray's default ports (a
head's dashboard agent takes 52365). The tests without Ray run beside them in the other
worker (``-n 2 --dist loadgroup`` in pyproject.toml)."""

RUN_FIXTURES = {"tiny_run", "trained_ppo_run"}
"""Session fixtures that run ``rllib-project tune``: a test using one starts Ray."""


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Generator[None, None, None]:
    """Put every test that starts Ray in :data:`RAY_GROUP` before pytest-xdist reads the
    groups; afterwards, mark those it did not apply them to. It applies a group by
    renaming the test ``...@ray``; a pytest version it does not support ignores the
    rename, and the Ray tests would then run two at a time, silently."""
    for item in items:
        if RUN_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        if _starts_ray(item):
            item.add_marker(pytest.mark.xdist_group(RAY_GROUP))
    yield
    if getattr(config.option, "loadgroup", False):
        for item in items:
            if _starts_ray(item) and not item.nodeid.endswith(f"@{RAY_GROUP}"):
                item.stash[UNGROUPED] = True


def _starts_ray(item: pytest.Item) -> bool:
    """Marked ``slow`` (starts Ray or trains) and not ``without_ray``."""
    return bool(item.get_closest_marker("slow")) and not item.get_closest_marker("without_ray")


UNGROUPED = pytest.StashKey[bool]()
"""Set on a Ray test that pytest-xdist left out of :data:`RAY_GROUP`."""


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A Ray test left ungrouped fails at once, saying why, instead of running beside
    another Ray test (an error raised during collection would only crash the worker)."""
    if item.stash.get(UNGROUPED, False):
        pytest.fail(
            f"pytest-xdist did not put this test in the {RAY_GROUP!r} group: this pytest is "
            "one it does not support; install the versions of requirements.lock "
            "(bash scripts/setup.sh --dev)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def sample_plant() -> env.Plant:
    return env.load_plant(SAMPLE_SPEC)


@pytest.fixture()
def small_spec(tmp_path: Path) -> Path:
    """A 2-control dataset: small enough for brute-force checks."""
    return write_dataset(tmp_path / "small", 2)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real Tune run of PPO, SAC and DQN (2 iterations each), shared by tests."""
    from tests.experiments import only_experiment_dir, write_experiment
    from tests.test_fit_cli import run_cli

    folder = tmp_path_factory.mktemp("tiny_run")
    experiment = write_experiment(folder, iterations=2)
    result = run_cli("tune", experiment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (folder / TUNE_OUTPUT).write_text(result.stdout + result.stderr)
    return only_experiment_dir(folder / "results")


@pytest.fixture(scope="session")
def trained_ppo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real PPO run trained to the planner-relative target (about half a minute).

    Its budget is counted in env steps, not seconds, so what it learns does not depend
    on how fast or busy the machine is (PPO reaches the target in about 10k steps)."""
    from tests.experiments import only_experiment_dir, write_experiment
    from tests.test_fit_cli import run_cli

    folder = tmp_path_factory.mktemp("trained_ppo")
    experiment = write_experiment(
        folder,
        algorithms=("PPO",),
        rows=None,
        stop={"env_steps": 61440, "success_rate": 0.99, "moves_ratio": 1.05},
    )
    result = run_cli("tune", experiment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return only_experiment_dir(folder / "results")
