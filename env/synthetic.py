"""Seeded synthetic plants of any shape: data for tests, benchmarks and examples.

A user's first dataset will not look like the bundled sample, so everything that claims
to work "for any plant" is checked on plants made here: ``k`` controls, a non-linear
steady state with interactions, measurement noise, and a knob for how far the rows lie
from the band *in moves* (the mean planner depth). The plant is also the ground truth
the CSV came from, :meth:`SyntheticPlant.steady_temperature`, so a fitted model can be
compared with the real thing.

The truth, in normalised controls ``z_i = (u_i - centre_i) / width_i`` (rows span
``z`` in [-2, 2])::

    T = base + sum_i a_i phi_i(z_i) + sum_(i,j) b_ij z_i z_j + N(0, noise^2)
    phi_i: linear z | saturating 1.6 tanh(0.7 z) | curved z + 0.12 z^2   (by i mod 3)

Gains ``a_i`` have random signs (some controls heat, some cool) and magnitudes;
neighbouring controls interact (``b``). The band is centred on the median reading.

How the depth knob works
    A move shifts every control by at most one step, so the number of moves a row
    needs is about its path length to the band divided by the step. The generator
    measures each candidate row's path length ``L`` (in ``z`` units, Chebyshev) along
    the greedy path that moves every control in its helpful direction at once (the
    corner of the reachable box that changes ``T`` fastest for a monotone plant), then
    sets the step of every control to ``rho * width_i`` with ``rho = median(L) /
    mean_depth``: the step size relative to each control's range is the knob. Rows
    are then drawn from a large candidate pool with weights ``exp(lambda * depth)``
    (``lambda`` solved so that the mean estimated depth is ``mean_depth``), among
    candidates that need at most ``0.9 * horizon`` moves, so that deep plants keep
    almost every row solvable within the horizon. The estimate is made on the truth;
    the planner works on the fitted model and reports the real depths.

Plants with inertia
    With ``log=LogSettings(rate=..., dead_time=..., drift_fraction=...)`` the CSV is not
    a set of steady states but a time-ordered log of the plant run by an operator, with
    a time column, a first-order lag, a dead time, slow drift, gaps and missing readings
    (:mod:`env.synthetic_log`); :meth:`SyntheticPlant.generating_plant` steps the same
    truth in closed loop from any logged row. The steps and the band are made as above.

Extending it
    Everything a run needs is in :class:`SyntheticSettings`; ``env`` is copied into the
    spec's ``env:`` section (reward weights, a hand-set ``response_rate``).

Usage::

    from env.synthetic import SyntheticSettings, make_synthetic_plant
    plant = make_synthetic_plant(SyntheticSettings(n_controls=6, mean_depth=20, seed=1))
    spec_path = plant.write(Path("/tmp/plant6"))      # plant.csv + spec.yaml
    truth = plant.steady_temperature(controls)          # (n, 6) -> (n,)

    lagging = make_synthetic_plant(n_controls=3, log=LogSettings(rate=0.2, dead_time=2))
    lagging.write(Path("/tmp/log3"))                    # time-ordered plant.csv + spec
    simulator = lagging.generating_plant(seed=0)        # the truth in closed loop
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from env.synthetic_log import GeneratingPlant, LogSettings, PlantLog, simulate_log

CSV_NAME = "plant.csv"
SPEC_NAME = "spec.yaml"
Z_LIMIT = 2.0
"""Rows span normalised controls in [-Z_LIMIT, Z_LIMIT] (the default bounds)."""
_POOL_PER_ROW = 40
_FINE_STEP = 0.01
_SHAPES = ("linear", "saturating", "curved")


@dataclass(frozen=True)
class SyntheticSettings:
    """Everything that defines one generated plant (same settings, same files)."""

    n_controls: int = 4
    """Number of control columns, k."""
    mean_depth: float = 8.0
    """Target mean planner depth in moves over the rows (about 2, 8, 20 ...)."""
    rows: int = 500
    """Rows written to the CSV."""
    noise_fraction: float = 0.03
    """Measurement noise standard deviation as a fraction of the readings' spread."""
    band_fraction: float = 0.12
    """Band width as a fraction of the readings' spread (standard deviation)."""
    horizon: int = 30
    """Moves per episode written to the spec; rows needing more are rare."""
    seed: int = 0
    """Seed of everything: gains, interactions, rows and noise."""
    state: str = "temperature"
    """Name of the state column."""
    candidates: tuple[str, ...] = ("linear", "quadratic", "cubic", "rbf")
    """Model families written to the spec's ``model.candidates``."""
    ensemble_size: int = 8
    """Bootstrap members written to the spec's ``model.ensemble_size``."""
    env: dict[str, Any] = field(default_factory=dict)
    """Extra ``env:`` settings of the spec (reward weights, a hand-set lag)."""
    log: LogSettings | None = None
    """Write a time-ordered log of the plant with inertia instead of steady states."""
    names: tuple[str, ...] = ()
    """Control column names (default u0, u1, ...)."""
    units: tuple[str, ...] = ()
    """Control units written to the spec (default none)."""
    state_unit: str = ""
    """Unit of the state written to the spec."""
    base: float = 500.0
    """The steady state's constant term (temperature scale)."""
    centres: tuple[float, ...] = ()
    """Controls' values at z = 0 (default: random in [5, 100])."""
    gain_signs: tuple[float, ...] = ()
    """+1 for a control that heats, -1 for one that cools (default: random)."""

    def __post_init__(self) -> None:
        if self.names and len(self.names) != self.n_controls:
            raise ValueError(f"names must name {self.n_controls} controls")
        if self.units and len(self.units) != self.n_controls:
            raise ValueError(f"units must give {self.n_controls} units")
        for name in ("centres", "gain_signs"):
            if getattr(self, name) and len(getattr(self, name)) != self.n_controls:
                raise ValueError(f"{name} must give {self.n_controls} values")
        if self.n_controls < 1:
            raise ValueError(f"n_controls must be >= 1, got {self.n_controls}")
        if not 0.5 <= self.mean_depth <= 0.9 * self.horizon:
            raise ValueError(
                f"mean_depth must be in [0.5, 0.9 * horizon = {0.9 * self.horizon:g}], "
                f"got {self.mean_depth}"
            )
        if self.rows < 10:
            raise ValueError(f"rows must be >= 10, got {self.rows}")


