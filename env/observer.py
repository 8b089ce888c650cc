"""A disturbance observer for lagging plants: what the readings say the model misses.

A model fitted to a log predicts the plant's steady state only on average. The plant
drifts (fouling, feed quality, ambient), so at any moment its temperature settles
somewhat above or below what the model says, and on the bundled furnace that error
(0.38 degC standard deviation) is most of the band's half-width (0.54 degC). A policy
that sees only the model's settling temperature then keeps settings whose real
temperature settles outside the band, and waits: "keep, it is on its way".

The fix is the one of model-predictive control (offset-free MPC): estimate the
disturbance from the readings and add it to the model's steady state. The state
``x = [T, d]`` follows the identified first-order model

    T[t+1] = T[t] + a (f(u_eff[t]) + d[t] - T[t]),      d[t+1] = d[t] + w,  w ~ N(0, q)
    y[t]   = T[t] + v,                                  v ~ N(0, r)

and a steady-state Kalman filter tracks ``(T_hat, d_hat)`` from the readings ``y``.
Only the ratio ``q / r`` sets the gains; it is chosen on the log itself (prediction
error method): the ratio whose filter state predicts the readings 10 samples ahead
best, over every row with 10 later samples in its segment. A ratio of 0 means "the
readings do not tell more than the model": the observer then passes each reading
through (``T_hat = y``) and keeps ``d_hat`` at 0, so its score is the model's own
prediction from the current reading.

Pure numpy; what the environment, the evaluation and the advice share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RATIOS = (0.0, 0.003, 0.01, 0.03, 0.1, 0.3)
"""Candidate ratios q / r of disturbance to measurement noise variance per sample."""
PREDICTION_HORIZON = 10
"""Samples ahead the ratio is scored on (the model fit's free-run horizon)."""
_RICCATI_ITERATIONS = 2000


@dataclass(frozen=True)
class ObserverState:
    """The filter's estimates for a batch of runs (shape (n,) each)."""

    temperature: np.ndarray
    """``T_hat``: the temperature without sensor noise."""
    disturbance: np.ndarray
    """``d_hat``: the plant's steady state minus the model's, now."""


@dataclass(frozen=True)
class DisturbanceObserver:
    """Steady-state Kalman filter for ``[T, d]`` of a first-order plant (see module)."""

    rate: float
    ratio: float
    """q / r chosen on the log (0: no disturbance estimated)."""
    gain_temperature: float
    gain_disturbance: float
    innovation_variance: float = 1.0
    """Variance of ``y - predicted`` in units of ``r``: what turns the log's innovations
    into the sensor noise ``r``."""
    disturbance_variance: float = 0.0
    """Variance of ``d - d_hat`` after an update, in units of ``r``."""

    @classmethod
    def with_ratio(cls, rate: float, ratio: float) -> DisturbanceObserver:
        """The filter's steady-state gains for ``q / r = ratio`` (r = 1: only the ratio
        matters), by iterating the discrete Riccati recursion to its fixed point."""
        if ratio <= 0.0:
            # no disturbance to estimate: a pass-through (T_hat = the reading, d_hat = 0),
            # the model predicting from the current reading. Not the q = 0 Kalman filter,
            # which would trust a model run from the segment's start over every reading.
            return cls(rate, 0.0, 1.0, 0.0)
        a = np.array([[1.0 - rate, rate], [0.0, 1.0]])
        q = np.diag([0.0, ratio])
        p = np.eye(2)
        gain = np.zeros(2)
        predicted = p
        for _ in range(_RICCATI_ITERATIONS):
            predicted = a @ p @ a.T + q
            gain = predicted[:, 0] / (predicted[0, 0] + 1.0)
            updated = predicted - np.outer(gain, predicted[0, :])
            converged = np.allclose(updated, p, rtol=1e-12, atol=1e-15)
            p = updated
            if converged:
                break
        return cls(
            rate,
            ratio,
            float(gain[0]),
            float(gain[1]),
            innovation_variance=float(predicted[0, 0] + 1.0),
            disturbance_variance=float(p[1, 1]),
        )

    @property
    def active(self) -> bool:
        return self.gain_disturbance > 0.0

    def predict(
        self, temperature: np.ndarray, disturbance: np.ndarray, steady: np.ndarray
    ) -> np.ndarray:
        """The next temperature from ``T_hat``, ``d_hat`` and ``steady`` (the model's
        steady state of the settings that drive the move)."""
        return temperature + self.rate * (steady + disturbance - temperature)

    def step(self, state: ObserverState, steady: np.ndarray, reading: np.ndarray) -> ObserverState:
        """One sample: predict with ``steady``, correct with the new ``reading``."""
        predicted = self.predict(state.temperature, state.disturbance, steady)
        innovation = reading - predicted
        return ObserverState(
            predicted + self.gain_temperature * innovation,
            state.disturbance + self.gain_disturbance * innovation,
        )


@dataclass(frozen=True)
class ObserverFit:
    """The observer chosen on a log, its estimates at every row and the evidence."""

    observer: DisturbanceObserver
    row_disturbance: np.ndarray
    """(n,) ``d_hat`` after each row's reading (0 where the row cannot be filtered)."""
    row_temperature: np.ndarray
    """(n,) ``T_hat`` after each row's reading."""
    scores: dict[float, float]
    """Ratio -> RMSE of readings predicted ``PREDICTION_HORIZON`` samples ahead."""
    noise_std: float = 0.0
    """Sensor noise ``sqrt(r)`` from the log's innovations (0 when inactive)."""

    @property
    def disturbance_std(self) -> float:
        """Standard deviation of the estimate's error ``d - d_hat`` (physical units)."""
        return float(np.sqrt(self.observer.disturbance_variance) * self.noise_std)

    @property
    def settle_std(self) -> float:
        """What one reading of a settled plant can differ from the settling temperature
        the observer predicts: its estimate's error and the sensor noise together."""
        return float(np.hypot(self.disturbance_std, self.noise_std))


def filter_log(
    observer: DisturbanceObserver,
    readings: np.ndarray,
    effective_steady: np.ndarray,
    segment: np.ndarray,
    usable: np.ndarray,
    start: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``observer`` along a log. ``effective_steady[i]``: the model's steady state of
    the settings that drove the move from row ``i - 1`` to row ``i``; ``usable[i]``:
    whether that move is known (row ``i - 1`` and the dead time before it are in the
    segment). The filter restarts (``T_hat = y``, ``d_hat = 0``) where a segment starts
    or a move is unknown. ``start``: the ``(T_hat, d_hat)`` the first row continues
    from where its move is usable (a file streamed in chunks); default: a restart."""
    n = len(readings)
    t_hat = np.empty(n)
    d_hat = np.empty(n)
    # Python floats: a scalar recursion along the log (numpy per element is 20x slower)
    y, steady, seg, ok = (a.tolist() for a in (readings, effective_steady, segment, usable))
    rate, k_t, k_d = observer.rate, observer.gain_temperature, observer.gain_disturbance
    temperature, disturbance = start if start is not None else (0.0, 0.0)
    for i in range(n):
        if (i == 0 and start is None) or not ok[i] or (i > 0 and seg[i] != seg[i - 1]):
            temperature, disturbance = y[i], 0.0
        else:
            predicted = temperature + rate * (steady[i] + disturbance - temperature)
            innovation = y[i] - predicted
            temperature = predicted + k_t * innovation
            disturbance += k_d * innovation
        t_hat[i], d_hat[i] = temperature, disturbance
    return t_hat, d_hat


def prediction_rmse(
    rate: float,
    readings: np.ndarray,
    effective_steady: np.ndarray,
    usable: np.ndarray,
    t_hat: np.ndarray,
    d_hat: np.ndarray,
    horizon: int = PREDICTION_HORIZON,
) -> float:
    """RMSE of the readings ``horizon`` samples after each row, predicted from the
    filter's state at that row with the logged settings (``d_hat`` held)."""
    n = len(readings)
    starts = np.arange(max(n - horizon, 0))
    ok = np.ones(len(starts), dtype=bool)
    for j in range(1, horizon + 1):
        ok &= usable[starts + j]
    starts = starts[ok]
    if len(starts) == 0:
        return float("nan")
    temperature = t_hat[starts].copy()
    for j in range(1, horizon + 1):
        temperature += rate * (effective_steady[starts + j] + d_hat[starts] - temperature)
    return float(np.sqrt(np.mean((readings[starts + horizon] - temperature) ** 2)))


def fit_observer(
    rate: float,
    readings: np.ndarray,
    effective_steady: np.ndarray,
    segment: np.ndarray,
    usable: np.ndarray,
    ratios: tuple[float, ...] = RATIOS,
    chosen: float | None = None,
) -> ObserverFit:
    """Choose the ratio on the log (see the module docstring) and filter it; with
    ``chosen`` (a ratio the user set) score it next to the model alone and use it."""
    if chosen is not None:
        ratios = tuple(sorted({0.0, float(chosen)}))
    scores: dict[float, float] = {}
    estimates: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    for ratio in ratios:
        observer = DisturbanceObserver.with_ratio(rate, ratio)
        t_hat, d_hat = filter_log(observer, readings, effective_steady, segment, usable)
        estimates[ratio] = (t_hat, d_hat)
        scores[ratio] = prediction_rmse(rate, readings, effective_steady, usable, t_hat, d_hat)
    finite = {r: s for r, s in scores.items() if np.isfinite(s)}
    best = min(finite, key=lambda r: (finite[r], r)) if finite else 0.0
    if chosen is not None:
        best = float(chosen)
    t_hat, d_hat = estimates[best]
    observer = DisturbanceObserver.with_ratio(rate, best)
    noise = 0.0
    if observer.active:
        # innovations y[i] - prediction from row i - 1, where both rows were filtered
        i = np.flatnonzero(usable[1:] & usable[:-1] & (segment[1:] == segment[:-1])) + 1
        innovation = readings[i] - observer.predict(t_hat[i - 1], d_hat[i - 1], effective_steady[i])
        if len(innovation) > 1:
            noise = float(np.sqrt(np.var(innovation) / observer.innovation_variance))
    return ObserverFit(observer, d_hat, t_hat, scores, noise)
