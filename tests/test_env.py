"""The Gymnasium environment: API conformance, determinism, rewards, dynamics."""

from __future__ import annotations

import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import env
from env.baselines import RandomPolicy
from env.evaluation import rollout, start_states
from tests.conftest import REPO, SAMPLE_SPEC

FURNACE_SPEC = REPO / "data" / "furnace_log_spec.yaml"


@pytest.mark.parametrize("mode", env.ACTION_MODES)
def test_gymnasium_env_checker_passes(mode: str) -> None:
    environment = gym.make(env.ENV_ID, action_mode=mode)
    check_env(environment.unwrapped, skip_render_check=False)


def test_make_without_arguments_uses_sample_data() -> None:
    environment = gym.make(env.ENV_ID)
    assert isinstance(environment.action_space, gym.spaces.MultiDiscrete)
    assert environment.unwrapped.plant.spec.control_names == (
        "fuel_rate",
        "air_fuel_ratio",
        "feed_rate",
        "coolant_flow",
    )


@pytest.mark.parametrize(
    ("mode", "space"),
    [
        ("discrete", gym.spaces.MultiDiscrete),
        ("discrete_flat", gym.spaces.Discrete),
        ("continuous", gym.spaces.Box),
    ],
)
def test_action_modes_pick_spaces(mode: str, space: type) -> None:
    environment = gym.make(env.ENV_ID, action_mode=mode)
    assert isinstance(environment.action_space, space)
    if mode == "discrete_flat":
        assert environment.action_space.n == 3**4


def test_unknown_env_config_key_is_refused() -> None:
    with pytest.raises(env.InputError, match="horizn"):
        gym.make(env.ENV_ID, horizn=3)


@pytest.mark.parametrize("mode", env.ACTION_MODES)
def test_same_seed_same_trajectory(mode: str) -> None:
    """Two envs, same seed, same actions: everything equal for 50 steps (with noise on)."""
    settings = {"noise_std": 0.5, "drift_std": 0.1}
    a = gym.make(env.ENV_ID, action_mode=mode, settings=settings)
    b = gym.make(env.ENV_ID, action_mode=mode, settings=settings)
    obs_a, info_a = a.reset(seed=123)
    obs_b, info_b = b.reset(seed=123)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert info_a == info_b
    a.action_space.seed(5)
    for _ in range(50):
        action = a.action_space.sample()
        step_a, step_b = a.step(action), b.step(action)
        np.testing.assert_array_equal(step_a[0], step_b[0])
        assert step_a[1:] == step_b[1:]
        if step_a[3]:
            np.testing.assert_array_equal(a.reset()[0], b.reset()[0])


def test_different_seeds_start_differently() -> None:
    environment = gym.make(env.ENV_ID)
    rows = {environment.reset(seed=s)[1]["start_row"] for s in range(10)}
    assert len(rows) > 5


@pytest.mark.parametrize("mode", env.ACTION_MODES)
def test_observations_stay_in_space(mode: str) -> None:
    environment = gym.make(env.ENV_ID, action_mode=mode)
    environment.action_space.seed(0)
    obs, _ = environment.reset(seed=0)
    for _ in range(300):
        assert environment.observation_space.contains(obs), obs
        obs, reward, _, truncated, _ = environment.step(environment.action_space.sample())
        assert np.isfinite(reward)
        if truncated:
            obs, _ = environment.reset()


def test_pickle_round_trip_keeps_state() -> None:
    environment = gym.make(env.ENV_ID).unwrapped
    environment.reset(seed=3)
    environment.step(np.array([2, 1, 0, 1]))
    clone = pickle.loads(pickle.dumps(environment))
    action = np.array([0, 2, 1, 1])
    a, b = environment.step(action), clone.step(action)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1:] == b[1:]


def _row_with(plant: env.Plant, in_band: bool) -> int:
    rows = plant.start_indices[plant.in_band(plant.data.state[plant.start_indices]) == in_band]
    return int(plant.data.row_numbers[rows[0]])