@dataclass(frozen=True, eq=False)
class SyntheticPlant:
    """A generated plant: its true steady state, its steps and band, and its rows."""

    settings: SyntheticSettings
    names: tuple[str, ...]
    centres: np.ndarray
    """(k,) physical value at z = 0."""
    widths: np.ndarray
    """(k,) physical change per unit of z."""
    gains: np.ndarray
    """(k,) a_i."""
    pairs: np.ndarray
    """(m, 2) interacting control indices."""
    pair_gains: np.ndarray
    """(m,) b_ij."""
    base: float
    band: tuple[float, float]
    steps: np.ndarray
    """(k,) physical step per control (rho * width)."""
    controls: np.ndarray
    """(rows, k) the rows' settings."""
    readings: np.ndarray
    """(rows,) the rows' measured temperatures (truth + noise)."""
    estimated_depths: np.ndarray
    """(rows,) moves each row needs along the greedy path on the truth (an estimate)."""
    noise_std: float = 0.0
    """Measurement noise standard deviation (physical units)."""
    spread: float = 1.0
    """Standard deviation of the truth over the operating range (sets noise and drift)."""
    log: PlantLog | None = None
    """The time-ordered log (with ``settings.log``); its written rows are the CSV."""

    @property
    def n_controls(self) -> int:
        return len(self.names)

    def log_controls(self) -> np.ndarray:
        """(samples, k) the log's settings in physical units (every simulated sample)."""
        if self.log is None:
            raise ValueError("this plant has no log (settings.log is None)")
        return self.centres + self.widths * self.log.z

    def samples_of_rows(self, csv_rows: np.ndarray) -> np.ndarray:
        """Simulated sample index of CSV data rows (0-based, as ``PlantData.row_numbers``):
        what :meth:`GeneratingPlant.start` takes to start where a logged row was."""
        if self.log is None:
            raise ValueError("this plant has no log (settings.log is None)")
        return self.log.written[np.asarray(csv_rows, dtype=np.intp)]

    def generating_plant(self, seed: int = 0) -> GeneratingPlant:
        """The plant that made the log, in closed loop (see :class:`GeneratingPlant`)."""
        if self.log is None:
            raise ValueError("this plant has no log (settings.log is None)")
        return GeneratingPlant(
            self.steady_temperature_z, self.to_z, self.log, self.noise_std, self.spread, seed
        )

    def steady_temperature_z(self, z: np.ndarray) -> np.ndarray:
        """The steady state for normalised controls z (..., k)."""
        return _truth(np.asarray(z, dtype=np.float64), self.gains, self.pairs,
                      self.pair_gains, self.base)  # fmt: skip

    def to_z(self, controls: np.ndarray) -> np.ndarray:
        return (np.asarray(controls, dtype=np.float64) - self.centres) / self.widths

    def steady_temperature(self, controls: np.ndarray) -> np.ndarray:
        """The noise-free steady state T = g(u) for controls (..., k) in physical units."""
        return _truth(self.to_z(controls), self.gains, self.pairs, self.pair_gains, self.base)

    def spec_dict(self) -> dict[str, Any]:
        """The dataset spec as plain data (what :meth:`write` puts in ``spec.yaml``)."""
        s = self.settings
        controls = []
        for i, (name, step) in enumerate(zip(self.names, self.steps, strict=True)):
            entry: dict[str, Any] = {"name": name, "step": float(step)}
            if s.units:
                entry["unit"] = s.units[i]
            controls.append(entry)
        spec: dict[str, Any] = {"csv": CSV_NAME, "state": s.state}
        if s.state_unit:
            spec["state_unit"] = s.state_unit
        if s.log is not None:
            spec["time"] = s.log.time
        spec.update(
            {
                "band": [float(self.band[0]), float(self.band[1])],
                "controls": controls,
                "env": {"horizon": s.horizon, **s.env},
                "model": {
                    "candidates": list(s.candidates),
                    "ensemble_size": s.ensemble_size,
                    "seed": s.seed,
                },
            }
        )
        return spec

    def frame(self) -> pd.DataFrame:
        """The CSV: steady-state rows, or the written rows of the log with their time."""
        if self.log is not None:
            rows = self.log.written
            frame = pd.DataFrame({self.log.settings.time: self.log.stamps()})
            frame[self.settings.state] = np.round(self.log.readings[rows], 4)
            controls = self.log_controls()[rows]
        else:
            frame = pd.DataFrame({self.settings.state: np.round(self.readings, 4)})
            controls = self.controls
        for i, name in enumerate(self.names):
            frame[name] = np.round(controls[:, i], 6)
        return frame

    def write(self, folder: str | Path) -> Path:
        """Write ``plant.csv`` and ``spec.yaml`` into ``folder``; return the spec path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.frame().to_csv(folder / CSV_NAME, index=False)
        path = folder / SPEC_NAME
        path.write_text(yaml.safe_dump(self.spec_dict(), sort_keys=False), encoding="utf-8")
        return path


# --------------------------------------------------------------------------- truth


def _phi(z: np.ndarray) -> np.ndarray:
    """Per-control response shapes, chosen by control index modulo 3."""
    kind = np.arange(z.shape[-1]) % len(_SHAPES)
    return np.where(kind == 0, z, np.where(kind == 1, 1.6 * np.tanh(0.7 * z), z + 0.12 * z**2))


def _phi_slope(z: np.ndarray) -> np.ndarray:
    kind = np.arange(z.shape[-1]) % len(_SHAPES)
    saturating = 1.6 * 0.7 / np.cosh(0.7 * z) ** 2
    return np.where(kind == 0, 1.0, np.where(kind == 1, saturating, 1.0 + 0.24 * z))


def _truth(
    z: np.ndarray, gains: np.ndarray, pairs: np.ndarray, pair_gains: np.ndarray, base: float
) -> np.ndarray:
    value = base + _phi(z) @ gains
    if len(pairs):
        value = value + (z[..., pairs[:, 0]] * z[..., pairs[:, 1]]) @ pair_gains
    return value


def _truth_gradient(
    z: np.ndarray, gains: np.ndarray, pairs: np.ndarray, pair_gains: np.ndarray
) -> np.ndarray:
    gradient = _phi_slope(z) * gains
    for (i, j), b in zip(pairs, pair_gains, strict=True):
        gradient[..., i] += b * z[..., j]
        gradient[..., j] += b * z[..., i]
    return gradient


# --------------------------------------------------------------------------- depth


def _path_lengths(
    z: np.ndarray,
    readings: np.ndarray,
    band: tuple[float, float],
    truth: Any,
    gradient: Any,
) -> np.ndarray:
    """Chebyshev path length (z units) to the band along the greedy all-controls path.

    Each control moves ``_FINE_STEP`` per iteration in the direction that brings the
    reading towards the band (re-chosen every iteration, so interactions are followed),
    within [-Z_LIMIT, Z_LIMIT]. Rows the path never brings into the band get ``inf``.
    The measured reading's offset from the truth is carried along (as the planner does).
    """
    low, high = band
    offset = readings - truth(z)
    length = np.where((readings >= low) & (readings <= high), 0.0, np.inf)
    u = z.copy()
    active = np.isinf(length)
    for iteration in range(1, int(2 * Z_LIMIT / _FINE_STEP) + 2):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        t = truth(u[idx]) + offset[idx]
        direction = np.where(t < low, 1.0, -1.0)[:, None] * np.sign(gradient(u[idx]))
        u[idx] = np.clip(u[idx] + _FINE_STEP * direction, -Z_LIMIT, Z_LIMIT)
        t = truth(u[idx]) + offset[idx]
        hit = (t >= low) & (t <= high)
        length[idx[hit]] = iteration * _FINE_STEP
        active[idx[hit]] = False
    return length


def _tilt_weights(depth: np.ndarray, target: float) -> np.ndarray:
    """Weights exp(lambda * depth), lambda solved by bisection for mean depth = target."""
    scaled = depth / max(depth.max(), 1.0)
    lo, hi = -60.0, 60.0
    for _ in range(80):
        lam = 0.5 * (lo + hi)
        w = np.exp(lam * (scaled - scaled.max()))
        if (w @ depth) / w.sum() < target:
            lo = lam
        else:
            hi = lam
    w = np.exp(0.5 * (lo + hi) * (scaled - scaled.max()))
    return w / w.sum()


# --------------------------------------------------------------------------- generator


def make_synthetic_plant(
    settings: SyntheticSettings | None = None, **overrides: Any
) -> SyntheticPlant:
    """Generate a plant (deterministic in ``settings.seed``)."""
    s = dataclasses.replace(settings or SyntheticSettings(), **overrides)
    k = s.n_controls
    rng = np.random.default_rng(s.seed)
    centres = np.round(rng.uniform(5.0, 100.0, k), 1)
    if s.centres:
        centres = np.array(s.centres, dtype=np.float64)
    widths = centres * rng.uniform(0.05, 0.25, k)
    signs = rng.choice([-1.0, 1.0], k)
    if s.gain_signs:
        signs = np.sign(np.array(s.gain_signs, dtype=np.float64))
    gains = signs * rng.uniform(2.0, 6.0, k)
    pairs = np.array([(i, (i + 1) % k) for i in range(k if k > 2 else k - 1)], dtype=np.intp)
    pairs = pairs.reshape(-1, 2)
    pair_gains = rng.uniform(-0.25, 0.25, len(pairs)) * np.abs(gains).mean()
    base = s.base

    def truth(z: np.ndarray) -> np.ndarray:
        return _truth(z, gains, pairs, pair_gains, base)

    def gradient(z: np.ndarray) -> np.ndarray:
        return _truth_gradient(z, gains, pairs, pair_gains)

    pool = rng.uniform(-Z_LIMIT, Z_LIMIT, (_POOL_PER_ROW * s.rows, k))
    clean = truth(pool)
    spread = float(clean.std())
    readings = clean + rng.normal(0.0, s.noise_fraction * spread, len(pool))
    mid = float(np.median(clean))
    band = (
        round(mid - 0.5 * s.band_fraction * spread, 3),
        round(mid + 0.5 * s.band_fraction * spread, 3),
    )

    lengths = _path_lengths(pool, readings, band, truth, gradient)
    finite = np.isfinite(lengths)
    rho = float(np.median(lengths[finite & (lengths > 0)])) / s.mean_depth
    depth = np.ceil(np.round(lengths / rho, 6))
    usable = np.flatnonzero(finite & (depth <= 0.9 * s.horizon))
    weights = _tilt_weights(depth[usable], s.mean_depth)
    chosen = rng.choice(usable, size=s.rows, replace=False, p=weights)
    noise_std = s.noise_fraction * spread
    log = None
    if s.log is not None:
        log = simulate_log(
            truth,
            s.log,
            k,
            spread,
            noise_std,
            np.random.default_rng([s.seed, 1]),  # its own stream: the static rows stay as they were
            Z_LIMIT,
            _in_band_target(truth, band),
        )
    return SyntheticPlant(
        settings=s,
        names=s.names or tuple(f"u{i}" for i in range(k)),
        centres=centres,
        widths=widths,
        gains=gains,
        pairs=pairs,
        pair_gains=pair_gains,
        base=base,
        band=band,
        steps=rho * widths,
        controls=centres + widths * pool[chosen],
        readings=readings[chosen],
        estimated_depths=depth[chosen],
        noise_std=noise_std,
        spread=spread,
        log=log,
    )


def _in_band_target(truth: Any, band: tuple[float, float]) -> Any:
    """An operator's aimed change: of 64 random changes of some controls, the one whose
    steady state lies nearest the band's centre."""
    mid = 0.5 * (band[0] + band[1])

    def target(rng: np.random.Generator, current: np.ndarray) -> np.ndarray:
        k = len(current)
        changed = rng.random((64, k)) < 0.5
        trial = np.where(changed, rng.uniform(-Z_LIMIT, Z_LIMIT, (64, k)), current)
        return trial[int(np.argmin(np.abs(truth(trial) - mid)))]

    return target


def write_synthetic_plant(folder: str | Path, **settings: Any) -> Path:
    """Generate a plant from keyword settings and write it; return the spec path."""
    return make_synthetic_plant(SyntheticSettings(**settings)).write(folder)
