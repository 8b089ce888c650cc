"""Data support: the k-NN distance, its calibration, its bounds and its file form."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

import env
from env.errors import InputError
from env.support import OUTSIDE_WARNING, DataSupport, fit_data_support, fit_support
from tests.datasets import write_dataset


def _names(k: int) -> tuple[str, ...]:
    return tuple(f"c{i}" for i in range(k))


@pytest.mark.parametrize("n_controls", [1, 3, 8])
def test_threshold_keeps_about_99_percent_of_unseen_rows_inside(
    tmp_path: Path, n_controls: int
) -> None:
    """Fitted on one half of a generated plant's rows, the other half (drawn the same
    way, never seen) is inside at about the calibrated 99%."""
    plant = env.load_plant(write_dataset(tmp_path, n_controls, rows=4000, seed=n_controls))
    rows = plant.rows
    half = rows.n_rows // 2
    support = fit_support(rows.controls[:half], rows.row_numbers[:half], plant.spec.control_names)
    inside = support.measure(rows.controls[half:]).inside.mean()
    assert 0.97 <= inside <= 1.0, inside
    assert support.threshold > 0


@pytest.mark.parametrize("n_controls", [2, 6])
def test_settings_far_from_the_rows_are_outside(tmp_path: Path, n_controls: int) -> None:
    plant = env.load_plant(write_dataset(tmp_path, n_controls, seed=3))
    support = fit_data_support(plant.rows)
    span = plant.upper - plant.lower
    far = plant.upper + 2.0 * span  # every control beyond its observed range
    one_off = plant.rows.controls[0].copy()
    one_off[-1] = plant.upper[-1] + 3.0 * span[-1]  # only the last control is off
    result = support.measure(np.stack([far, one_off, plant.rows.controls[0]]))
    assert list(result.inside) == [False, False, True]
    off = result.at(1)
    assert off.furthest_control == plant.spec.control_names[-1]
    assert off.warning().startswith(OUTSIDE_WARNING)
    assert result.at(2).warning() is None
    assert result.at(2).nearest_row == int(plant.rows.row_numbers[0])


def test_distance_is_the_mean_distance_to_the_nearest_standardised_rows() -> None:
    rng = np.random.default_rng(0)
    controls = rng.normal(size=(300, 3)) * [1.0, 10.0, 0.1] + [5.0, -2.0, 0.0]
    support = fit_support(controls, np.arange(300), _names(3))
    queries = rng.normal(size=(50, 3)) * [2.0, 20.0, 0.2]
    z_rows = (controls - controls.mean(axis=0)) / controls.std(axis=0)
    z_queries = (queries - controls.mean(axis=0)) / controls.std(axis=0)
    distances = np.linalg.norm(z_queries[:, None, :] - z_rows[None], axis=-1)
    expected = np.sort(distances, axis=1)[:, : support.neighbours].mean(axis=1)
    result = support.measure(queries)
    np.testing.assert_allclose(result.distance, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(result.nearest_row, distances.argmin(axis=1))


def test_kept_rows_are_bounded_and_the_fit_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    controls = rng.normal(size=(10_000, 2))
    numbers = np.arange(10_000) * 2  # CSV row numbers need not be contiguous
    first = fit_support(controls, numbers, _names(2), max_rows=1000)
    second = fit_support(controls, numbers, _names(2), max_rows=1000)
    assert first.rows.shape == (1000, 2)
    assert set(first.row_numbers.tolist()) <= set(numbers.tolist())
    assert first.threshold == second.threshold
    np.testing.assert_array_equal(first.row_numbers, second.row_numbers)


def test_round_trip_through_npz_without_pickle(sample_plant: env.Plant) -> None:
    support = fit_data_support(sample_plant.rows)
    buffer = io.BytesIO()
    np.savez(buffer, **support.to_arrays())
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as archive:
        loaded = DataSupport.from_arrays(
            {k: archive[k] for k in archive.files}, sample_plant.spec.control_names, "x"
        )
    queries = sample_plant.rows.controls[:20] * 1.01
    before, after = support.measure(queries), loaded.measure(queries)
    np.testing.assert_array_equal(before.distance, after.distance)
    assert loaded.threshold == support.threshold


def test_arrays_that_do_not_fit_the_controls_are_refused(sample_plant: env.Plant) -> None:
    arrays = fit_data_support(sample_plant.rows).to_arrays()
    with pytest.raises(InputError, match="do not fit 3 control"):
        DataSupport.from_arrays(arrays, _names(3), "support.npz")
    del arrays["threshold"]
    with pytest.raises(InputError, match="missing: threshold"):
        DataSupport.from_arrays(arrays, sample_plant.spec.control_names, "support.npz")


def test_repeated_settings_still_leave_a_margin() -> None:
    """Rows that all sit on a few set points: the threshold is not zero, so float noise
    around those points is inside while a new set point is outside."""
    points = np.array([[1.0, 2.0], [3.0, 1.0], [2.0, 5.0]])
    controls = np.repeat(points, 50, axis=0)
    support = fit_support(controls, np.arange(150), _names(2))
    result = support.measure(np.array([[1.0, 2.0 + 1e-12], [2.0, 2.0]]))
    assert list(result.inside) == [True, False]


def test_an_absurd_setting_is_outside_without_a_numpy_warning(tmp_path: Path) -> None:
    import warnings

    plant = env.load_plant(write_dataset(tmp_path, 2, seed=4))
    support = fit_data_support(plant.rows)
    absurd = plant.rows.controls[:1].copy()
    absurd[0, 0] = 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning (overflow) fails the test
        measured = support.measure(absurd)
    assert not measured.inside[0]