def test_keep_holds_temperature_and_offset_is_carried(sample_plant: env.Plant) -> None:
    """The first "keep" reproduces the row's measured reading (no jump to the model)."""
    environment = gym.make(env.ENV_ID).unwrapped
    row = _row_with(sample_plant, in_band=False)
    _, info = environment.reset(options={"row": row})
    measured = info["temperature"]
    assert measured == pytest.approx(sample_plant.data.state[row])
    for _ in range(3):
        _, reward, _, _, info = environment.step(environment.codec.keep())
        assert info["temperature"] == pytest.approx(measured, abs=1e-9)
        assert reward < 0  # outside the band, keeping is penalised


def test_reward_positive_inside_negative_outside_and_keep_wins_inside(
    sample_plant: env.Plant,
) -> None:
    # the per-reading rule, without the end's payment for the rest of the horizon
    environment = gym.make(env.ENV_ID, settings={"end_on_hold": False}).unwrapped
    # the start row nearest the band centre: some single moves stay inside, some leave
    starts = sample_plant.start_indices
    centre = starts[np.argmin(np.abs(sample_plant.data.state[starts] - sample_plant.band_mid))]
    row = int(sample_plant.data.row_numbers[centre])
    environment.reset(options={"row": row})
    _, keep_reward, _, _, info = environment.step(environment.codec.keep())
    assert info["in_band"] and keep_reward == pytest.approx(sample_plant.settings.in_band_reward)
    stayed_inside = 0
    for i in range(sample_plant.n_controls):
        for direction in (-1, 1):
            environment.reset(options={"row": row})
            move = np.zeros(sample_plant.n_controls, dtype=np.int8)
            move[i] = direction
            _, reward, _, _, info = environment.step(environment.codec.from_directions(move))
            if info["in_band"]:  # positive, but less than keeping: the move costs
                stayed_inside += 1
                assert 0 < reward < keep_reward, (i, direction, reward)
            else:
                assert reward < 0, (i, direction, reward)
    assert stayed_inside > 0  # the "keep wins inside" comparison did happen


def test_reward_grows_more_negative_with_distance(sample_plant: env.Plant) -> None:
    low, high = sample_plant.band
    near, far = (
        sample_plant.reward_scalar(low - 1.0, 0.0),
        sample_plant.reward_scalar(low - 20, 0.0),
    )
    above = sample_plant.reward_scalar(high + 5.0, 0.0)
    assert far < near < 0 and above < 0


def test_centre_weight_pays_the_middle_of_the_band_most(sample_plant: env.Plant) -> None:
    """``env.centre_weight``: full reward in the band's middle, ``w`` less at its edges,
    in between by the square of the distance; outside unchanged; both twins agree."""
    import dataclasses

    weight = 0.4
    centred = dataclasses.replace(
        sample_plant,
        settings=dataclasses.replace(sample_plant.settings, centre_weight=weight),
    )
    low, high = sample_plant.band
    mid, full = sample_plant.band_mid, sample_plant.settings.in_band_reward
    quarter = mid + 0.25 * (high - low)  # half-way from the middle to the edge
    temps = np.array([mid, quarter, high, low, high + 1.0])
    expected = [full, full - weight / 4, full - weight, full - weight]
    rewards = centred.reward(temps, np.zeros((5, sample_plant.n_controls)))
    np.testing.assert_allclose(rewards[:4], expected)
    assert rewards[4] == pytest.approx(sample_plant.reward_scalar(high + 1.0, 0.0))
    for t, r in zip(temps, rewards, strict=True):
        assert centred.reward_scalar(float(t), 0.0) == pytest.approx(r)


def test_scalar_and_batch_twins_agree(sample_plant: env.Plant) -> None:
    rng = np.random.default_rng(0)
    temps = rng.uniform(900, 1010, 200)
    controls = rng.uniform(sample_plant.lower, sample_plant.upper, size=(200, 4))
    moved = rng.uniform(0, 1, size=(200, 4))
    batch_reward = sample_plant.reward(temps, moved)
    batch_obs = sample_plant.observe(temps, controls)
    for i in range(200):
        assert sample_plant.reward_scalar(temps[i], moved[i].mean()) == pytest.approx(
            batch_reward[i]
        )
        np.testing.assert_allclose(
            sample_plant.observe_scalar(temps[i], controls[i].tolist()), batch_obs[i], atol=1e-6
        )
        assert sample_plant.model.predict_scalar(controls[i].tolist()) == pytest.approx(
            sample_plant.model.predict(controls[i])
        )


