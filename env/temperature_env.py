"""The Gymnasium environment: bring the temperature into its band and keep it there."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from env.actions import ActionMode
from env.plant import Plant, load_plant
from env.typed_config import build_dataclass


@dataclass(frozen=True)
class EnvConfig:
    """What RLlib's ``env_config`` dict (or ``gym.make`` keyword arguments) may hold.

    Small and picklable on purpose: workers rebuild the plant from the paths.
    """

    spec_path: str | None = None
    """Dataset spec YAML; default: the bundled sample data."""
    model_path: str | None = None
    """Fitted model JSON (from ``rllib-project fit``); default: fit on the fly."""
    action_mode: ActionMode = "discrete"
    """``discrete``, ``discrete_flat`` or ``continuous`` (see :mod:`env.actions`)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Overrides of the spec's ``env`` section (horizon, noise_std, ...)."""
    start_rows: list[int] | None = None
    """CSV data rows to start from, cycled in order (fixed evaluation sets); default:
    a random valid row per reset, drawn from ``np_random``."""

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None, **kwargs: Any) -> EnvConfig:
        merged = {**dict(config or {}), **kwargs}
        for key in ("spec_path", "model_path"):  # accept Path objects from Python callers
            if isinstance(merged.get(key), Path):
                merged[key] = str(merged[key])
        return build_dataclass(cls, merged, "env_config")


