"""The simulated plant: dataset spec + fitted model + dynamics, shared by everything.

One object holds the physics so that the Gymnasium environment, the vectorised
evaluation, the planner, the baselines and the recommendations all step the *same*
world. Every method works on a single state or on a batch (leading axes), which is
what lets evaluation roll out hundreds of start rows at once.

Dynamics of one move (defaults in brackets, see :class:`env.spec.EnvSettings`)::

    u'     = clip(u + delta, lower, upper)
    T_ss   = f(u') + offset + d            # f: fitted model; offset: see below
    T'     = T + r (T_ss - T) + noise      # r = response_rate [1: no lag], noise [0]
    d'     = d + drift                     # slow random-walk disturbance [0]

``offset`` is the start row's residual, measured minus modelled temperature. It is
carried unchanged through the episode as an unmeasured disturbance (the usual bias
model of model-predictive control), so "keep" at the start reproduces the measured
reading instead of jumping to the model's value.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias, overload

import numpy as np

from env.actions import ActionCodec
from env.data import PlantData, load_plant_data
from env.errors import InputError
from env.model import ProcessModel, fit_process_model
from env.spec import DatasetSpec, EnvSettings, load_spec

DEFAULT_SPEC_PATH = Path(__file__).resolve().parent.parent / "data" / "sample_spec.yaml"
OBS_CLIP = 10.0
"""Normalised temperature features are clipped to +/- this (the space's bounds)."""
_RANGE_PROBE_POINTS = 20000
FloatOrArray: TypeAlias = "float | np.ndarray"
"""A single value or a batch: the physics works on both (see the module docstring)."""


@dataclass(frozen=True, eq=False)
class Plant:
    """Everything needed to simulate one dataset's process.

    ``data`` (the CSV rows) is needed only for start states and data-support checks;
    an exported policy rebuilds a Plant from its recorded bounds and scale without it.
    """

    spec: DatasetSpec
    model: ProcessModel
    settings: EnvSettings
    lower: np.ndarray
    """Shape (k,): lower control bounds."""
    upper: np.ndarray
    """Shape (k,): upper control bounds."""
    temperature_scale: float
    """Scale of the normalised temperature: half the observed range (>= band width)."""
    data: PlantData | None = None

    @classmethod
    def from_data(
        cls, spec: DatasetSpec, data: PlantData, model: ProcessModel, settings: EnvSettings
    ) -> Plant:
        band_width = float(spec.band[1] - spec.band[0])
        return cls(
            spec=spec,
            model=model,
            settings=settings,
            lower=data.lower,
            upper=data.upper,
            temperature_scale=max(float(np.ptp(data.state)) / 2.0, band_width),
            data=data,
        )

    @property
    def rows(self) -> PlantData:
        """The CSV rows; only plants built from data have them."""
        if self.data is None:
            raise InputError(
                self.spec.csv, "not available: this plant was rebuilt without its CSV rows"
            )
        return self.data

    # ------------------------------------------------------------------ constants
    @functools.cached_property
    def steps(self) -> np.ndarray:
        return np.array([c.step for c in self.spec.controls], dtype=np.float64)

    @property
    def n_controls(self) -> int:
        return len(self.spec.controls)

    @functools.cached_property
    def band(self) -> tuple[float, float]:
        return float(self.spec.band[0]), float(self.spec.band[1])

    @functools.cached_property
    def band_width(self) -> float:
        return self.band[1] - self.band[0]

    @functools.cached_property
    def band_mid(self) -> float:
        return 0.5 * (self.band[0] + self.band[1])

    @functools.cached_property
    def start_indices(self) -> np.ndarray:
        """Indices into the data arrays of rows usable as start states."""
        return np.flatnonzero(self.rows.start_row_mask())

    @functools.cached_property
    def row_offsets(self) -> np.ndarray:
        """Measured minus modelled temperature of every data row."""
        return self.rows.state - self.model.predict(self.rows.controls)

    def codec(self, action_mode: str) -> ActionCodec:
        """How actions of ``action_mode`` move this plant's controls."""
        return ActionCodec(action_mode, self.steps, self.settings.continuous_deadband)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ physics
    def offset_for(self, temperature: FloatOrArray, controls: np.ndarray) -> np.ndarray:
        return np.asarray(temperature, dtype=np.float64) - self.model.predict(controls)

    def apply_delta(self, controls: np.ndarray, delta: np.ndarray) -> np.ndarray:
        return np.clip(controls + delta, self.lower, self.upper)

    def next_temperature(
        self,
        temperature: FloatOrArray,
        new_controls: np.ndarray,
        offset: FloatOrArray,
        disturbance: np.ndarray | float = 0.0,
        noise: np.ndarray | float = 0.0,
    ) -> np.ndarray:
        steady = self.model.predict(new_controls) + offset + disturbance
        return self._respond(temperature, steady, noise)

    def next_temperature_scalar(
        self,
        temperature: float,
        new_controls: list[float],
        offset: float,
        disturbance: float = 0.0,
        noise: float = 0.0,
    ) -> float:
        """Python-float twin of :meth:`next_temperature` for the env's per-step path."""
        steady = self.model.predict_scalar(new_controls) + offset + disturbance
        return self._respond(temperature, steady, noise)

    def _respond(self, temperature: Any, steady: Any, noise: Any) -> Any:  # floats or arrays
        """First-order lag towards ``steady`` (``response_rate`` 1: no lag), plus noise."""
        rate = self.settings.response_rate
        if rate == 1.0:
            return steady + noise
        return temperature + rate * (steady - temperature) + noise

    @overload
    def in_band(self, temperature: float) -> bool: ...
    @overload
    def in_band(self, temperature: np.ndarray) -> np.ndarray: ...
    def in_band(self, temperature: FloatOrArray) -> bool | np.ndarray:
        low, high = self.band
        return (temperature >= low) & (temperature <= high)

    def distance_to_band(self, temperature: FloatOrArray) -> np.ndarray:
        """Signed distance: negative below the band, positive above, zero inside."""
        low, high = self.band
        return np.where(temperature < low, temperature - low, np.maximum(temperature - high, 0.0))

    def reward(
        self,
        temperature: np.ndarray,
        moved_steps: np.ndarray,
        model_std: np.ndarray | float = 0.0,
    ) -> np.ndarray:
        """Reward of arriving at ``temperature`` after moving ``moved_steps`` (..., k)."""
        s = self.settings
        distance = np.abs(self.distance_to_band(temperature)) / self.band_width
        outside = -(
            s.out_of_band_penalty + s.distance_weight * np.minimum(distance, s.distance_cap)
        )
        reward = np.where(distance == 0.0, s.in_band_reward, outside)
        reward = reward - s.move_cost * np.abs(moved_steps).mean(axis=-1)
        if s.uncertainty_penalty > 0.0:
            reward = reward - s.uncertainty_penalty * np.asarray(model_std) / self.band_width
        return reward

    def reward_scalar(
        self, temperature: float, mean_moved_steps: float, model_std: float = 0.0
    ) -> float:
        """Python-float twin of :meth:`reward` for the environment's per-step hot path.

        NumPy's per-call overhead would dominate a single step; the tests check that
        both forms agree on random inputs.
        """
        s = self.settings
        low, high = self.band
        if low <= temperature <= high:
            reward = s.in_band_reward
        else:
            distance = (low - temperature if temperature < low else temperature - high) / (
                self.band_width
            )
            reward = -(s.out_of_band_penalty + s.distance_weight * min(distance, s.distance_cap))
        reward -= s.move_cost * mean_moved_steps
        if s.uncertainty_penalty > 0.0:
            reward -= s.uncertainty_penalty * model_std / self.band_width
        return reward

    def observe_scalar(self, temperature: float, controls: list[float]) -> np.ndarray:
        """Python-float twin of :meth:`observe` for one state inside the bounds."""
        low, high, mid, inv_scale, inv_width, scale, shift = self._observe_constants
        temp = (temperature - mid) * inv_scale
        gap = (temperature - low if temperature < low else max(temperature - high, 0.0)) * (
            inv_width
        )
        values = [
            -OBS_CLIP if temp < -OBS_CLIP else OBS_CLIP if temp > OBS_CLIP else temp,
            -OBS_CLIP if gap < -OBS_CLIP else OBS_CLIP if gap > OBS_CLIP else gap,
        ]
        # controls are kept inside the bounds, so the [-1, 1] map needs no clipping
        values.extend([u * a + b for u, a, b in zip(controls, scale, shift, strict=True)])
        return np.array(values, dtype=np.float32)

    @functools.cached_property
    def _observe_constants(self) -> tuple:
        """Constants of :meth:`observe_scalar`, looked up once instead of every step."""
        scale = 2.0 / (self.upper - self.lower)  # a * u + b maps [lower, upper] to [-1, 1]
        return (
            *self.band,
            self.band_mid,
            1.0 / self.temperature_scale,
            1.0 / self.band_width,
            scale.tolist(),
            (-self.lower * scale - 1.0).tolist(),
        )

    def observe(self, temperature: FloatOrArray, controls: np.ndarray) -> np.ndarray:
        """Observation vector(s): [temperature, band gap, controls], all normalised.

        * temperature: (T - band centre) / scale, clipped to +/- OBS_CLIP;
        * band gap: signed distance to the band in band widths (0 inside), clipped;
        * controls: mapped from [lower, upper] to [-1, 1].
        """
        temperature = np.asarray(temperature, dtype=np.float64)
        temp = np.clip((temperature - self.band_mid) / self.temperature_scale, -OBS_CLIP, OBS_CLIP)
        gap = np.clip(self.distance_to_band(temperature) / self.band_width, -OBS_CLIP, OBS_CLIP)
        ctrl = 2.0 * (controls - self.lower) / (self.upper - self.lower) - 1.0
        return np.concatenate(
            [temp[..., None], gap[..., None], np.clip(ctrl, -1.0, 1.0)], axis=-1
        ).astype(np.float32)

    # ------------------------------------------------------------------ support
    def model_range(self) -> tuple[float, float]:
        """Lowest and highest model temperature over the control bounds (probed)."""
        k = self.n_controls
        per_axis = max(2, int(_RANGE_PROBE_POINTS ** (1.0 / k)))
        if per_axis**k <= _RANGE_PROBE_POINTS:
            axes = [
                np.linspace(lo, hi, per_axis) for lo, hi in zip(self.lower, self.upper, strict=True)
            ]
            grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, k)
        else:  # many controls: corners are too many, probe at random
            rng = np.random.default_rng(0)
            grid = rng.uniform(self.lower, self.upper, size=(_RANGE_PROBE_POINTS, k))
        if self.data is not None:
            grid = np.concatenate([grid, np.clip(self.data.controls, self.lower, self.upper)])
        values = self.model.predict(grid)
        return float(values.min()), float(values.max())

    def check_band_reachable(self) -> None:
        """Refuse a band no start row can reach within the bounds (per the model)."""
        low, high = self.model_range()
        offsets = self.row_offsets[self.start_indices]
        reach_low, reach_high = low + offsets.min(), high + offsets.max()
        band_low, band_high = self.band
        if band_high < reach_low or band_low > reach_high:
            raise InputError(
                self.spec.source or "spec",
                f"band [{band_low:g}, {band_high:g}] is unreachable: within the control "
                f"bounds the model reaches only {reach_low:.2f} to {reach_high:.2f}",
                "band",
            )