@pytest.mark.parametrize("mode", env.ACTION_MODES)
def test_env_steps_match_batch_rollout(mode: str, sample_plant: env.Plant) -> None:
    """The env and the vectorised evaluation step the same dynamics."""
    codec = sample_plant.codec(mode)
    rows = sample_plant.start_indices[:25]
    temps, controls = start_states(sample_plant, rows)
    policy = RandomPolicy(codec, seed=4)
    batch = rollout(sample_plant, codec, policy, temps, controls)
    policy.reset(temps, controls)  # replay the same random actions one episode at a time
    actions = [policy.act(np.zeros((len(rows), 1)), temps, controls, t) for t in range(30)]
    # the evaluation's rewards leave out the training-only progress term (tested below)
    settings = {"end_on_hold": False, "progress_shaping": 0.0}
    environment = gym.make(env.ENV_ID, action_mode=mode, settings=settings).unwrapped
    for i, row in enumerate(rows):
        environment.reset(options={"row": int(sample_plant.data.row_numbers[row])})
        for t in range(30):
            _, reward, _, truncated, info = environment.step(actions[t][i])
            assert info["temperature"] == pytest.approx(batch.temperatures[i, t + 1], abs=1e-9)
            assert reward == pytest.approx(batch.rewards[i, t], abs=1e-9)
        assert truncated


def test_controls_are_clipped_at_bounds(sample_plant: env.Plant) -> None:
    environment = gym.make(env.ENV_ID).unwrapped
    start = sample_plant.upper.copy()
    environment.reset(options={"temperature": 950.0, "controls": start})
    for _ in range(3):
        _, _, _, _, info = environment.step(np.full(4, 2))  # increase everything
        np.testing.assert_allclose(list(info["controls"].values()), sample_plant.upper)
    _, _, _, _, info = environment.step(np.full(4, 0))  # decrease moves off the bound
    np.testing.assert_allclose(
        list(info["controls"].values()), sample_plant.upper - sample_plant.steps
    )


def test_reset_from_given_state_and_bad_state() -> None:
    environment = gym.make(env.ENV_ID).unwrapped
    controls = {"fuel_rate": 12.0, "air_fuel_ratio": 1.15, "feed_rate": 80.0, "coolant_flow": 40}
    obs, info = environment.reset(options={"temperature": 947.1, "controls": controls})
    assert info["temperature"] == 947.1 and info["controls"]["feed_rate"] == 80.0
    assert not info["in_band"] and obs[1] < 0
    with pytest.raises(ValueError, match="missing"):
        environment.reset(options={"temperature": 950.0, "controls": {"fuel_rate": 1.0}})


def test_truncates_after_horizon() -> None:
    environment = gym.make(env.ENV_ID, settings={"horizon": 7, "end_on_hold": False})
    environment.reset(seed=0)
    flags = [environment.step(environment.unwrapped.codec.keep())[3] for _ in range(7)]
    assert flags == [False] * 6 + [True]


def test_start_rows_cycle_in_order(sample_plant: env.Plant) -> None:
    rows = [int(r) for r in sample_plant.data.row_numbers[[5, 1, 9]]]
    environment = gym.make(env.ENV_ID, start_rows=rows)
    seen = [environment.reset()[1]["start_row"] for _ in range(6)]
    assert seen == rows + rows


def _keep_readings(settings: dict, row: int, seed: int, moves: int) -> np.ndarray:
    """Readings after ``moves`` "keep" moves from ``row`` (the start reading first)."""
    environment = gym.make(env.ENV_ID, settings=settings).unwrapped
    _, info = environment.reset(seed=seed, options={"row": row})
    keep = environment.codec.keep()
    return np.array(
        [info["temperature"]] + [environment.step(keep)[4]["temperature"] for _ in range(moves)]
    )