class TemperatureControlEnv(gym.Env):
    """
    ## Description

    A process (furnace, reactor, kiln) has one state, its temperature, driven by *k*
    controls. The steady-state response ``T = f(u)`` is a model fitted to a plant CSV
    (see :mod:`env.model`). Each move, the agent decides for every control whether to
    decrease it, keep it or increase it, by at most the control's step. The aim is to
    bring the temperature into the optimal band in as few moves as possible and then
    hold it there without touching the controls.

    Dynamics (see :mod:`env.plant`): ``u' = clip(u + delta)``,
    ``T' = T + r (f(e) + offset + d - T) + noise`` with ``e = u'``, or, with a dead time
    of ``D`` moves, the setting made ``D`` moves ago (the settings in flight are part of
    the state). For a time-ordered log (a spec with ``time``) the rate ``r`` and the
    dead time are identified from the log (:mod:`env.dynamics`). For rows without time
    order ``r = 1``, no dead time, no noise and no drift by default: static operating
    points identify no lag and no noise process; a hand-set lag (``response_rate``),
    noise and drift can be switched on in the spec's ``env`` section to train for
    robustness.

    ## Action Space

    Set by ``action_mode`` (k = number of controls):

    | Mode            | Space                    | Meaning                                      |
    |-----------------|--------------------------|----------------------------------------------|
    | `discrete`      | `MultiDiscrete([3] * k)` | per control 0 = decrease, 1 = keep, 2 = raise |
    | `discrete_flat` | `Discrete(3 ** k)`       | the k base-3 digits as one index (for DQN)    |
    | `continuous`    | `Box(-1, 1, (k,))`       | fraction of a step; below the dead-band: keep |

    `step` refuses an action outside the space with a `ValueError` naming the action and
    the space (integers out of range, a wrong shape, floats for a discrete mode, NaN or
    infinite values, continuous values beyond ±1) and leaves the state untouched.
    Continuous values within `env.actions.CONTINUOUS_TOLERANCE` (1e-6) beyond ±1 are
    float round-off and count as ±1.

    ## Observation Space

    `Box(shape=(k + 2,), dtype=float32)` for a plant without lag:

    | Num   | Observation                                        | Min  | Max |
    |-------|----------------------------------------------------|------|-----|
    | 0     | (T - band centre) / scale, scale = half data range | -10  | 10  |
    | 1     | signed distance to the band / band width (0 inside)| -10  | 10  |
    | 2..k+1| control i mapped from [lower_i, upper_i] to [-1, 1] | -1   | 1   |

    A lagging plant (rate < 1 or a dead time D) adds what tells "keep, the temperature
    is already on its way" from "move" (`Box(shape=(k + 4 + (D - 1) k,))`):

    | Num   | Observation                                              | Min  | Max |
    |-------|----------------------------------------------------------|------|-----|
    | k+2   | settling temperature f(u) + offset, normalised as Num 0  | -10  | 10  |
    | k+3   | its signed distance to the band / band width             | -10  | 10  |
    | k+4.. | settings in flight but the newest (which is the current  | -10  | 10  |
    |       | one), oldest first: current minus queued, in steps       |      |     |

    ## Rewards

    ``r = in_band_reward`` (1) when the new reading is inside the band, otherwise
    ``-(out_of_band_penalty + distance_weight * min(d / w, distance_cap))``
    (= -1 - 0.1 * min(d/w, 10)) with ``d`` the distance to the band and ``w`` its width;
    minus ``move_cost * mean_i |moved_i| / step_i`` (0.1 per full step of every
    control), so that "keep" beats any move once inside the band; on a lagging plant
    minus ``actuation_cost`` (0.5) for a move that changes any setting, so that "keep,
    it is on its way" beats pushing again (why and why 0.5: :class:`env.spec.EnvSettings`);
    minus an optional ``uncertainty_penalty * model_std / w``. With the defaults r lies
    in [-2.1, 1] (in [-2.6, 1] on a lagging plant). The training reward adds a
    potential-based progress term, ``Phi(s') - Phi(s)`` with ``Phi = -2 d / reach``, ``d``
    the distance of the reading (on a lagging plant: of the settling temperature) to the
    band, ``reach`` what one move typically changes (see ``env.progress_shaping``): it
    pays each move at once for the distance it covers and sums to
    ``Phi(s_end) - Phi(s_0)`` over an episode, so the fewest moves stay best; the
    evaluation's returns leave it out. An episode that ends because the
    reading holds in the band (``end_on_hold``) is paid, with its last reward,
    the in-band reward of its reading for each reading left to the horizon: what keeping
    would earn.
    Because every reading outside the band costs at least 1 and inside earns 1, each
    extra move to the band costs about 2: the return is maximised by the fewest moves.

    ## Starting State

    A CSV row (its controls and measured temperature): a random valid row, the rows of
    ``start_rows`` in turn, or ``options={"row": n}``; or any state through
    ``options={"temperature": T, "controls": {...name: value} | array}`` (with a dead
    time optionally ``"pending"``: the D settings in flight, oldest first, as arrays;
    default: nothing in flight). The row's residual (measured - modelled temperature)
    is kept as a constant offset, so the first "keep" reproduces the measured reading.
    With dynamics identified from a log, a row starts mid-way as logged: its reading,
    the settings of the row before (row ``r``'s own are the operator's decision) and
    the settings of the D rows before in flight; the offset is 0 (see :mod:`env.plant`).

    ## Episode End

    * Termination: once the reading holds in the band (in it, and staying there when
      nothing is touched; spec ``env.end_on_hold``, default on without lag, off on a
      lagging plant, where ending there made every algorithm worse). The advice keeps every
      setting from there, whatever the policy says, so the episode's remaining steps
      would teach nothing the advice uses (why: :class:`env.spec.EnvSettings`). With
      ``end_on_hold: false`` never: the agent must then learn to *stay* in band.
    * Truncation: after ``horizon`` moves (spec ``env.horizon``, 30 for the sample data).
      The horizon is a property of the dataset spec, so the env truncates itself rather
      than relying on a ``TimeLimit`` wrapper that RLlib's env runners would not add.

    ## Arguments

    ```python
    import gymnasium as gym
    import env  # registers TemperatureControl-v0

    e = gym.make("TemperatureControl-v0")                         # sample data, discrete
    e = gym.make("TemperatureControl-v0", action_mode="continuous")
    e = gym.make("TemperatureControl-v0", spec_path="my_plant.yaml",
                 model_path="my_plant.model.json", settings={"horizon": 50})
    ```

    RLlib passes the same keys as its ``env_config`` dict (see :class:`EnvConfig`).

    ## Version History

    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        render_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.config = EnvConfig.from_mapping(config, **kwargs)
        self.plant: Plant = load_plant(
            self.config.spec_path, self.config.model_path, self.config.settings
        )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        plant = self.plant
        self.codec = plant.codec(self.config.action_mode)
        self.action_space = self.codec.space
        low, high = plant.observation_bounds()
        self.observation_space = spaces.Box(low=low, high=high, dtype=np.float32)
        self.horizon = plant.settings.horizon
        self.control_names = plant.spec.control_names
        # Python-float copies for the per-step hot path (see Plant.reward_scalar).
        self._lower = plant.lower.tolist()
        self._upper = plant.upper.tolist()
        self._inv_steps = (1.0 / plant.steps).tolist()
        self._start_cycle = self._resolve_start_rows(self.config.start_rows)
        self._next_start = 0
        self._temperature = 0.0
        self._controls: list[float] = plant.rows.controls[plant.start_indices[0]].tolist()
        self._offset = 0.0
        self._disturbance = 0.0
        self._t = 0
        self._start_row: int | None = None
        self._lagging = plant.lagging
        self._ends_on_hold = plant.ends_on_hold
        self._shaped = plant.progress_weight > 0.0
        self._potential = 0.0  # the progress term's Phi of the current state
        fit = plant.observer_fit if plant.starts_with_offsets else None
        self._offsets_from_log = None if fit is None else fit.row_disturbance
        self._dead_time = plant.dead_time
        self._pending: list[list[float]] = []
        """With dead time: the settings in flight, oldest first (the newest is current)."""
        self._settle = 0.0
        """Lagging plants: the steady state of the current settings (with the offset)."""

    # ------------------------------------------------------------------ helpers
    def _resolve_start_rows(self, rows: list[int] | None) -> np.ndarray | None:
        if rows is None:
            return None
        if not rows:
            raise ValueError("start_rows must not be empty")
        return np.array([self._row_index(r) for r in rows], dtype=np.intp)

    def _row_index(self, csv_row: int) -> int:
        """Data index of CSV data row ``csv_row`` (0-based, header excluded)."""
        data = self.plant.rows
        position = int(np.searchsorted(data.row_numbers, csv_row))
        if position >= len(data.row_numbers) or data.row_numbers[position] != csv_row:
            raise ValueError(f"CSV row {csv_row} was dropped (missing values) or does not exist")
        starts = self.plant.start_indices
        if not np.isin(position, starts):
            if self.plant.identified is not None:
                raise ValueError(
                    f"CSV row {csv_row} cannot start an episode: it needs "
                    f"{max(self._dead_time, 1)} earlier row(s) of its segment, within the bounds"
                )
            raise ValueError(f"CSV row {csv_row} lies outside the control bounds")
        return position

    def _controls_from(self, controls: Any) -> np.ndarray:
        if isinstance(controls, Mapping):
            missing = [n for n in self.control_names if n not in controls]
            unknown = [n for n in controls if n not in self.control_names]
            if missing or unknown:
                raise ValueError(f"controls: missing {missing}, unknown {unknown}")
            controls = [controls[n] for n in self.control_names]
        array = np.asarray(controls, dtype=np.float64).reshape(-1)
        if array.shape != (self.plant.n_controls,) or not np.isfinite(array).all():
            raise ValueError(f"controls must be {self.plant.n_controls} finite numbers")
        return np.clip(array, self.plant.lower, self.plant.upper)

    def _get_obs(self) -> np.ndarray:
        if self._lagging:
            return self.plant.observe_lagging_scalar(
                self._temperature, self._controls, self._settle, self._pending
            )
        return self.plant.observe_scalar(self._temperature, self._controls)

    def _get_info(self) -> dict[str, Any]:
        low, high = self.plant.band
        info = {
            "temperature": self._temperature,
            "in_band": low <= self._temperature <= high,
            "controls": dict(zip(self.control_names, self._controls, strict=True)),
            "step": self._t,
            "start_row": self._start_row,
        }
        if self._dead_time:
            info["in_flight"] = [list(setting) for setting in self._pending]
        return info

    def _pending_from(self, pending: Any) -> list[list[float]]:
        """The settings in flight of ``options["pending"]`` (default: none in flight)."""
        d, k = self._dead_time, self.plant.n_controls
        if pending is None:
            return [list(self._controls) for _ in range(d)]
        array = np.asarray(pending, dtype=np.float64)
        if array.shape != (d, k) or not np.isfinite(array).all():
            raise ValueError(f"pending must be {d} settings of {k} finite numbers, oldest first")
        array = np.clip(array, self.plant.lower, self.plant.upper)
        if d:
            array[-1] = self._controls  # the newest setting in flight is the current one
        return array.tolist()

    def model_uncertainty(self) -> float:
        """Standard deviation of the model ensemble at the current controls.

        Not computed every step (it would halve the step rate); call it when needed.
        """
        return float(self.plant.model.predict_with_std(np.asarray(self._controls))[1])

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        plant = self.plant
        options = options or {}
        logged_offset: float | None = None  # the log's estimated disturbance at the row
        if "temperature" in options or "controls" in options:
            if "temperature" not in options or "controls" not in options:
                raise ValueError("options need both 'temperature' and 'controls'")
            self._controls = self._controls_from(options["controls"]).tolist()
            self._temperature = float(options["temperature"])
            if not np.isfinite(self._temperature):
                raise ValueError("temperature must be a finite number")
            self._pending = self._pending_from(options.get("pending"))
            self._start_row = None
        else:
            if "row" in options:
                index = self._row_index(int(options["row"]))
            elif self._start_cycle is not None:
                index = int(self._start_cycle[self._next_start % len(self._start_cycle)])
                self._next_start += 1
            else:
                starts = plant.start_indices
                index = int(starts[self.np_random.integers(len(starts))])
            self._controls = plant.start_controls(np.array([index]))[0].tolist()
            self._temperature = float(plant.rows.state[index])
            self._pending = plant.start_pending(np.array([index]))[0].tolist()
            self._start_row = int(plant.rows.row_numbers[index])
            if self._offsets_from_log is not None:
                logged_offset = float(self._offsets_from_log[index])
        steady = plant.model.predict_scalar(self._controls)
        self._offset = 0.0 if plant.identified is not None else self._temperature - steady
        if logged_offset is not None:
            self._offset = logged_offset
        self._settle = steady + self._offset
        self._potential = self._progress_potential()
        self._disturbance = 0.0
        self._t = 0
        return self._get_obs(), self._get_info()

    def _progress_potential(self) -> float:
        """``Phi`` of the progress term (``env.progress_shaping``) in the current state:
        of the reading, or on a lagging plant of the settling temperature (a move is paid
        when made, not when its effect arrives)."""
        return self.plant.progress_potential(self._settle if self._lagging else self._temperature)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        # Refuses an action outside the space (ValueError) before anything changes.
        deltas = self.codec.to_delta_scalar(action)
        plant = self.plant
        settings = plant.settings
        new = []
        moved = 0.0
        for u, d, lo, hi, inv in zip(
            self._controls,
            deltas,
            self._lower,
            self._upper,
            self._inv_steps,
            strict=True,
        ):
            v = min(max(u + d, lo), hi)
            moved += abs(v - u) * inv
            new.append(v)
        moved /= len(new)
        noise = 0.0
        if settings.drift_std > 0.0:
            self._disturbance += settings.drift_std * float(self.np_random.standard_normal())
        if settings.noise_std > 0.0:
            noise = settings.noise_std * float(self.np_random.standard_normal())
        if self._lagging:
            temperature = self._lagged_step(new, noise)
        else:
            temperature = plant.next_temperature_scalar(
                self._temperature, new, self._offset, self._disturbance, noise
            )
        self._temperature = temperature
        self._controls = new
        self._t += 1
        std = self.model_uncertainty() if settings.uncertainty_penalty > 0.0 else 0.0
        reward = plant.reward_scalar(temperature, moved, std)
        if self._shaped:
            # potential-based progress term (env.progress_shaping): training only
            potential = self._progress_potential()
            reward += potential - self._potential
            self._potential = potential
        terminated = self._ends_on_hold and self._holds()
        if terminated:
            # what keeping would earn to the horizon, paid now: an episode's return is
            # the same as if it ran on, so holding never loses against passing through
            # the band and out again (on a lagging plant a pass earns 1 a reading
            # without ending the episode)
            # (with env.centre_weight, a held reading's in-band reward where it is)
            reward += plant.in_band_reward(temperature) * (self.horizon - self._t)
        truncated = self._t >= self.horizon and not terminated
        return self._get_obs(), reward, terminated, truncated, self._get_info()

    def _holds(self) -> bool:
        """Whether the current reading holds in the band (:meth:`Plant.holds`)."""
        low, high = self.plant.band
        if not low <= self._temperature <= high:
            return False
        if not self._lagging:
            plant = self.plant
            return plant.hold_margin <= 0.0 or bool(plant.clear_of_edges(self._temperature))
        k = self.plant.n_controls
        return bool(
            self.plant.holds(
                np.array([self._temperature]),
                np.array([self._controls], dtype=np.float64),
                np.array(self._pending, dtype=np.float64).reshape(1, -1, k),
                self._offset + self._disturbance,
            )[0]
        )

    def _lagged_step(self, new: list[float], noise: float) -> float:
        """The next reading of a lagging plant; updates the queue and the settling value."""
        plant = self.plant
        if self._dead_time:
            effective = self._pending.pop(0)
            self._pending.append(new)
            self._settle = plant.model.predict_scalar(new) + self._offset
            steady = plant.model.predict_scalar(effective) + self._offset
        else:
            steady = self._settle = plant.model.predict_scalar(new) + self._offset
        target = steady + self._disturbance
        return self._temperature + plant.rate * (target - self._temperature) + noise

    def render(self) -> str | None:  # type: ignore[override]  # ansi: text, not a frame
        if self.render_mode != "ansi":
            return None
        low, high = self.plant.band
        settings = ", ".join(
            f"{n}={v:.4g}" for n, v in zip(self.control_names, self._controls, strict=True)
        )
        mark = "in band" if self.plant.in_band(self._temperature) else "out of band"
        return (
            f"move {self._t:3d}: {self.plant.spec.state}={self._temperature:.2f} "
            f"[{low:g}, {high:g}] {mark} | {settings}"
        )
