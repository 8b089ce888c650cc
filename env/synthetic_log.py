"""Time-ordered logs of a generated plant with inertia, and that plant in closed loop.

:mod:`env.synthetic` makes a plant's steady state ``g(u)``, its steps and its band. This
module makes what a historian would record of that plant over time, and is the ground
truth that logs are tested and benchmarked against:

* **dynamics**: a first-order lag with a dead time, sample by sample::

      T[t+1] = T[t] + a (g(u[t-d]) + D[t] - T[t])      # a: rate, d: dead time
      D[t+1] = phi D[t] + s sqrt(1 - phi^2) eps        # slow drift (mean-reverting)
      Y[t]   = T[t] + noise                             # what the log records

  Row ``t`` of the log holds the reading ``Y[t]`` and the settings ``u[t]`` made at that
  time (in force until the next row), the convention of :mod:`env.dynamics`;
* **an operator**: settings held for a random while (about ``3 / a`` samples, the time
  to see most of a move's effect, unless ``hold_mean`` says otherwise), then one or
  more controls set to a new value; by default anywhere in the operating range, with
  ``band_share`` of the changes aimed at a setting whose steady state is in the band;
* **imperfections**: gaps (samples not written, the clock jumps) and rows with a
  missing reading, which :mod:`env.time_log` must turn into segments.

:class:`GeneratingPlant` steps the same truth in closed loop, from any logged row with
its hidden state (true temperature, drift, settings in flight): the plant a policy
trained on the *fitted* model is finally run on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

Truth = Callable[[np.ndarray], np.ndarray]
"""``g``: normalised controls z (..., k) -> steady-state temperature (...)."""

DEFAULT_START = "2026-01-05 06:00:00"


@dataclass(frozen=True)
class LogSettings:
    """How a generated plant responds over time and how its log was made."""

    rate: float = 0.3
    """a: fraction of the gap to the steady state closed per sample (1 = no lag)."""
    dead_time: int = 0
    """d: samples before a change of the settings starts to show."""
    samples: int = 1500
    """Samples simulated (rows written = samples minus gaps)."""
    drift_fraction: float = 0.0
    """Stationary standard deviation of the drift D, as a fraction of the readings'
    spread (0: no drift)."""
    drift_time: float = 300.0
    """Correlation time of the drift in samples (phi = exp(-1 / drift_time)): slow."""
    hold_mean: float | None = None
    """Mean samples between the operator's changes; default ``3 / rate`` within [4, 60]."""
    band_share: float = 0.0
    """Share of the operator's changes aimed at a setting whose steady state is in the
    band (the rest go anywhere in the operating range)."""
    gaps: int = 0
    """Gaps in the log: each drops 2 to 10 consecutive samples (the clock jumps)."""
    missing_rows: int = 0
    """Rows whose reading is left empty (split the log where they are)."""
    time: str = "time"
    """Name of the time column."""
    time_format: Literal["datetime", "number"] = "datetime"
    """Stamps as dates and times, or as sample numbers."""
    period_s: int = 60
    """Seconds between samples (datetime stamps)."""
    start: str = DEFAULT_START
    """Time of the first sample."""

    def __post_init__(self) -> None:
        if not 0.0 < self.rate <= 1.0:
            raise ValueError(f"rate must be in (0, 1], got {self.rate}")
        if not 0 <= self.dead_time <= 10:
            raise ValueError(f"dead_time must be in 0..10, got {self.dead_time}")
        if self.samples < 20:
            raise ValueError(f"samples must be >= 20, got {self.samples}")
        if self.drift_fraction < 0 or self.drift_time <= 0:
            raise ValueError("drift_fraction must be >= 0 and drift_time > 0")
        if not 0.0 <= self.band_share <= 1.0:
            raise ValueError(f"band_share must be in [0, 1], got {self.band_share}")

    @property
    def hold(self) -> float:
        if self.hold_mean is not None:
            return float(self.hold_mean)
        return float(np.clip(3.0 / self.rate, 4.0, 60.0))


@dataclass(frozen=True, eq=False)
class PlantLog:
    """Every simulated sample (written or not) and which rows reached the file."""

    settings: LogSettings
    z: np.ndarray
    """(samples, k) settings in normalised units, in force from each sample on."""
    true_temperature: np.ndarray
    """(samples,) T, the noise-free process temperature."""
    drift: np.ndarray
    """(samples,) D, the disturbance at each sample."""
    readings: np.ndarray
    """(samples,) Y = T + noise, NaN where the reading is missing."""
    written: np.ndarray
    """(rows,) sample index of each written row (gaps left out)."""

    def stamps(self) -> list[str] | np.ndarray:
        """The time column of the written rows."""
        s = self.settings
        if s.time_format == "number":
            return self.written.copy()
        start = pd.Timestamp(s.start)
        times = start + pd.to_timedelta(self.written * s.period_s, unit="s")
        return [t.strftime("%Y-%m-%d %H:%M:%S") for t in times]


