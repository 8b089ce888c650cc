"""The disturbance observer of lagging plants (env/observer.py): it finds what the model
misses from the readings, and a closed loop that uses it lands on the plant's band."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import env
from env.baselines import GreedyLookaheadPolicy
from env.evaluation import rollout, start_pending, start_states
from env.observer import DisturbanceObserver, ObserverState
from env.synthetic import SyntheticPlant, make_synthetic_plant
from env.synthetic_log import LogSettings
from tests.conftest import SAMPLE_SPEC
from tests.test_fit_cli import run_cli


def drifting_synthetic() -> SyntheticPlant:
    """A generated log with a lag, a dead time and a drift as large as the real
    furnace's (5% of the readings' spread)."""
    settings = LogSettings(
        rate=0.2, dead_time=1, samples=1500, drift_fraction=0.08, drift_time=300.0
    )
    return make_synthetic_plant(
        n_controls=3,
        mean_depth=3,
        seed=3,
        noise_fraction=0.02,
        ensemble_size=2,
        horizon=40,
        log=settings,
    )


@pytest.fixture(scope="module")
def drifting_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticPlant, Path, Path]:
    """:func:`drifting_synthetic`, written and fitted: (generator, spec, model)."""
    folder = tmp_path_factory.mktemp("drifting")
    synthetic = drifting_synthetic()
    spec = synthetic.write(folder)
    model = folder / "model.json"
    result = run_cli("fit", spec, "--out", model)
    assert result.returncode == 0, result.stderr
    return synthetic, spec, model


@pytest.fixture(scope="module")
def drifting(drifting_files: tuple[SyntheticPlant, Path, Path]) -> tuple[SyntheticPlant, env.Plant]:
    """(generator, fitted plant)."""
    synthetic, spec, model = drifting_files
    return synthetic, env.load_plant(spec, model)


def test_the_observer_absorbs_a_constant_offset() -> None:
    """A plant that settles 0.5 above the model: the estimate converges to 0.5, and
    without a disturbance to estimate (ratio 0) it stays at 0."""
    rate, steady, offset = 0.15, 100.0, 0.5
    for ratio, expected in ((0.1, offset), (0.0, 0.0)):
        observer = DisturbanceObserver.with_ratio(rate, ratio)
        state = ObserverState(np.array([steady]), np.array([0.0]))
        truth = steady
        for _ in range(200):
            truth += rate * (steady + offset - truth)
            state = observer.step(state, np.array([steady]), np.array([truth]))
        assert state.disturbance[0] == pytest.approx(expected, abs=1e-3)
        assert observer.active == (ratio > 0)


def test_on_a_drifting_log_the_observer_is_chosen_and_tracks_the_drift(
    drifting: tuple[SyntheticPlant, env.Plant],
) -> None:
    """The ratio chosen on the log predicts 10 samples ahead better than the model
    alone, and its estimates follow what the model really misses at each row (the
    generator's steady state plus its drift, minus the model's)."""
    synthetic, plant = drifting
    fit = plant.observer_fit
    assert fit is not None and fit.observer.active
    assert fit.scores[fit.observer.ratio] < 0.8 * fit.scores[0.0]
    assert synthetic.log is not None
    rows = plant.start_indices
    samples = synthetic.samples_of_rows(plant.rows.row_numbers[rows])
    controls = plant.rows.controls[rows]
    missed = (
        synthetic.steady_temperature(controls)
        + synthetic.log.drift[samples]
        - plant.model.predict(controls)
    )
    left = missed - fit.row_disturbance[rows]
    assert np.sqrt(np.mean(left**2)) < 0.7 * np.sqrt(np.mean(missed**2))


class _ShiftedModel:
    """The fitted model as the plant, settling ``shift`` away from the model's steady
    state: a plant with a constant disturbance the model does not know."""

    def __init__(self, plant: env.Plant, temps: np.ndarray, pending: np.ndarray, shift: float):
        self.plant, self.temps, self.pending, self.shift = plant, temps.copy(), pending, shift

    def step(self, controls: np.ndarray) -> np.ndarray:
        self.temps, self.pending = self.plant.advance(
            self.temps, self.pending, controls, self.shift
        )
        return self.temps


def _closed_loop(plant: env.Plant, rows: np.ndarray, shift: float, observe: bool):
    temps, controls = start_states(plant, rows)
    pending = start_pending(plant, rows)
    fit = plant.observer_fit
    assert fit is not None
    # the observer starts knowing nothing of the shift: the truth is not the log's plant
    start = ObserverState(temps.copy(), np.zeros(len(rows)))
    return rollout(
        plant,
        plant.codec("discrete"),
        GreedyLookaheadPolicy(plant, plant.codec("discrete")),
        temps,
        controls,
        pending=pending,
        truth=_ShiftedModel(plant, temps, pending.copy(), shift),
        hold_in_band=True,
        observer=(fit.observer, start) if observe else None,
    )


def test_a_closed_loop_with_the_observer_reaches_the_band_of_a_shifted_plant(
    drifting: tuple[SyntheticPlant, env.Plant],
) -> None:
    """The greedy baseline steers by the settling temperature its observation shows.
    On a plant that settles 1.5 band widths above the model it never reaches the band
    without the observer; with it, as often as on the model itself. On the model the
    observer changes nothing (it estimates no disturbance)."""
    _, plant = drifting
    rows = plant.start_indices[::5]
    shift = 1.5 * plant.band_width
    alone = _closed_loop(plant, rows, 0.0, observe=False)
    same = _closed_loop(plant, rows, 0.0, observe=True)
    np.testing.assert_allclose(same.temperatures, alone.temperatures, atol=1e-9)
    assert alone.success.mean() > 0.3
    blind = _closed_loop(plant, rows, shift, observe=False)
    seeing = _closed_loop(plant, rows, shift, observe=True)
    assert blind.success.mean() < 0.05
    assert seeing.success.mean() >= alone.success.mean()


@pytest.mark.parametrize("observed_offsets", [True, False])
def test_training_episodes_start_with_the_logs_estimated_disturbance(
    drifting: tuple[SyntheticPlant, env.Plant],
    drifting_files: tuple[SyntheticPlant, Path, Path],
    observed_offsets: bool,
) -> None:
    """With ``env.observed_offsets`` an episode from a logged row holds the disturbance
    the observer estimated there, and the observation's settling temperature shows it;
    without (the default) every episode starts without one."""
    _, plant = drifting
    fit = plant.observer_fit
    assert fit is not None
    environment = gym.make(
        env.ENV_ID,
        spec_path=drifting_files[1],
        model_path=drifting_files[2],
        settings={"observed_offsets": observed_offsets},
    ).unwrapped
    index = plant.start_indices[len(plant.start_indices) // 2]
    obs, _ = environment.reset(options={"row": int(plant.rows.row_numbers[index])})
    expected = fit.row_disturbance[index] if observed_offsets else 0.0
    assert not observed_offsets or abs(expected) > 1e-6
    controls = plant.start_controls(np.array([index]))
    settle = plant.model.predict(controls)[0] + expected
    assert plant.settle_seen(obs) == pytest.approx(settle, abs=1e-3)


def test_fit_reports_the_observer(
    drifting_files: tuple[SyntheticPlant, Path, Path], tmp_path: Path
) -> None:
    """``fit`` says whether the observer is on and what it gains; ``--json`` too."""
    _, spec, _ = drifting_files
    result = run_cli("fit", spec, "--out", tmp_path / "m.json", "--json")
    assert result.returncode == 0, result.stderr
    observer = json.loads(result.stdout)["observer"]
    assert observer["active"] and observer["ratio"] > 0
    assert observer["prediction_rmse"] < observer["prediction_rmse_without"]
    assert observer["prediction_horizon"] == 10
    text = run_cli("fit", spec, "--out", tmp_path / "m2.json")
    assert text.returncode == 0, text.stderr
    assert "disturbance observer: on" in text.stdout
    assert "training episodes start" not in text.stdout  # env.observed_offsets is off


def test_defaults_follow_the_drift_the_log_shows(
    drifting: tuple[SyntheticPlant, env.Plant],
) -> None:
    """Where the observer is active the reward pulls to the band's middle and the hold
    keeps a margin of one standard deviation of a settled reading (estimate error and
    sensor noise, from the log; the noise close to the generator's)."""
    synthetic, plant = drifting
    fit = plant.observer_fit
    assert fit is not None and fit.observer.active
    assert fit.noise_std == pytest.approx(synthetic.noise_std, rel=0.25)
    assert 0 < fit.disturbance_std < fit.settle_std
    assert plant.centre_weight == 0.5
    half = 0.5 * plant.band_width
    assert plant.hold_margin == pytest.approx(min(0.5, fit.settle_std / half))
    assert plant.hold_margin > 0


@pytest.mark.parametrize(("margin", "where", "holds"), [
    (0.0, 0.8, True), (0.5, 0.8, False), (0.5, 0.3, True), (0.5, -0.8, False),
])  # fmt: skip
def test_the_hold_margin_asks_the_policy_near_the_edges(
    drifting: tuple[SyntheticPlant, env.Plant], margin: float, where: float, holds: bool
) -> None:
    """A settled reading ``where`` half-widths from the band's middle: it holds unless
    it lies within ``hold_margin`` half-widths of an edge."""
    import dataclasses

    _, base = drifting
    plant = dataclasses.replace(
        base, settings=dataclasses.replace(base.settings, hold_margin=margin)
    )
    index = plant.start_indices[:1]
    controls = plant.start_controls(index)
    settled = plant.band_mid + where * 0.5 * plant.band_width
    offset = np.array([settled - plant.model.predict(controls)[0]])
    result = plant.holds(np.array([settled]), controls, plant.no_pending(controls), offset)
    assert bool(result[0]) == holds


def test_an_export_records_what_the_rows_decided(
    drifting: tuple[SyntheticPlant, env.Plant],
) -> None:
    """An exported policy carries no CSV rows: the hold margin and centre weight that
    the log's observer decided are written as numbers, and the plant rebuilt from them
    (as ``load_policy`` does) advises with the same ones."""
    import dataclasses

    from env.spec import EnvSettings
    from rllib_project.export import exported_settings

    _, plant = drifting
    assert plant.hold_margin > 0 and plant.centre_weight > 0
    written = json.loads(json.dumps(exported_settings(plant)))
    rebuilt = dataclasses.replace(plant, data=None, settings=EnvSettings(**written))
    assert rebuilt.observer_fit is None  # nothing to fit it on ...
    assert rebuilt.hold_margin == plant.hold_margin  # ... and nothing lost
    assert rebuilt.centre_weight == plant.centre_weight
    bare = dataclasses.replace(plant, data=None)  # an export of before: no numbers
    assert bare.hold_margin == 0.0 and bare.centre_weight == 0.0


def test_an_observer_that_is_off_passes_the_readings_through(
    drifting: tuple[SyntheticPlant, env.Plant],
) -> None:
    """Ratio 0 (the readings tell no more than the model): the estimate is the reading
    itself with no disturbance, not a model run that ignores the readings, so a closed
    loop on a noisy plant with it is the closed loop without it, reading for reading."""
    import dataclasses

    _, base = drifting
    plant = dataclasses.replace(
        base, settings=dataclasses.replace(base.settings, noise_std=0.2 * base.band_width)
    )
    off = DisturbanceObserver.with_ratio(plant.rate, 0.0)
    assert not off.active
    state = ObserverState(np.array([950.0, 960.0]), np.array([0.0, 0.0]))
    after = off.step(state, np.array([955.0, 955.0]), np.array([951.5, 958.0]))
    np.testing.assert_array_equal(after.temperature, [951.5, 958.0])
    np.testing.assert_array_equal(after.disturbance, [0.0, 0.0])

    rows = plant.start_indices[::7]
    temps, controls = start_states(plant, rows)
    codec = plant.codec("discrete")
    runs = [
        rollout(
            plant,
            codec,
            GreedyLookaheadPolicy(plant, codec),
            temps,
            controls,
            pending=start_pending(plant, rows),
            hold_in_band=True,
            seed=5,
            observer=observer,
        )
        for observer in (None, (off, ObserverState(temps.copy(), np.zeros(len(rows)))))
    ]
    np.testing.assert_array_equal(runs[1].temperatures, runs[0].temperatures)
    np.testing.assert_array_equal(runs[1].controls, runs[0].controls)


def test_advice_takes_one_disturbance_for_all_or_one_per_reading(
    drifting: tuple[SyntheticPlant, env.Plant],
) -> None:
    """``advise(disturbance=)``: a scalar applies to every reading, n values one each,
    any other count is refused rather than broadcast or misread."""
    from env.support import fit_data_support
    from rllib_project.recommendation import advise

    _, plant = drifting
    codec = plant.codec("discrete")
    temps, controls = start_states(plant, plant.start_indices[:3])

    def act(obs: np.ndarray) -> np.ndarray:
        return codec.keep(len(obs))

    support = fit_data_support(plant.rows)
    scalar = advise(plant, codec, act, support, temps, controls, disturbance=0.3)
    np.testing.assert_array_equal(scalar.disturbance, [0.3, 0.3, 0.3])
    each = advise(plant, codec, act, support, temps, controls, disturbance=[0.1, 0.2, 0.3])
    np.testing.assert_array_equal(each.disturbance, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="disturbance: 2 values for 3 readings"):
        advise(plant, codec, act, support, temps, controls, disturbance=[0.1, 0.2])


def _log_history(plant: env.Plant, row: int) -> tuple[np.ndarray, np.ndarray]:
    """Samples of ``row``'s segment up to ``row`` as a bridge sends them: each reading
    with the settings then in force (the log's row before: a row's own settings are the
    operator's decision at it), from the segment's second row on."""
    rows = plant.rows
    first = row - int(rows.position_in_segment()[row]) + 1
    samples = np.arange(first, row + 1)
    return rows.state[samples], rows.controls[samples - 1]


def test_a_readings_history_gives_what_the_log_gives_at_its_row(
    drifting: tuple[SyntheticPlant, env.Plant],
) -> None:
    """From a reading's history (the log's samples before a start row, as a bridge would
    send them) the settings in flight and the disturbance estimate are those the log
    gives at that row; so does a plant rebuilt from an export's settings, without rows."""
    import dataclasses

    from env.spec import EnvSettings
    from rllib_project.export import exported_settings

    _, plant = drifting
    assert plant.dead_time >= 1  # with none the log's filter starts one sample earlier
    rebuilt = dataclasses.replace(
        plant, data=None, settings=EnvSettings(**json.loads(json.dumps(exported_settings(plant))))
    )
    assert rebuilt.observer == plant.observer and plant.observer is not None
    starts = plant.start_indices
    for row in starts[[len(starts) // 3, 2 * len(starts) // 3, -1]]:
        temps, controls = _log_history(plant, int(row))
        index = np.array([row])
        expected = plant.start_observer(index).disturbance[0]
        assert abs(expected) > 1e-3  # the drift is there to be found
        for p in (plant, rebuilt):
            estimate = p.from_history(temps, controls)
            assert estimate.disturbance == pytest.approx(expected, abs=1e-9)
            np.testing.assert_array_equal(estimate.pending, plant.start_pending(index)[0])
    short = plant.from_history(temps[-1:], controls[-1:])  # a lone reading: nothing known
    assert short.disturbance == 0.0
    np.testing.assert_array_equal(short.pending, plant.no_pending(controls[-1:])[0])


def _generated_log_plant(
    folder: Path, dead_time: int, ratio: float, n_controls: int = 3
) -> env.Plant:
    """A generated drifting log with ``dead_time``, fitted, its observer ratio set (the
    fit may choose 0, which would leave nothing for a history to estimate)."""
    log = LogSettings(
        rate=0.3, dead_time=dead_time, samples=900, drift_fraction=0.08, drift_time=300.0
    )
    synthetic = make_synthetic_plant(
        n_controls=n_controls, mean_depth=3, seed=4, noise_fraction=0.02, ensemble_size=2, log=log
    )
    return env.load_plant(synthetic.write(folder), settings={"observer_ratio": ratio})


@pytest.mark.parametrize("n_controls", [3, 6])
def test_a_history_puts_two_settings_in_flight_in_the_logs_order(
    tmp_path: Path, n_controls: int
) -> None:
    """With a dead time of 2 the history's settings in flight are the log's two, oldest
    first, at rows where they differ (so their order is seen), and the estimate of an
    active observer is the log's there too; on a wide plant as on a narrow one."""
    plant = _generated_log_plant(tmp_path / "plant", dead_time=2, ratio=0.03, n_controls=n_controls)
    assert plant.n_controls == n_controls
    assert plant.dead_time == 2 and plant.observer is not None and plant.observer.active
    starts = plant.start_indices
    flight = plant.start_pending(starts)
    differing = starts[np.any(flight[:, 0] != flight[:, 1], axis=1)]
    assert len(differing) >= 3
    estimated = []
    for row in differing[[0, len(differing) // 2, -1]]:
        temps, controls = _log_history(plant, int(row))
        estimate = plant.from_history(temps, controls)
        index = np.array([row])
        np.testing.assert_array_equal(estimate.pending, plant.start_pending(index)[0])
        expected = plant.start_observer(index).disturbance[0]
        assert estimate.disturbance == pytest.approx(expected, abs=1e-9)
        estimated.append(abs(expected))
    assert max(estimated) > 1e-3  # the observer had something to say


def test_a_history_informs_only_where_it_changes_the_advice(
    tmp_path: Path, drifting: tuple[SyntheticPlant, env.Plant]
) -> None:
    """``Plant.history_informs`` (``GET /policy``'s ``history.used``): true with a dead
    time or an active observer, each alone; false where the history's estimate is always
    "nothing in flight, no disturbance": a static plant, a hand-set rate, and an
    identified lag without dead time whose observer is off."""
    import dataclasses

    quick = _generated_log_plant(tmp_path / "plant", dead_time=0, ratio=0.03)
    assert quick.dead_time == 0 and quick.observer is not None and quick.observer.active
    assert quick.history_informs
    off = dataclasses.replace(
        quick, settings=dataclasses.replace(quick.settings, observer_ratio=0.0)
    )
    assert off.lagging and not off.history_informs
    static = env.load_plant(SAMPLE_SPEC)
    hand_set = env.load_plant(SAMPLE_SPEC, settings={"response_rate": 0.5})
    assert hand_set.lagging and not hand_set.history_informs and not static.history_informs
    for plant in (hand_set, off):
        estimate = plant.from_history(plant.rows.state[:6], plant.rows.controls[:6])
        assert estimate.disturbance == 0.0 and estimate.pending.size == 0
    _, base = drifting  # a dead time of 1
    delayed = dataclasses.replace(
        base, settings=dataclasses.replace(base.settings, observer_ratio=0.0)
    )
    assert delayed.dead_time == 1 and delayed.history_informs
    assert delayed.observer is not None and not delayed.observer.active


def test_served_advice_uses_each_readings_history(
    drifting: tuple[SyntheticPlant, env.Plant],
) -> None:
    """``Advisor.advise_with_histories`` (what ``POST /recommend`` runs): a reading with
    its history is advised with the history's estimate and settings in flight, one
    without as a lone reading, in the same batch."""
    from env.support import fit_data_support
    from rllib_project.recommendation import Advisor

    _, plant = drifting
    codec = plant.codec("discrete")
    advisor = Advisor(
        "keep", plant, codec, lambda obs: codec.keep(len(obs)), fit_data_support(plant.rows)
    )
    row = int(plant.start_indices[-1])
    temps, controls = _log_history(plant, row)
    history = np.column_stack([temps[:-1], controls[:-1]])
    now_t, now_u = np.array([temps[-1]] * 2), np.stack([controls[-1]] * 2)
    advice = advisor.advise_with_histories(now_t, now_u, [history, None])
    estimate = plant.from_history(temps, controls)
    np.testing.assert_allclose(advice.disturbance, [estimate.disturbance, 0.0])
    alone = advisor.advise(
        now_t[:1], now_u[:1], pending=estimate.pending[None], disturbance=estimate.disturbance
    )
    assert advice.recommendation(0).to_dict() == alone.recommendation(0).to_dict()
    assert (
        advice.recommendation(1).to_dict()
        == advisor.advise(now_t[1:], now_u[1:]).recommendation(0).to_dict()
    )


@pytest.mark.parametrize("ratio", [0.0, 0.03])
def test_the_observer_ratio_can_be_set(
    drifting: tuple[SyntheticPlant, env.Plant], ratio: float
) -> None:
    """``env.observer_ratio`` fixes q / r instead of choosing it on the log (0: off, and
    the defaults that follow the drift with it); the model alone is still scored."""
    import dataclasses

    _, base = drifting
    plant = dataclasses.replace(
        base, settings=dataclasses.replace(base.settings, observer_ratio=ratio)
    )
    fit = plant.observer_fit
    assert fit is not None and fit.observer.ratio == ratio
    assert set(fit.scores) == {0.0, ratio}
    assert fit.observer.active == (ratio > 0)
    assert (plant.hold_margin > 0) == (plant.centre_weight > 0) == (ratio > 0)


def test_a_time_ordered_stream_gives_each_reading_what_its_history_gives(
    drifting: tuple[SyntheticPlant, env.Plant],
) -> None:
    """``Plant.stream_estimates`` over a stream in chunks, with a restart in it: every
    reading gets the estimate and the settings in flight that ``from_history`` gives on
    the readings before it since the restart."""
    from env.plant import STREAM_START

    _, plant = drifting
    row = int(plant.start_indices[-1])
    temps, controls = _log_history(plant, row)
    temps, controls = temps[-120:], controls[-120:]
    restart = np.zeros(len(temps), dtype=bool)
    restart[50] = True  # as after a bad row
    disturbance, pending, state = [], [], STREAM_START
    for chunk in (slice(0, 1), slice(1, 51), slice(51, 52), slice(52, 120)):
        d, q, state = plant.stream_estimates(temps[chunk], controls[chunk], restart[chunk], state)
        disturbance.append(d)
        pending.append(q)
    streamed, in_flight = np.concatenate(disturbance), np.concatenate(pending)
    assert np.abs(streamed).max() > 1e-3
    for i in (0, 1, 2, 3, 30, 49, 50, 51, 52, 53, 119):
        start = 50 if i >= 50 else 0
        expected = plant.from_history(temps[start : i + 1], controls[start : i + 1])
        assert streamed[i] == pytest.approx(expected.disturbance, abs=1e-9), i
        np.testing.assert_array_equal(in_flight[i], expected.pending, err_msg=str(i))


def test_a_history_reads_the_settings_as_logged_where_bounds_clip_them(
    drifting: tuple[SyntheticPlant, env.Plant],
) -> None:
    """With bounds narrower than the data (a spec's ``bounds:``) the history's estimate
    is still the log's: the filter reads the settings as logged, only the settings in
    flight are clipped."""
    import dataclasses

    _, base = drifting
    controls = base.rows.controls
    lower, upper = np.quantile(controls, 0.1, axis=0), np.quantile(controls, 0.9, axis=0)
    plant = dataclasses.replace(base, lower=lower, upper=upper)
    row = int(plant.start_indices[-1])
    temps, logged = _log_history(plant, row)
    index = np.array([row])
    estimate = plant.from_history(temps, logged)
    assert estimate.disturbance == pytest.approx(plant.start_observer(index).disturbance[0])
    assert np.all(estimate.pending >= lower) and np.all(estimate.pending <= upper)
