"""Plants with inertia: the environment, the yardstick and the evaluation on a fitted log."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import env
from env.baselines import DoNothingPolicy, FunctionPolicy, PlannerPolicy, RandomPolicy
from env.data import load_plant_data
from env.evaluation import rollout, start_pending, start_states, summarize
from env.lagged_planner import settle_lower_bound, simulate_lagged
from env.planner import plan_rows
from env.support import fit_data_support
from env.synthetic import make_synthetic_plant
from env.synthetic_log import LogSettings
from env.yardstick import compute_yardstick, load_yardstick, save_yardstick
from rllib_project.recommendation import advise
from tests.conftest import REPO
from tests.test_fit_cli import run_cli

RATE, DEAD_TIME = 0.25, 2


@pytest.fixture(scope="module")
def log_plant(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fitted log of a plant with a lag and a dead time of 2: (spec, model)."""
    folder = tmp_path_factory.mktemp("log")
    settings = LogSettings(rate=RATE, dead_time=DEAD_TIME, samples=900, drift_fraction=0.02)
    spec = make_synthetic_plant(
        n_controls=2, mean_depth=3, seed=4, ensemble_size=2, horizon=40, log=settings
    ).write(folder)
    model = folder / "model.json"
    result = run_cli("fit", spec, "--out", model)
    assert result.returncode == 0, result.stderr
    return spec, model


@pytest.fixture(scope="module")
def plant(log_plant: tuple[Path, Path]) -> env.Plant:
    spec, model = log_plant
    loaded = env.load_plant(spec, model)
    assert loaded.dead_time == DEAD_TIME and abs(loaded.rate - RATE) < 0.05
    return loaded


@pytest.mark.parametrize("mode", env.ACTION_MODES)
def test_env_checker_passes_with_dead_time(mode: str, log_plant: tuple[Path, Path]) -> None:
    spec, model = log_plant
    environment = gym.make(env.ENV_ID, spec_path=spec, model_path=model, action_mode=mode)
    check_env(environment.unwrapped)
    k = environment.unwrapped.plant.n_controls
    # temperature, gap, k controls, settling temperature and gap, (D - 1) settings in flight
    assert environment.observation_space.shape == (2 + k + 2 + (DEAD_TIME - 1) * k,)


def test_a_move_shows_no_effect_for_the_dead_time_then_the_lag(
    log_plant: tuple[Path, Path], plant: env.Plant
) -> None:
    spec, model = log_plant
    environment = gym.make(env.ENV_ID, spec_path=spec, model_path=model).unwrapped
    u0 = (plant.lower + plant.upper) / 2
    steady = float(plant.model.predict(u0))
    _, info = environment.reset(options={"temperature": steady, "controls": u0})
    move = np.array([2, 1])  # raise the first control by one step, keep the other
    readings = [info["temperature"]]
    for t in range(6):
        _, _, _, _, info = environment.step(move if t == 0 else environment.codec.keep())
        readings.append(info["temperature"])
    new_steady = float(plant.model.predict(u0 + np.array([plant.steps[0], 0.0])))
    assert new_steady != pytest.approx(steady)
    # nothing for DEAD_TIME readings: the move is in flight
    assert readings[1 : DEAD_TIME + 1] == pytest.approx([steady] * DEAD_TIME, abs=1e-9)
    # then the first-order lag: each reading closes the rate's share of the gap
    expected = steady
    for t in range(DEAD_TIME + 1, 7):
        expected += plant.rate * (new_steady - expected)
        assert readings[t] == pytest.approx(expected, abs=1e-9)