def test_lag_noise_and_drift_change_dynamics(sample_plant: env.Plant) -> None:
    row = _row_with(sample_plant, in_band=False)
    up = np.full(4, 2)
    lagged = gym.make(env.ENV_ID, settings={"response_rate": 0.5}).unwrapped
    instant = gym.make(env.ENV_ID).unwrapped
    for e in (lagged, instant):
        e.reset(options={"row": row})
    t_lag = lagged.step(up)[4]["temperature"]
    t_now = instant.step(up)[4]["temperature"]
    start = sample_plant.data.state[np.searchsorted(sample_plant.data.row_numbers, row)]
    assert t_lag - start == pytest.approx(0.5 * (t_now - start))
    # With the controls kept, the reading is the start reading plus: white noise
    # (a fresh draw each move) or drift (a random walk: the draws add up). Both draw
    # standard normals from the env's own seeded generator, which the test replays.
    seed, moves = 7, 20
    draws = gym.utils.seeding.np_random(seed)[0].standard_normal(moves)
    noisy = _keep_readings({"noise_std": 0.5}, row, seed, moves)
    np.testing.assert_allclose(noisy[1:] - noisy[0], 0.5 * draws, atol=1e-9)
    drifting = _keep_readings({"drift_std": 0.3}, row, seed, moves)
    np.testing.assert_allclose(drifting[1:] - drifting[0], 0.3 * np.cumsum(draws), atol=1e-9)
    assert np.ptp(_keep_readings({}, row, seed, moves)) == 0.0  # neither: nothing moves


def test_other_dataset_by_path(small_spec: Path) -> None:
    environment = gym.make(env.ENV_ID, spec_path=str(small_spec), action_mode="discrete_flat")
    check_env(environment.unwrapped)
    assert environment.action_space.n == 9
    assert environment.observation_space.shape == (4,)


def test_sample_spec_constant_points_at_bundled_data() -> None:
    assert Path(env.DEFAULT_SPEC_PATH) == SAMPLE_SPEC


def test_episode_ends_once_the_reading_holds_in_the_band(sample_plant: env.Plant) -> None:
    """Terminated exactly at the move that brings the reading into the band (on a
    plant without lag a reading in the band holds), never before; with
    ``end_on_hold: false`` the episode runs to the horizon. The return is the same
    either way when the policy keeps once there: the end pays what keeping earns."""
    from env.planner import plan_discrete

    data = sample_plant.data
    row = next(i for i in sample_plant.start_indices if data.state[i] < sample_plant.band[0] - 10)
    plan = plan_discrete(sample_plant, data.controls[row], data.state[row])
    assert plan.moves >= 2
    returns = {}
    for end_on_hold in (True, False):
        environment = gym.make(env.ENV_ID, settings={"end_on_hold": end_on_hold}).unwrapped
        environment.reset(options={"row": int(data.row_numbers[row])})
        codec = environment.codec
        flags = []
        returns[end_on_hold] = 0.0
        for direction in plan.directions(sample_plant.steps):
            _, reward, terminated, truncated, info = environment.step(
                codec.from_directions(direction)
            )
            returns[end_on_hold] += reward
            flags.append((terminated, info["in_band"]))
            assert not truncated
        assert flags[-1] == (end_on_hold, True)
        assert all(not terminated and not inside for terminated, inside in flags[:-1])
        while not (terminated or truncated):
            _, reward, terminated, truncated, _ = environment.step(codec.keep())
            returns[end_on_hold] += reward
    assert returns[True] == pytest.approx(returns[False])


