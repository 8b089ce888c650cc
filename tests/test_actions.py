"""Actions outside the action space are refused, and a refused action changes nothing.

Gymnasium's own environments refuse out-of-space actions; without the check an
out-of-range index wraps around (``-1`` is the last flat action), a ``MultiDiscrete``
value of 5 moves a control four steps, and a NaN poisons the temperature for the rest
of the episode.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import env
from env.actions import CONTINUOUS_TOLERANCE
from env.baselines import FunctionPolicy
from env.evaluation import evaluate_policy
from tests.conftest import SAMPLE_SPEC
from tests.datasets import write_dataset

NOISY = {"noise_std": 0.5, "drift_std": 0.1}  # so that a consumed random number shows


@pytest.fixture(scope="session")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Dataset specs by number of controls: generated plants and the sample (4)."""
    folder = tmp_path_factory.mktemp("action_plants")
    return {1: write_dataset(folder / "a", 1), 4: SAMPLE_SPEC, 6: write_dataset(folder / "b", 6)}


def make(spec: Path, mode: str) -> gym.Env:
    return gym.make(env.ENV_ID, spec_path=str(spec), action_mode=mode, settings=NOISY)


def state_of(environment: gym.Env) -> tuple:
    """Everything a step reads or writes: temperature, controls, step count, disturbance,
    offset, and the random generator's state."""
    e = environment.unwrapped
    return (
        e._temperature,
        list(e._controls),
        e._t,
        e._disturbance,
        e._offset,
        e.np_random.bit_generator.state,
    )


BIG = 2**62


def one_replaced(case: tuple[list, int, Any], dtype: Any) -> np.ndarray:
    """A valid action with the value at one position replaced by a bad one."""
    values, position, bad = case
    return np.array([*values[:position], bad, *values[position + 1 :]], dtype=dtype)


