"""The comparison's statistics: hand-computed cases, and intervals that cover the truth
at about the nominal rate on distributions whose IQM and mean are known (seeded)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rllib_project.statistics import (
    can_bootstrap,
    estimate,
    interquartile_mean,
    iqm_band,
    performance_profile,
    probability_of_improvement,
)


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    assert interquartile_mean(np.arange(1.0, 9.0)) == pytest.approx(4.5)  # mean of 3..6
    # an outlier seed moves the mean, not the IQM
    values = np.array([0.90, 0.92, 0.94, 0.96, 0.0, 0.93, 0.95, 0.91])
    assert interquartile_mean(values) == pytest.approx(np.mean([0.91, 0.92, 0.93, 0.94]))
    assert interquartile_mean(np.array([1.0, 2.0, 9.0])) == pytest.approx(4.0)  # < 4 runs: mean


def test_estimate_pools_the_strata_and_gives_intervals_around_it() -> None:
    result = estimate({"a": np.array([1.0, 2.0, 3.0, 4.0]), "b": np.array([5.0, 6.0, 7.0, 8.0])})
    assert result.n_runs == 8 and result.iqm == pytest.approx(4.5)
    assert result.mean == pytest.approx(4.5)
    assert result.iqm_ci is not None and result.mean_ci is not None
    assert result.iqm_ci.low < 4.5 < result.iqm_ci.high
    # stratified: every resample keeps four runs of each dataset, so the pooled mean can
    # never fall to the lowest four runs' (2.5), as an unstratified resample could
    assert result.mean_ci.low > 2.5 + 1.0 and result.mean_ci.high < 6.5 - 1.0


def test_constant_runs_have_a_zero_width_interval() -> None:
    result = estimate({"a": np.ones(5)})
    assert result.iqm == 1.0 and result.iqm_ci is not None
    assert (result.iqm_ci.low, result.iqm_ci.high) == (1.0, 1.0)


def test_one_run_per_dataset_has_no_interval() -> None:
    result = estimate({"a": np.array([0.5]), "b": np.array([0.9])})
    assert result.n_runs == 2 and result.mean == pytest.approx(0.7)
    assert result.iqm_ci is None and result.mean_ci is None
    assert not can_bootstrap({"a": np.array([0.5])})
    # one dataset with a single surviving run next to one with several is fine
    mixed = estimate({"a": np.array([0.5]), "b": np.array([0.9, 0.8, 0.7])})
    assert mixed.iqm_ci is not None


def test_missing_values_are_refused_and_no_runs_is_nan() -> None:
    with pytest.raises(ValueError, match="finite"):
        estimate({"a": np.array([1.0, math.nan])})
    empty = estimate({"a": np.array([])})
    assert empty.n_runs == 0 and math.isnan(empty.iqm) and empty.iqm_ci is None


def test_probability_of_improvement_by_hand() -> None:
    # pairs (x, y): 1>0 win, 1<2 loss, 2>0 win, 2=2 tie -> (1 + 0 + 1 + 0.5) / 4
    x, y = {"a": np.array([1.0, 2.0])}, {"a": np.array([0.0, 2.0])}
    assert probability_of_improvement(x, y).probability == pytest.approx(0.625)
    assert probability_of_improvement(y, x).probability == pytest.approx(0.375)
    # averaged over datasets: 1.0 on a, 0.0 on b; datasets only one side has are skipped
    x2 = {"a": np.array([3.0, 4.0]), "b": np.array([0.0]), "c": np.array([9.0])}
    y2 = {"a": np.array([1.0, 2.0]), "b": np.array([5.0, 6.0])}
    result = probability_of_improvement(x2, y2)
    assert result.probability == pytest.approx(0.5)
    assert result.ci is not None and result.ci.low <= 0.5 <= result.ci.high
    assert probability_of_improvement({"a": np.ones(1)}, {"a": np.zeros(1)}).ci is None


def test_performance_profile_by_hand() -> None:
    thresholds = np.array([0.0, 0.5, 1.0])
    profile = performance_profile(
        {"a": np.array([1.0, 1.0]), "b": np.array([0.0, 0.4, 0.6, 1.0])}, thresholds
    )
    # a: 1, 1, 1; b: 1, 1/2, 1/4 -> averaged per dataset
    assert profile.fraction == pytest.approx([1.0, 0.75, 0.625])
    assert profile.low is not None and profile.high is not None
    assert np.all(profile.low <= profile.fraction) and np.all(profile.fraction <= profile.high)
    assert np.all(np.diff(profile.fraction) <= 0)  # never rises with the threshold


def test_iqm_band_along_a_curve() -> None:
    curves = np.array([[0.0, 0.5, 1.0], [0.0, 0.7, 1.0], [0.0, 0.6, 1.0]])
    band = iqm_band({"a": curves})
    assert band.center == pytest.approx([0.0, 0.6, 1.0])
    assert band.low is not None and band.high is not None
    assert band.low[1] < 0.6 < band.high[1] and band.low[0] == band.high[0] == 0.0


def _exponential_iqm() -> float:
    """IQM of Exp(1): the mean between its quartiles, from the integral of x e^-x."""
    low, high = -math.log(0.75), -math.log(0.25)
    mass = (low + 1) * math.exp(-low) - (high + 1) * math.exp(-high)
    return mass / 0.5


# (draw one run per call, true IQM, true mean)
DISTRIBUTIONS = {
    "normal": (lambda rng, n: rng.normal(0.6, 0.15, n), 0.6, 0.6),
    "exponential": (lambda rng, n: rng.exponential(1.0, n), _exponential_iqm(), 1.0),
}


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize(("datasets", "runs"), [(1, 20), (3, 10)])
def test_intervals_cover_the_true_iqm_and_mean_at_about_95_percent(
    name: str, datasets: int, runs: int
) -> None:
    """Many synthetic comparisons with a known truth; the 95% intervals must contain
    it in about 95% of them (binomial s.d. over 300 trials: 1.3 points)."""
    draw, true_iqm, true_mean = DISTRIBUTIONS[name]
    rng = np.random.default_rng(1234)
    trials = 300
    covered = {"iqm": 0, "mean": 0}
    for trial in range(trials):
        strata = {f"d{d}": draw(rng, runs) for d in range(datasets)}
        result = estimate(strata, resamples=1000, seed=trial)
        assert result.iqm_ci is not None and result.mean_ci is not None
        covered["iqm"] += result.iqm_ci.low <= true_iqm <= result.iqm_ci.high
        covered["mean"] += result.mean_ci.low <= true_mean <= result.mean_ci.high
    for statistic, count in covered.items():
        assert 0.89 <= count / trials <= 0.99, (statistic, count / trials)