def test_a_reading_passing_through_the_band_does_not_end_the_episode() -> None:
    """On a lagging plant a reading inside the band whose settings settle outside it
    is on its way out: the episode goes on; one that settles inside ends."""
    settings = {"end_on_hold": True}  # off by default on a lagging plant
    environment = gym.make(env.ENV_ID, spec_path=str(FURNACE_SPEC), settings=settings)
    environment = environment.unwrapped
    plant = environment.plant
    assert not env.load_plant(FURNACE_SPEC).ends_on_hold
    settled = plant.model.predict(plant.data.controls)
    staying = plant.data.controls[np.argmin(np.abs(settled - plant.band_mid))]
    # settles just below the band: one sample later the reading is still inside
    below = np.where(settled < plant.band[0], settled, -np.inf)
    leaving = plant.data.controls[np.argmax(below)]
    assert plant.in_band(plant.model.predict(staying)) and not plant.in_band(below.max())
    outcomes = {}
    for name, controls in (("staying", staying), ("leaving", leaving)):
        pending = np.repeat(controls[None, :], plant.dead_time, axis=0)
        environment.reset(
            options={"temperature": plant.band_mid, "controls": controls, "pending": pending}
        )
        _, _, terminated, _, info = environment.step(environment.codec.keep())
        outcomes[name] = (terminated, info["in_band"])
    assert outcomes == {"staying": (True, True), "leaving": (False, True)}


@pytest.mark.parametrize(("margin", "ends"), [(0.0, True), (0.5, False)])
def test_the_hold_margin_holds_on_a_static_plant_too(
    sample_plant: env.Plant, margin: float, ends: bool
) -> None:
    """A reading 0.8 half-widths from the band's middle, kept: with ``env.hold_margin``
    0.5 it is in the band's outer margin, so neither the advice's rule
    (:meth:`env.plant.Plant.holds`) nor the episode's end treats it as holding, as on a
    lagging plant (:meth:`env.plant.Plant.keep_settles`)."""
    import dataclasses

    plant = dataclasses.replace(
        sample_plant, settings=dataclasses.replace(sample_plant.settings, hold_margin=margin)
    )
    temperature = plant.band_mid + 0.8 * 0.5 * plant.band_width
    controls = plant.rows.controls[:1]
    held = plant.holds(np.array([temperature]), controls, plant.no_pending(controls), 0.0)
    assert bool(held[0]) == ends
    assert (
        bool(
            plant.keep_settles(np.array([temperature]), controls, plant.no_pending(controls), 0.0)[
                0
            ]
            == 0
        )
        == ends
    )
    environment = gym.make(env.ENV_ID, settings={"hold_margin": margin}).unwrapped
    environment.reset(options={"temperature": temperature, "controls": controls[0]})
    _, _, terminated, _, info = environment.step(environment.codec.keep())
    assert info["in_band"] and terminated == ends


def test_the_end_of_an_episode_pays_the_held_readings_reward(sample_plant: env.Plant) -> None:
    """An episode that ends holding pays, for every reading left to the horizon, the
    reward of the reading it holds: with ``env.centre_weight`` less off the middle."""
    weight, where = 0.5, 0.6
    environment = gym.make(env.ENV_ID, settings={"centre_weight": weight}).unwrapped
    temperature = sample_plant.band_mid + where * 0.5 * sample_plant.band_width
    environment.reset(
        options={"temperature": temperature, "controls": sample_plant.rows.controls[0]}
    )
    _, reward, terminated, _, _ = environment.step(environment.codec.keep())
    assert terminated
    per_reading = sample_plant.settings.in_band_reward - weight * where * where
    assert reward == pytest.approx(per_reading * sample_plant.settings.horizon)