@st.composite
def invalid_action(draw: st.DrawFn, mode: str, k: int) -> Any:
    """An action outside the mode's space, of one of the ways it can be wrong."""
    if mode == "discrete_flat":
        n = 3**k
        return draw(
            st.one_of(
                st.integers(-BIG, -1),
                st.integers(n, BIG),
                st.integers(-BIG, BIG).map(np.int64).filter(lambda i: not 0 <= i < n),
                st.floats(0, n - 1).map(float),  # a float, even a whole one
                st.integers(0, n - 1).map(lambda i: np.array([i])),  # wrong shape
                st.just(np.int64(0)).map(lambda i: np.array([i, i])),
            )
        )
    wrong_length = st.integers(0, k + 2).filter(lambda n: n != k)
    if mode == "discrete":
        valid = st.lists(st.integers(0, 2), min_size=k, max_size=k)
        bad_value = st.one_of(st.integers(-BIG, -1), st.integers(3, BIG))
        return draw(
            st.one_of(
                st.tuples(valid, st.integers(0, k - 1), bad_value).map(
                    lambda case: one_replaced(case, np.int64)
                ),
                valid.map(lambda v: np.array(v, dtype=np.float64)),  # floats, even 0., 1., 2.
                wrong_length.map(lambda n: np.ones(n, dtype=np.int64)),
                valid.map(lambda v: np.array([v, v], dtype=np.int64)),  # a batch, not one action
            )
        )
    valid = st.lists(st.floats(-1, 1, width=32), min_size=k, max_size=k)
    beyond = st.floats(1 + 10 * CONTINUOUS_TOLERANCE, 1e30) | st.floats(-1e30, -1 - 1e-5)
    bad_value = st.sampled_from([np.nan, np.inf, -np.inf]) | beyond
    return draw(
        st.one_of(
            st.tuples(valid, st.integers(0, k - 1), bad_value).map(
                lambda case: one_replaced(case, np.float32)
            ),
            st.tuples(valid, st.integers(0, k - 1), bad_value).map(
                lambda case: one_replaced(case, np.float64)
            ),
            wrong_length.map(lambda n: np.zeros(n, dtype=np.float32)),
            valid.map(lambda v: np.array(v, dtype=object)),
        )
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[int, str, int, int, Any]:
    k = draw(st.sampled_from([1, 4, 6]))
    mode = draw(st.sampled_from(env.ACTION_MODES))
    seed = draw(st.integers(0, 2**31 - 1))
    before = draw(st.integers(0, 12))  # valid steps taken first: refuse mid-episode too
    return k, mode, seed, before, draw(invalid_action(mode, k))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_invalid_actions_are_refused_and_change_nothing(
    case: tuple[int, str, int, int, Any], specs: dict[int, Path]
) -> None:
    k, mode, seed, before, action = case
    environment, twin = make(specs[k], mode), make(specs[k], mode)
    environment.action_space.seed(seed)
    for e in (environment, twin):
        e.reset(seed=seed)
    for _ in range(before):
        valid = environment.action_space.sample()
        environment.step(valid)
        twin.step(valid)
    state = state_of(environment)
    space = str(environment.action_space)
    with pytest.raises(ValueError, match=re.escape(space)) as refused:
        environment.step(action)
    assert str(refused.value).startswith("action "), refused.value
    assert state_of(environment) == state
    # and it goes on exactly like a twin that never saw the invalid action
    valid = environment.action_space.sample()
    after, twin_after = environment.step(valid), twin.step(valid)
    np.testing.assert_array_equal(after[0], twin_after[0])
    assert after[1:] == twin_after[1:]


@pytest.mark.parametrize(
    ("mode", "action", "named"),
    [
        ("discrete_flat", -1, "action -1 "),  # would wrap to the last action
        ("discrete_flat", 81, "action 81 "),
        ("discrete", np.array([5, 0, 0, 0]), "[5, 0, 0, 0]"),  # would move four steps
        ("continuous", np.array([np.nan, 0, 0, 0], dtype=np.float32), "nan"),
        ("continuous", np.array([1.5, 0, 0, 0], dtype=np.float32), "1.5"),
    ],
)
def test_the_reported_cases_are_refused_with_action_and_space(
    mode: str, action: Any, named: str
) -> None:
    environment = gym.make(env.ENV_ID, action_mode=mode)
    environment.reset(seed=0)
    with pytest.raises(ValueError) as refused:
        environment.step(action)
    message = str(refused.value)
    assert named in message and str(environment.action_space) in message, message


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_continuous_round_off_beyond_one_counts_as_one(sign: float) -> None:
    """RLlib's unsquashing or a policy's float64 maths may land a hair outside +/-1."""
    exact, rounded = (gym.make(env.ENV_ID, action_mode="continuous") for _ in range(2))
    hair = np.nextafter(1.0 + CONTINUOUS_TOLERANCE, 0.0)  # just inside the tolerance
    for e in (exact, rounded):
        e.reset(seed=0, options={"row": 3})
    at_one = exact.step(np.full(4, sign, dtype=np.float32))
    beyond = rounded.step(np.full(4, sign * hair, dtype=np.float64))
    np.testing.assert_array_equal(at_one[0], beyond[0])
    assert at_one[4]["controls"] == beyond[4]["controls"]
    with pytest.raises(ValueError, match="within"):
        rounded.step(np.full(4, sign * (1.0 + 2 * CONTINUOUS_TOLERANCE)))


@pytest.mark.parametrize("mode", env.ACTION_MODES)
def test_batch_evaluation_refuses_a_policy_acting_outside_the_space(
    mode: str, sample_plant: env.Plant
) -> None:
    """The vectorised rollout (evaluate, report, Tune scoring) checks actions too."""
    codec = sample_plant.codec(mode)
    bad = {"discrete": 3, "discrete_flat": -1, "continuous": np.nan}[mode]

    def act(obs: np.ndarray) -> np.ndarray:
        actions = codec.keep(len(obs))
        actions[len(obs) // 2] = bad  # one row of the batch goes wrong
        return actions

    rows = sample_plant.start_indices[:10]
    with pytest.raises(ValueError, match=r"batch index \(5"):
        evaluate_policy(sample_plant, codec, FunctionPolicy("broken", act), rows)