def _settings_with(spec: DatasetSpec, overrides: dict | None) -> EnvSettings:
    from env.typed_config import build_dataclass

    if not overrides:
        return spec.env
    merged = {**spec.env.__dict__, **overrides}
    return build_dataclass(EnvSettings, merged, spec.source or "env settings", "env")


@functools.lru_cache(maxsize=8)
def _load_base_plant(spec_path: str, mtime_ns: int, model_path: str | None) -> Plant:
    """Spec, data and model as a checked plant, cached per process: RLlib builds many
    envs per worker and each must not re-read the CSV or refit the model."""
    del mtime_ns  # part of the cache key only: an edited spec is read again
    spec = load_spec(spec_path)
    if model_path is None:
        data = load_plant_data(spec)
        model = fit_process_model(data)
    else:
        model = ProcessModel.load(model_path)
        data = load_plant_data(spec, model.recorded_read(model_path))
        check_model_matches(model, data, model_path)
    plant = Plant.from_data(spec, data, model, spec.env)
    plant.check_band_reachable()
    return plant


def check_model_matches(model: ProcessModel, data: PlantData, model_path: str | Path) -> None:
    """A model artifact is only valid for the exact CSV and controls it was fitted on."""
    if model.csv_sha256 != data.csv_sha256:
        raise InputError(
            model_path,
            f"model was fitted to a different CSV (sha256 {model.csv_sha256[:12]}..., "
            f"CSV now {data.csv_sha256[:12]}...): refit it with 'rllib-project fit'",
        )
    if tuple(model.control_names) != data.spec.control_names:
        raise InputError(model_path, "model's controls differ from the spec's controls")


def load_plant(
    spec_path: str | Path | None = None,
    model_path: str | Path | None = None,
    settings: dict | None = None,
) -> Plant:
    """Build the plant for a dataset spec (default: the bundled sample data).

    Without ``model_path`` the model is fitted on the fly (deterministic, seeded);
    with it, the saved artifact is loaded and checked against the CSV's sha256.
    """
    path = Path(spec_path) if spec_path is not None else DEFAULT_SPEC_PATH
    if not path.exists():
        raise InputError(path, "dataset spec not found")
    base = _load_base_plant(
        str(path.resolve()),
        path.stat().st_mtime_ns,
        None if model_path is None else str(Path(model_path).resolve()),
    )
    if not settings:
        return base
    return dataclasses.replace(base, settings=_settings_with(base.spec, settings))