def test_episodes_start_from_logged_rows_with_their_settings_in_flight(
    log_plant: tuple[Path, Path], plant: env.Plant
) -> None:
    spec, model = log_plant
    environment = gym.make(env.ENV_ID, spec_path=spec, model_path=model).unwrapped
    data = plant.rows
    index = int(plant.start_indices[len(plant.start_indices) // 2])
    _, info = environment.reset(options={"row": int(data.row_numbers[index])})
    assert info["temperature"] == data.state[index]  # the logged reading, mid-way
    # the decision at row r starts from row r - 1's settings; rows r-2, r-1 are in flight
    assert list(info["controls"].values()) == pytest.approx(data.controls[index - 1])
    assert info["in_flight"] == pytest.approx(data.controls[index - DEAD_TIME : index])
    # a row without enough rows of its segment before it cannot start an episode
    assert data.segment is not None
    second = int(np.flatnonzero(data.position_in_segment() == 1)[0])  # one row before it
    with pytest.raises(ValueError, match="earlier row"):
        environment.reset(options={"row": int(data.row_numbers[second])})


def test_env_and_batch_rollout_step_the_same_lagging_plant(
    log_plant: tuple[Path, Path], plant: env.Plant
) -> None:
    spec, model = log_plant
    codec = plant.codec("discrete")
    rows = plant.start_indices[::97][:8]
    temps, controls = start_states(plant, rows)
    pending = start_pending(plant, rows)
    policy = RandomPolicy(codec, seed=2)
    batch = rollout(plant, codec, policy, temps, controls, pending=pending)
    policy.reset(temps, controls)
    actions = [policy.act(np.zeros((len(rows), 1)), temps, controls, t) for t in range(40)]
    # every step to the horizon (the batch roll-out does not end at a hold); the
    # evaluation's rewards leave out the training-only progress term
    settings = {"end_on_hold": False, "progress_shaping": 0.0}
    environment = gym.make(env.ENV_ID, spec_path=spec, model_path=model, settings=settings)
    environment = environment.unwrapped
    for i, row in enumerate(rows):
        obs, _ = environment.reset(options={"row": int(plant.rows.row_numbers[row])})
        expected_obs = plant.observe(temps[i], controls[i], pending[i])
        np.testing.assert_allclose(obs, expected_obs, atol=1e-6)
        for t in range(40):
            obs, reward, _, _, info = environment.step(actions[t][i])
            assert info["temperature"] == pytest.approx(batch.temperatures[i, t + 1], abs=1e-9)
            assert reward == pytest.approx(batch.rewards[i, t], abs=1e-9)


def test_yardstick_plans_settle_in_the_band_and_are_exact_only_when_proven(
    plant: env.Plant,
) -> None:
    rows = plant.start_indices[::7]
    yardstick = compute_yardstick(plant, "discrete", rows)
    temps, controls = start_states(plant, rows)
    pending = start_pending(plant, rows)
    horizon = plant.settings.horizon
    bound = settle_lower_bound(plant, temps, controls, pending, horizon)
    assert yardstick.solvable.mean() >= 0.95
    for i in np.flatnonzero(yardstick.solvable):
        moves = int(yardstick.moves[i])
        deltas = yardstick.deltas[i].reshape(-1, plant.n_controls)
        _, readings = simulate_lagged(
            plant, temps[i : i + 1], controls[i : i + 1], pending[i : i + 1], deltas[None],
            horizon,
        )  # fmt: skip
        inside = plant.in_band(readings[0])
        assert inside[moves:].all() and (moves == 0 or not inside[moves - 1])
        assert moves >= bound[i]
        assert yardstick.exact[i] == (moves == bound[i])
    assert 0 < yardstick.exact.mean() < 1  # some proven, some labelled approximate
    summary = yardstick.summary()
    assert summary.mean_actuations is not None and summary.mean_actuations > 0


def test_planner_replays_its_plans_and_actuations_are_counted(plant: env.Plant) -> None:
    codec = plant.codec("discrete")
    rows = plant.start_indices[::31]
    temps, controls = start_states(plant, rows)
    pending = start_pending(plant, rows)
    plans = plan_rows(plant, temps, controls, pending=pending)
    planner = rollout(plant, codec, PlannerPolicy(plant, codec), temps, controls, pending=pending)
    moves = np.array([np.nan if p.moves is None else p.moves for p in plans])
    np.testing.assert_array_equal(planner.moves_to_band, moves)
    np.testing.assert_array_equal(planner.actuations, [p.actuations for p in plans])
    idle = rollout(plant, codec, DoNothingPolicy(codec), temps, controls, pending=pending)
    assert (idle.actuations == 0).all()
    assert summarize(idle).mean_actuations == 0.0 < summarize(planner).mean_actuations


def test_moves_to_band_counts_until_the_temperature_stays() -> None:
    from env.evaluation import Rollouts

    inside = np.array([[False, True, False, True, True], [True, True, True, True, False]])
    result = Rollouts(np.zeros((2, 5)), np.zeros((2, 5, 1)), np.zeros((2, 4)), inside)
    assert result.moves_to_band[0] == 3 and np.isnan(result.moves_to_band[1])
    assert result.first_entry[0] == 1 and result.first_entry[1] == 0


def test_advice_builds_the_lagging_observation_with_the_moves_in_flight(plant: env.Plant) -> None:
    """A policy on a lagging plant sees the settling temperature and the settings in
    flight at inference exactly as in training (nothing about the lag is dropped)."""
    seen: list[np.ndarray] = []
    codec = plant.codec("discrete")

    def act(obs: np.ndarray) -> np.ndarray:
        seen.append(obs)
        return codec.keep(len(obs))

    rows = plant.start_indices[:3]
    temps, controls = start_states(plant, rows)
    pending = start_pending(plant, rows)
    support = fit_data_support(plant.rows)
    advise(plant, codec, act, support, temps, controls, pending=pending, with_path=False)
    np.testing.assert_allclose(seen[0], plant.observe(temps, controls, pending), atol=1e-6)
    assert seen[0].shape == (3, plant.observation_size)


def test_generating_plant_replays_its_log(tmp_path: Path) -> None:
    """Driven with the logged settings from a logged row, the generating plant (noise
    off, no drift) reproduces the log's true temperatures."""
    settings = LogSettings(rate=0.3, dead_time=1, samples=300, drift_fraction=0.0, gaps=2)
    synthetic = make_synthetic_plant(n_controls=2, mean_depth=3, seed=1, log=settings)
    # CSV rows map to the simulated samples they were written from (gaps skipped)
    data = load_plant_data(env.load_spec(synthetic.write(tmp_path)))
    samples = synthetic.samples_of_rows(data.row_numbers)
    assert synthetic.log is not None and len(samples) < 300
    np.testing.assert_allclose(data.state, synthetic.log.readings[samples], atol=1e-4)
    simulator = synthetic.generating_plant(seed=0)
    simulator.noise_std = 0.0
    log = synthetic.log
    assert log is not None
    starts = np.array([10, 50, 200])
    simulator.start(starts)
    controls = synthetic.log_controls()
    for t in range(20):
        readings = simulator.step(controls[starts + t])
        np.testing.assert_allclose(readings, log.true_temperature[starts + t + 1], atol=1e-9)


def test_the_bundled_log_plans(tmp_path: Path) -> None:
    plant = env.load_plant(REPO / "data" / "furnace_log_spec.yaml")
    assert plant.dead_time == 2 and plant.lagging
    yardstick = compute_yardstick(plant, "discrete", plant.start_indices[::10])
    saved = load_yardstick(save_yardstick(yardstick, tmp_path / "y.json"), yardstick.key)
    summary = saved.summary()
    assert summary.solvable >= 0.98 * summary.rows
    assert summary.exact > 0 and summary.mean_actuations is not None
    assert 0 < summary.mean_actuations <= summary.mean_moves  # type: ignore[operator]


def test_a_setting_change_is_priced_on_a_lagging_plant_only(
    plant: env.Plant, sample_plant: env.Plant
) -> None:
    """The default actuation cost applies to lagging plants: a move that changes a
    setting costs 0.5 more than its step cost; a static plant and an explicit 0 keep
    the step cost alone. Batch and scalar rewards agree."""
    band_mid = plant.band_mid
    one_step = np.zeros((1, plant.n_controls))
    one_step[0, 0] = 1.0
    keep = float(plant.reward(np.array([band_mid]), np.zeros((1, plant.n_controls)))[0])
    moved = float(plant.reward(np.array([band_mid]), one_step)[0])
    step_cost = plant.settings.move_cost / plant.n_controls
    assert keep - moved == pytest.approx(env.plant.LAGGING_ACTUATION_COST + step_cost)
    assert plant.reward_scalar(band_mid, 1.0 / plant.n_controls) == pytest.approx(moved)
    assert plant.reward_scalar(band_mid, 0.0) == pytest.approx(keep)
    free = env.load_plant(plant.spec.source, None, {"actuation_cost": 0.0})
    assert free.actuation_cost == 0.0
    static_step = np.zeros((1, sample_plant.n_controls))
    static_step[0, 0] = 1.0
    mid = np.array([sample_plant.band_mid])
    difference = (
        sample_plant.reward(mid, 0 * static_step)[0] - sample_plant.reward(mid, static_step)[0]
    )
    assert difference == pytest.approx(sample_plant.settings.move_cost / sample_plant.n_controls)


class _ModelStepper:
    """The fitted model itself as a plant to close the loop on."""

    def __init__(self, plant: env.Plant, temps: np.ndarray, pending: np.ndarray) -> None:
        self.plant, self.temps, self.pending = plant, temps.copy(), pending.copy()

    def step(self, controls: np.ndarray) -> np.ndarray:
        self.temps, self.pending = self.plant.advance(self.temps, self.pending, controls, 0.0)
        return self.temps


class _ConstantStepper:
    def __init__(self, value: float, n: int) -> None:
        self.value, self.n = value, n

    def step(self, controls: np.ndarray) -> np.ndarray:
        return np.full(self.n, self.value)


def test_closed_loop_on_another_plant_uses_its_readings(plant: env.Plant) -> None:
    """``rollout(truth=...)``: with the model as the truth nothing changes; with a plant
    that always reads the band's middle, every episode succeeds at once."""
    codec = plant.codec("discrete")
    rows = plant.start_indices[::53][:10]
    temps, controls = start_states(plant, rows)
    pending = start_pending(plant, rows)
    policy = RandomPolicy(codec, seed=5)
    alone = rollout(plant, codec, policy, temps, controls, pending=pending)
    policy = RandomPolicy(codec, seed=5)
    same = rollout(plant, codec, policy, temps, controls, pending=pending,
                   truth=_ModelStepper(plant, temps, pending))  # fmt: skip
    np.testing.assert_allclose(same.temperatures, alone.temperatures, atol=1e-9)
    np.testing.assert_allclose(same.rewards, alone.rewards, atol=1e-9)
    idle = DoNothingPolicy(codec)
    held = rollout(plant, codec, idle, temps, controls, pending=pending,
                   truth=_ConstantStepper(plant.band_mid, len(rows)))  # fmt: skip
    assert held.success.all() and (held.moves_to_band <= 1).all()
    assert not rollout(plant, codec, idle, temps, controls, pending=pending).success.all()


def _settings_settling_in_band(plant: env.Plant) -> np.ndarray:
    """Logged settings whose steady state on the model is nearest the band's middle."""
    controls = plant.rows.controls[plant.start_indices]
    return controls[np.argmin(np.abs(plant.model.predict(controls) - plant.band_mid))]


def test_recommend_says_keep_on_its_way_when_the_moves_are_made(plant: env.Plant) -> None:
    """The right settings are made (and in flight), the temperature is far below the band
    and still travelling: "keep - already on its way", with the lagging path to the
    sample it arrives at. A policy that would push again is not told "on its way"."""
    from rllib_project.recommendation import format_recommendation

    codec = plant.codec("discrete")
    settings = _settings_settling_in_band(plant)
    low, high = plant.band
    start = low - 6 * (high - low)
    pending = np.repeat(settings[None], plant.dead_time, axis=0)
    support = fit_data_support(plant.rows)

    def keep(obs: np.ndarray) -> np.ndarray:
        return codec.keep(len(obs))

    batch = advise(plant, codec, keep, support, np.array([start]), settings[None],
                   pending=pending[None])  # fmt: skip
    advice = batch.recommendation(0)
    assert advice.on_its_way and advice.keep_all and not advice.in_band
    # the path follows the lag (the settings are in flight already): the gap closes by the rate
    temps = [p.temperature for p in advice.path]
    steady = float(plant.model.predict(settings[None])[0])
    for t in range(1, len(temps)):
        assert temps[t] - steady == pytest.approx((1 - plant.rate) * (temps[t - 1] - steady))
    assert advice.moves_to_band == len(temps) - 1 > plant.dead_time
    assert advice.path[-1].in_band and not advice.path[-2].in_band
    text = format_recommendation(advice)
    assert "keep - already on its way" in text and f"sample {advice.moves_to_band}" in text

    def push(obs: np.ndarray) -> np.ndarray:
        return np.full((len(obs), plant.n_controls), 2)  # raise everything

    pushed = advise(plant, codec, push, support, np.array([start]), settings[None],
                    pending=pending[None]).recommendation(0)  # fmt: skip
    assert not pushed.on_its_way and not pushed.keep_all
    # settings that settle far from the band: keeping them is not "on its way"
    logged = plant.rows.controls[plant.start_indices]
    far = logged[np.argmax(np.abs(plant.model.predict(logged) - plant.band_mid))]
    far_pending = np.repeat(far[None], plant.dead_time, axis=0)[None]
    idle_batch = advise(
        plant, codec, keep, support, np.array([start]), far[None], pending=far_pending
    )
    idle = idle_batch.recommendation(0)
    assert idle.keep_all and not idle.on_its_way and idle.moves_to_band is None


def test_in_band_but_leaving_is_not_held_on_a_lagging_plant(plant: env.Plant) -> None:
    """A reading inside the band whose settings settle far outside is travelling through:
    the advice is the policy's, not "hold"."""
    codec = plant.codec("discrete")
    controls = plant.rows.controls[plant.start_indices]
    far = controls[np.argmax(np.abs(plant.model.predict(controls) - plant.band_mid))]
    support = fit_data_support(plant.rows)
    pending = np.repeat(far[None], plant.dead_time, axis=0)[None]

    def push(obs: np.ndarray) -> np.ndarray:
        return np.zeros((len(obs), plant.n_controls), dtype=np.int64)  # decrease everything

    advice = advise(plant, codec, push, support, np.array([plant.band_mid]), far[None],
                    pending=pending).recommendation(0)  # fmt: skip
    assert advice.in_band and not advice.keep_all and not advice.policy_disagrees
    settled = _settings_settling_in_band(plant)
    held = advise(plant, codec, push, support, np.array([plant.band_mid]), settled[None],
                  pending=np.repeat(settled[None], plant.dead_time, axis=0)[None])  # fmt: skip
    rec = held.recommendation(0)
    steady = float(plant.model.predict(settled[None])[0])
    assert plant.in_band(steady)  # keep holds it in the band: hold, say the policy differs
    assert rec.keep_all and rec.policy_disagrees and rec.moves_to_band == 0


def test_rollout_under_the_advice_rule_holds_where_recommend_holds(plant: env.Plant) -> None:
    """``rollout(hold_in_band=True)`` applies the advice's rule: a pushing policy is held
    at a reading in the band whose settings keep it there, and acts at one in the band
    but travelling out; the first move agrees with ``advise`` at both, and without the
    rule the pushing policy moves at both."""
    codec = plant.codec("discrete")
    support = fit_data_support(plant.rows)
    controls = plant.rows.controls[plant.start_indices]
    far = controls[np.argmax(np.abs(plant.model.predict(controls) - plant.band_mid))]
    settled = _settings_settling_in_band(plant)
    starts = np.stack([settled, far])
    temps = np.full(2, plant.band_mid)
    pending = np.repeat(starts[:, None], plant.dead_time, axis=1)

    def push(obs: np.ndarray) -> np.ndarray:
        return np.zeros((len(obs), plant.n_controls), dtype=np.int64)  # decrease everything

    policy = FunctionPolicy("push", push)
    held = rollout(plant, codec, policy, temps, starts, pending=pending, hold_in_band=True)
    raw = rollout(plant, codec, policy, temps, starts, pending=pending)
    assert held.actuations.tolist()[0] == 0 and held.success[0]  # held all along
    assert held.actuations[1] >= 1  # travelling out: the policy acts
    assert (raw.actuations >= 1).all()
    advice = advise(plant, codec, push, support, temps, starts, pending=pending)
    for i in range(2):
        first_move_kept = np.array_equal(held.controls[i, 1], held.controls[i, 0])
        assert first_move_kept == advice.recommendation(i).keep_all, i


def test_rollout_under_the_advice_rule_never_moves_in_the_band_of_a_static_plant(
    sample_plant: env.Plant,
) -> None:
    """On a plant without lag every reading in the band holds: under the rule no setting
    changes after a reading in the band, which a random policy alone does."""
    codec = sample_plant.codec("discrete")
    temps, controls = start_states(sample_plant)
    for hold in (True, False):
        result = rollout(
            sample_plant, codec, RandomPolicy(codec, seed=1), temps, controls, hold_in_band=hold
        )
        in_band = result.in_band[:, :-1]
        changed = ~np.isclose(result.controls[:, 1:], result.controls[:, :-1]).all(axis=2)
        assert in_band.any()
        assert (changed & in_band).any() != hold, hold


def test_a_log_with_little_drift_gets_no_disturbance_observer(plant: env.Plant) -> None:
    """On this log (drift 2% of the spread) the readings predict no better with a
    disturbance estimate than without, so none is used: training episodes start
    without offsets and the observer would keep its estimate at 0."""
    fit = plant.observer_fit
    assert fit is not None and not fit.observer.active
    assert fit.scores[0.0] == min(fit.scores.values())
    assert not plant.starts_with_offsets


def test_advice_allows_for_the_disturbance_the_readings_show(plant: env.Plant) -> None:
    """A reading in the band at settings that settle in the band on the model: "hold".
    With an estimate that the plant settles two band widths above the model (what
    ``recommend --row`` takes from the log's observer), keeping is not "on its way" but
    leaves the band: the path follows the model plus the estimate, and the advice
    carries the estimate and says so."""
    from rllib_project.recommendation import Recommendation, format_recommendation

    codec = plant.codec("discrete")
    settings = _settings_settling_in_band(plant)
    steady = float(plant.model.predict(settings[None])[0])
    pending = np.repeat(settings[None], plant.dead_time, axis=0)[None]
    support = fit_data_support(plant.rows)

    def keep(obs: np.ndarray) -> np.ndarray:
        return codec.keep(len(obs))

    def advice_with(disturbance: float) -> Recommendation:
        batch = advise(plant, codec, keep, support, np.array([steady]), settings[None],
                       pending=pending, disturbance=np.array([disturbance]))  # fmt: skip
        return batch.recommendation(0)

    held = advice_with(0.0)
    assert held.in_band and held.moves_to_band == 0 and held.disturbance == 0.0
    shift = 2 * plant.band_width
    drifted = advice_with(shift)
    assert drifted.disturbance == shift and not drifted.on_its_way
    assert drifted.moves_to_band is None  # keeping leaves the band for good
    temps = [p.temperature for p in drifted.path]
    assert temps[-1] == pytest.approx(steady + shift, abs=0.05 * plant.band_width)
    assert "above the model's (disturbance observer)" in format_recommendation(drifted)