def test_progress_term_is_the_potential_difference_of_each_step(sample_plant: env.Plant) -> None:
    """``env.progress_shaping``: every training reward is the plain reward plus
    ``Phi(T') - Phi(T)``, so an episode's extra return is ``Phi(T_end) - Phi(T_0)`` and
    the fewest moves stay best; a move toward the band is paid at once."""
    shaped = gym.make(env.ENV_ID).unwrapped
    plain = gym.make(env.ENV_ID, settings={"progress_shaping": 0.0}).unwrapped
    plant = shaped.plant
    assert plant.progress_weight == pytest.approx(2.0) and plain.plant.progress_weight == 0.0
    low, _ = plant.band
    start = {"temperature": low - 4.0 * plant.move_reach, "controls": plant.rows.controls[0]}
    first = plant.progress_potential(start["temperature"])
    assert first == pytest.approx(-8.0)
    rng = np.random.default_rng(0)
    shaped.reset(options=start)
    plain.reset(options=start)
    extra = 0.0
    for _ in range(10):
        action = rng.integers(0, 3, size=plant.n_controls)
        before = shaped._temperature
        _, reward, done, _, _ = shaped.step(action)
        _, plain_reward, plain_done, _, _ = plain.step(action)
        assert done == plain_done
        step_extra = reward - plain_reward
        expected = plant.progress_potential(shaped._temperature) - plant.progress_potential(before)
        assert step_extra == pytest.approx(expected)
        extra += step_extra
        if done:
            break
    assert extra == pytest.approx(plant.progress_potential(shaped._temperature) - first)
    # one step of every control toward the band (up where up heats, from the sample's
    # model) is paid above keeping
    up = plant.model.predict(plant.rows.controls[:1] + plant.steps)[0]
    down = plant.model.predict(plant.rows.controls[:1] - plant.steps)[0]
    warmer = 2 if up > down else 0
    gains = []
    for action in (np.full(plant.n_controls, warmer), shaped.codec.keep()):
        shaped.reset(options=start)
        plain.reset(options=start)
        gains.append(shaped.step(action)[1] - plain.step(action)[1])
    assert gains[0] > 0.0 == pytest.approx(gains[1])


def test_progress_term_pays_a_lagging_plants_move_when_it_is_made() -> None:
    """On a lagging plant the potential is of the settling temperature: a move toward
    the band is paid at once, though the reading has not moved yet (dead time), and
    keeping while the reading travels earns no progress term."""
    shaped = gym.make(env.ENV_ID, spec_path=str(FURNACE_SPEC)).unwrapped
    plain = gym.make(
        env.ENV_ID, spec_path=str(FURNACE_SPEC), settings={"progress_shaping": 0.0}
    ).unwrapped
    plant = shaped.plant
    assert plant.lagging and plant.dead_time >= 1 and plant.progress_weight > 0.0
    settled = plant.model.predict(plant.rows.controls)
    coldest = plant.rows.controls[int(np.argmin(settled))]
    start = {"temperature": float(settled.min()), "controls": coldest}
    up = plant.model.predict((coldest + plant.steps)[None])[0]
    warmer = np.full(plant.n_controls, 2 if up > settled.min() else 0)
    extras, readings = [], []
    for environment in (shaped, plain):
        environment.reset(seed=0, options=start)
    for action in (warmer, shaped.codec.keep(), shaped.codec.keep()):
        rewards = [environment.step(action)[1] for environment in (shaped, plain)]
        extras.append(rewards[0] - rewards[1])
        readings.append(shaped._temperature)
    assert readings[0] == pytest.approx(start["temperature"])  # the dead time: not yet
    assert extras[0] > 0.0
    assert extras[1] == pytest.approx(0.0) and extras[2] == pytest.approx(0.0)
    assert readings[2] > readings[0]  # the reading travels meanwhile, unpaid


@pytest.mark.parametrize("n_controls", [2, 6])
def test_move_reach_is_what_a_planned_move_covers(tmp_path: Path, n_controls: int) -> None:
    """``Plant.move_reach`` scales the progress term: on generated plants of 2 and 6
    controls a fewest-moves plan covers about that much temperature per move."""
    from env.planner import plan_rows
    from tests.datasets import write_synthetic

    plant = env.load_plant(write_synthetic(tmp_path, n_controls, mean_depth=8.0, rows=120))
    rows = plant.start_indices
    temperatures = plant.rows.state[rows]
    plans = plan_rows(plant, temperatures, plant.rows.controls[rows])
    moves = np.array([-1 if plan.moves is None else plan.moves for plan in plans], dtype=float)
    distance = np.abs(plant.distance_to_band(temperatures))
    deep = moves >= 4
    assert deep.sum() >= 20
    per_move = float(np.median(distance[deep] / moves[deep]))
    assert 0.5 < per_move / plant.move_reach < 1.5