def _operator_settings(
    rng: np.random.Generator,
    settings: LogSettings,
    k: int,
    z_limit: float,
    in_band_target: Callable[[np.random.Generator, np.ndarray], np.ndarray],
) -> np.ndarray:
    """(samples, k) settings: held, then changed (some controls at a time)."""
    n = settings.samples
    z = np.empty((n, k))
    current = rng.uniform(-z_limit, z_limit, k)
    t = 0
    while t < n:
        hold = 1 + int(rng.geometric(1.0 / settings.hold))
        z[t : t + hold] = current
        t += hold
        if rng.random() < settings.band_share:
            current = in_band_target(rng, current)
        else:
            changed = rng.random(k) < max(1.0 / k, 0.5)
            changed[rng.integers(k)] = True
            current = np.where(changed, rng.uniform(-z_limit, z_limit, k), current)
    return z


def simulate_log(
    truth: Truth,
    settings: LogSettings,
    k: int,
    spread: float,
    noise_std: float,
    rng: np.random.Generator,
    z_limit: float,
    in_band_target: Callable[[np.random.Generator, np.ndarray], np.ndarray],
) -> PlantLog:
    """Simulate the plant under the operator (see the module docstring)."""
    n, a, d = settings.samples, settings.rate, settings.dead_time
    z = _operator_settings(rng, settings, k, z_limit, in_band_target)
    steady = truth(z)
    phi = float(np.exp(-1.0 / settings.drift_time))
    drift_std = settings.drift_fraction * spread
    drift = np.zeros(n)
    shocks = rng.standard_normal(n)
    drift[0] = drift_std * shocks[0]
    for t in range(1, n):
        drift[t] = phi * drift[t - 1] + drift_std * np.sqrt(1.0 - phi * phi) * shocks[t]
    temperature = np.empty(n)
    temperature[0] = steady[0] + drift[0]
    for t in range(n - 1):
        effective = steady[max(t - d, 0)]
        temperature[t + 1] = temperature[t] + a * (effective + drift[t] - temperature[t])
    readings = temperature + rng.normal(0.0, noise_std, n)
    written = _written_samples(rng, n, settings.gaps)
    if settings.missing_rows:
        inner = written[5:-5]
        missing = rng.choice(inner, size=min(settings.missing_rows, len(inner)), replace=False)
        readings[missing] = np.nan
    return PlantLog(settings, z, temperature, drift, readings, written)


def _written_samples(rng: np.random.Generator, n: int, gaps: int) -> np.ndarray:
    keep = np.ones(n, bool)
    for start in rng.choice(np.arange(n // 10, n - n // 10), size=gaps, replace=False):
        keep[start : start + int(rng.integers(2, 11))] = False
    return np.flatnonzero(keep)


class GeneratingPlant:
    """The generating plant stepped in closed loop, for a batch of runs.

    Starts from logged rows with their hidden state: the true temperature, the drift
    and the settings in flight (the rows before, which must be consecutive samples).
    Each :meth:`step` takes the new settings (in force from now on, physical units) and
    returns the next readings: the truth's response, the drift going on, and
    measurement noise, all seeded.
    """

    def __init__(
        self,
        truth: Truth,
        to_z: Callable[[np.ndarray], np.ndarray],
        log: PlantLog,
        noise_std: float,
        spread: float,
        seed: int = 0,
    ) -> None:
        self._truth = truth
        self._to_z = to_z
        self.log = log
        self.rate = log.settings.rate
        self.dead_time = log.settings.dead_time
        self.noise_std = noise_std
        self._phi = float(np.exp(-1.0 / log.settings.drift_time))
        self._drift_step = log.settings.drift_fraction * spread * np.sqrt(1 - self._phi**2)
        self.rng = np.random.default_rng(seed)
        self.temperature = np.zeros(0)
        self.drift = np.zeros(0)
        self.queue = np.zeros((0, 0))
        """(n, d) steady states of the settings in flight, oldest first."""

    def start(self, samples: np.ndarray) -> None:
        """Start one run at each of ``samples`` (indices of simulated samples, which
        need ``dead_time`` samples before them), before the decision at that sample:
        the state a fitted plant's episode from that logged row starts in (its reading,
        the settings of the sample before, those of the ``dead_time`` samples before in
        flight). ``SyntheticPlant.samples_of_rows`` maps CSV data rows to samples."""
        samples = np.asarray(samples, dtype=np.intp)
        d = self.dead_time
        if d and (samples < d).any():
            raise ValueError(f"starts need {d} earlier samples (dead time)")
        log = self.log
        self.temperature = log.true_temperature[samples].copy()
        self.drift = log.drift[samples].copy()
        steady = self._truth(log.z)
        self.queue = np.stack([steady[samples - d + j] for j in range(d)], axis=1).reshape(
            len(samples), d
        )

    def step(self, controls: np.ndarray) -> np.ndarray:
        """Apply the settings (n, k) from now on; return the next readings (n,)."""
        steady = self._truth(self._to_z(np.asarray(controls, dtype=np.float64)))
        if self.dead_time:
            effective = self.queue[:, 0].copy()
            self.queue = np.concatenate([self.queue[:, 1:], steady[:, None]], axis=1)
        else:
            effective = steady
        n = len(self.temperature)
        self.temperature = self.temperature + self.rate * (
            effective + self.drift - self.temperature
        )
        self.drift = self._phi * self.drift + self._drift_step * self.rng.standard_normal(n)
        return self.temperature + self.noise_std * self.rng.standard_normal(n)
