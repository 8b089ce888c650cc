"""The simulated plant: dataset spec + fitted model + dynamics, shared by everything.

One object holds the physics so that the Gymnasium environment, the vectorised
evaluation, the planner, the baselines and the recommendations all step the *same*
world. Every method works on a single state or on a batch (leading axes), which is
what lets evaluation roll out hundreds of start rows at once.

Dynamics of one move (defaults in brackets, see :class:`env.spec.EnvSettings`)::

    u'     = clip(u + delta, lower, upper)
    e      = u' (no dead time) | oldest setting in flight, u' joins the queue
    T_ss   = f(e) + offset + d             # f: fitted model; offset: see below
    T'     = T + r (T_ss - T) + noise      # r: rate [1: no lag], noise [0]
    d'     = d + drift                     # slow random-walk disturbance [0]

The rate ``r`` and the dead time are the ones identified from a time-ordered log when
the model carries them (:mod:`env.dynamics`); otherwise ``r`` is the spec's hand-set
``env.response_rate`` and there is no dead time. With a dead time of ``D`` samples the
state holds the ``D`` settings in flight: a move shows no effect for ``D`` moves, then
the lag.

``offset``: for rows without time order, the start row's residual, measured minus
modelled temperature. It is carried unchanged through the episode as an unmeasured
disturbance (the usual bias model of model-predictive control), so "keep" at the start
reproduces the measured reading instead of jumping to the model's value. With
identified dynamics a row is not a steady state (the temperature is on its way), so
its residual says nothing about a bias: the offset is 0 and the fitted intercept is
the mean bias.

Start states: a row without time order starts as it is (its reading and settings).
A row ``r`` of a log with identified dynamics starts where the operator stood when
deciding at ``r``: the reading ``T[r]``, the settings of row ``r - 1`` (in force until
the decision), and the settings of rows ``r - D .. r - 1`` in flight. Row ``r``'s own
settings are the operator's decision, so rows need ``max(D, 1)`` rows of their segment
before them to be start states.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, overload

import numpy as np

from env.actions import ActionCodec
from env.data import PlantData, load_plant_data
from env.errors import InputError
from env.model import ProcessModel, fit_process_model
from env.observer import (
    DisturbanceObserver,
    ObserverFit,
    ObserverState,
    filter_log,
    fit_observer,
)
from env.spec import DatasetSpec, EnvSettings, load_spec

if TYPE_CHECKING:
    from env.model import Dynamics

DEFAULT_SPEC_PATH = Path(__file__).resolve().parent.parent / "data" / "sample_spec.yaml"
OBS_CLIP = 10.0
"""Normalised temperature features are clipped to +/- this (the space's bounds)."""
DRIFT_CENTRE_WEIGHT = 0.5
"""Default ``env.centre_weight`` where the plant drifts from the model (why: EnvSettings)."""
MAX_DEFAULT_HOLD_MARGIN = 0.5
"""The default ``env.hold_margin`` keeps at least the band's middle half as "hold"."""
LANDING_ALL_MOVES_MAX_CONTROLS = 4
"""Up to this many controls the "land" rule tries every move (80 at 4); beyond, the moves
changing at most ``LANDING_MAX_CHANGED`` controls (``env.land_in_one_move``)."""
LANDING_MAX_CHANGED = 2
"""Controls a candidate move of the "land" rule changes at most, beyond
``LANDING_ALL_MOVES_MAX_CONTROLS`` (``3**k`` moves grow too fast to try per reading)."""
LAGGING_ACTUATION_COST = 0.5
"""Default price of a setting change on a lagging plant (why: ``EnvSettings.actuation_cost``)."""
ACTUATION_TOLERANCE = 1e-9
"""Mean |move| in steps below which a move changed no setting (round-off)."""
_RANGE_PROBE_POINTS = 20000
FloatOrArray: TypeAlias = "float | np.ndarray"
"""A single value or a batch: the physics works on both (see the module docstring)."""


@dataclass(frozen=True)
class HistoryEstimate:
    """A reading's state beyond the reading itself, from its history
    (:meth:`Plant.from_history`)."""

    disturbance: float
    """The observer's estimate of the plant's steady state minus the model's."""
    pending: np.ndarray
    """(dead_time, k) settings in flight, oldest first, the newest the current ones."""


@dataclass(frozen=True)
class StreamState:
    """Where :meth:`Plant.stream_estimates` stands after a chunk of a time-ordered file:
    what the next chunk continues from."""

    recent: np.ndarray
    """(j, k), j <= dead_time: the newest settings in force since the last restart."""
    samples: int
    """Samples since the last restart (0: the next reading starts afresh)."""
    temperature: float
    disturbance: float


STREAM_START = StreamState(np.zeros((0, 0)), 0, 0.0, 0.0)
"""The state before a file's first reading."""


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

    def __post_init__(self) -> None:
        identified = self.identified
        if identified is not None and self.settings.response_rate != 1.0:
            raise InputError(
                self.spec.source or "env settings",
                f"env.response_rate {self.settings.response_rate:g} conflicts with the dynamics "
                f"identified from the log (rate {identified.rate:.3g} per sample, dead time "
                f"{identified.dead_time}): they are the plant's; remove response_rate (or set "
                "`dynamics: static` to use a hand-set lag)",
                "env.response_rate",
            )

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
                self.spec.csv,
                "not available: this plant was rebuilt without its CSV rows (an exported "
                "policy carries none: give the experiment or checkpoint instead)",
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

    # ------------------------------------------------------------------ dynamics
    @functools.cached_property
    def identified(self) -> Dynamics | None:
        """The first-order dynamics identified from a log (None: no lag identified)."""
        dynamics = self.model.dynamics
        return dynamics if dynamics is not None and dynamics.identified else None

    @functools.cached_property
    def rate(self) -> float:
        """Fraction of the gap to the steady state closed per move (1: no lag)."""
        identified = self.identified
        return identified.rate if identified is not None else self.settings.response_rate

    @functools.cached_property
    def dead_time(self) -> int:
        """Moves before a change of the settings starts to show."""
        identified = self.identified
        return identified.dead_time if identified is not None else 0

    @property
    def lagging(self) -> bool:
        """True when a move's effect is not all seen at the next reading."""
        return self.rate < 1.0 or self.dead_time > 0

    @property
    def history_informs(self) -> bool:
        """True when earlier readings change the advice (:meth:`from_history`): a dead
        time puts settings in flight, an active observer estimates a disturbance. A plant
        without lag, or with only a hand-set rate, is advised from the reading alone."""
        return self.dead_time > 0 or self.observer_active

    @property
    def observer_active(self) -> bool:
        """Whether advice estimates a disturbance (:attr:`observer` exists and is on)."""
        observer = self.observer
        return observer is not None and observer.active

    @property
    def actuation_cost(self) -> float:
        """Price of a setting change (``env.actuation_cost``, default by lag, see
        :class:`env.spec.EnvSettings`)."""
        cost = self.settings.actuation_cost
        if cost is not None:
            return float(cost)
        return LAGGING_ACTUATION_COST if self.lagging else 0.0

    @property
    def ends_on_hold(self) -> bool:
        """Whether episodes end once the reading holds in the band (``env.end_on_hold``,
        default by lag, see :class:`env.spec.EnvSettings`)."""
        end = self.settings.end_on_hold
        return (not self.lagging) if end is None else bool(end)

    @functools.cached_property
    def centre_weight(self) -> float:
        """Reward's pull to the band's middle (``env.centre_weight``; default by drift,
        see :class:`env.spec.EnvSettings`)."""
        weight = self.settings.centre_weight
        if weight is not None:
            return float(weight)
        return DRIFT_CENTRE_WEIGHT if self._drifts else 0.0

    @functools.cached_property
    def progress_weight(self) -> float:
        """Weight of the training reward's progress term (``env.progress_shaping``,
        see :class:`env.spec.EnvSettings`); 0 where no move changes the temperature."""
        weight = self.settings.progress_shaping
        if weight is None:
            s = self.settings
            weight = s.in_band_reward + s.out_of_band_penalty
        return float(weight) if weight > 0.0 and self.move_reach > 0.0 else 0.0

    @functools.cached_property
    def move_reach(self) -> float:
        """How far one move of whole steps typically shifts the settling temperature:
        the median over the CSV rows of ``sum_i |f(u + s_i e_i) - f(u - s_i e_i)| / 2``
        (each control one step up against one step down, within the bounds), about what
        the best move changes where the model is near-linear over a step. The scale of
        the progress term: its distance in these units approximates the moves still
        needed, whatever the plant's steps and gains."""
        controls = self.rows.controls
        n, k = controls.shape
        eye = np.eye(k) * self.steps
        up = np.clip(controls[:, None, :] + eye, self.lower, self.upper).reshape(n * k, k)
        down = np.clip(controls[:, None, :] - eye, self.lower, self.upper).reshape(n * k, k)
        change = np.abs(self.model.predict(up) - self.model.predict(down)).reshape(n, k)
        return float(np.median(change.sum(axis=1) / 2.0))

    def progress_potential(self, temperature: float) -> float:
        """``Phi`` of the progress term: minus the weighted distance of ``temperature``
        (the reading; on a lagging plant the settling temperature) to the band in units
        of :attr:`move_reach` (0 inside the band, or with the term off)."""
        weight = self.progress_weight
        if weight == 0.0:
            return 0.0
        low, high = self.band
        distance = low - temperature if temperature < low else max(temperature - high, 0.0)
        return -weight * distance / self.move_reach

    @functools.cached_property
    def hold_margin(self) -> float:
        """Fraction of the half-width at each edge where settling does not hold
        (``env.hold_margin``; default from the observer, see :class:`env.spec.EnvSettings`)."""
        margin = self.settings.hold_margin
        if margin is not None:
            return float(margin)
        if not self._drifts:
            return 0.0
        assert self.observer_fit is not None  # _drifts: an active observer's fit
        settle_std = self.observer_fit.settle_std
        return min(MAX_DEFAULT_HOLD_MARGIN, settle_std / (0.5 * self.band_width))

    @property
    def _drifts(self) -> bool:
        """Whether the log's readings show a disturbance the model misses (an active
        observer, :mod:`env.observer`)."""
        fit = self.observer_fit
        return fit is not None and fit.observer.active

    @property
    def starts_with_offsets(self) -> bool:
        """Whether training episodes start with the observer's estimated disturbance at
        their row (``env.observed_offsets``, see :class:`env.spec.EnvSettings`)."""
        return self.settings.observed_offsets and self._drifts

    @property
    def in_flight_features(self) -> int:
        """Observation entries for the settings in flight: the newest in-flight setting
        is the current one, so ``dead_time - 1`` settings of k controls each."""
        return max(self.dead_time - 1, 0) * self.n_controls

    @property
    def observation_size(self) -> int:
        """Length of an observation (see :meth:`observe`)."""
        lagging = 2 + self.in_flight_features if self.lagging else 0
        return 2 + self.n_controls + lagging

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Low and high of every observation entry (the observation space's bounds)."""
        k, lag = self.n_controls, self.in_flight_features
        low = [-OBS_CLIP, -OBS_CLIP, *[-1.0] * k]
        if self.lagging:
            low += [-OBS_CLIP, -OBS_CLIP, *[-OBS_CLIP] * lag]
        array = np.array(low, dtype=np.float32)
        return array, -array

    # ------------------------------------------------------------------ start states
    @functools.cached_property
    def start_indices(self) -> np.ndarray:
        """Indices into the data arrays of rows usable as start states."""
        data = self.rows
        if self.identified is None:
            return np.flatnonzero(data.start_row_mask())
        # the decision at row r starts from row r - 1's settings (see module docstring)
        enough = data.position_in_segment() >= max(self.dead_time, 1)
        inside = data.start_row_mask()
        ok = enough.copy()
        for back in range(1, max(self.dead_time, 1) + 1):
            ok[back:] &= inside[:-back]
        ok[: max(self.dead_time, 1)] = False
        return np.flatnonzero(ok)

    def start_controls(self, index: np.ndarray) -> np.ndarray:
        """(n, k) settings in force at the start of each data row's episode."""
        index = np.asarray(index, dtype=np.intp)
        shift = 1 if self.identified is not None else 0
        return self.rows.controls[index - shift].copy()

    def start_pending(self, index: np.ndarray) -> np.ndarray:
        """(n, dead_time, k) settings in flight at each row's start, oldest first (the
        newest is the current setting)."""
        index = np.asarray(index, dtype=np.intp)
        d = self.dead_time
        controls = self.rows.controls
        if d == 0:
            return np.zeros((len(index), 0, self.n_controls))
        return np.stack([controls[index - d + j] for j in range(d)], axis=1)

    @functools.cached_property
    def observer_fit(self) -> ObserverFit | None:
        """The disturbance observer chosen on the log and its estimate at every row
        (:mod:`env.observer`); None for a plant without identified lag, or rebuilt
        without its rows (an export records what the observer decided instead)."""
        if self.identified is None or not self.lagging or self.data is None:
            return None
        rows = self.rows
        assert rows.segment is not None  # identified dynamics come from a time-ordered log
        moved_from = self.dead_time + 1  # row i's move was driven by row i - 1 - dead_time
        usable = rows.position_in_segment() >= moved_from
        effective = np.full(len(rows.state), np.nan)
        index = np.flatnonzero(usable)
        effective[index] = self.model.predict(rows.controls[index - moved_from])
        chosen = self.settings.observer_ratio
        return fit_observer(self.rate, rows.state, effective, rows.segment, usable, chosen=chosen)

    @functools.cached_property
    def observer(self) -> DisturbanceObserver | None:
        """The disturbance observer advice uses: the one chosen on the log, or without
        rows (an export) the one of the recorded ``env.observer_ratio``; None for a plant
        without identified lag or an export that recorded none."""
        if self.identified is None or not self.lagging:
            return None
        fit = self.observer_fit
        if fit is not None:
            return fit.observer
        ratio = self.settings.observer_ratio
        return None if ratio is None else DisturbanceObserver.with_ratio(self.rate, ratio)

    def from_history(self, temperatures: np.ndarray, controls: np.ndarray) -> HistoryEstimate:
        """What a reading's recent history says, as the log says it at a start row.

        ``temperatures`` (m,) and ``controls`` (m, k): consecutive samples, oldest first,
        one sample period apart, ending with the current reading and the settings in
        force now. The settings in flight are the last ``dead_time`` settings (before
        the history, the oldest given are taken as in force); the disturbance is the
        observer's estimate after filtering the readings (0 without an active one),
        each reading's move driven by the settings ``dead_time`` samples before it, as
        in :attr:`observer_fit`."""
        temperatures = np.asarray(temperatures, dtype=np.float64).reshape(-1)
        restart = np.zeros(len(temperatures), dtype=bool)
        restart[:1] = True
        # the last reading of a stream that starts at the history's first
        disturbance, pending, _ = self.stream_estimates(temperatures, controls, restart)
        return HistoryEstimate(float(disturbance[-1]), pending[-1])

    def start_observer(self, index: np.ndarray) -> ObserverState:
        """The observer's estimates at data rows (after each row's reading): what the
        log before a start row says about the disturbance there."""
        fit = self.observer_fit
        index = np.asarray(index, dtype=np.intp)
        if fit is None:
            return ObserverState(self.rows.state[index].copy(), np.zeros(len(index)))
        return ObserverState(fit.row_temperature[index].copy(), fit.row_disturbance[index].copy())

    def no_pending(self, controls: np.ndarray) -> np.ndarray:
        """(n, dead_time, k) "nothing in flight": every queued setting is ``controls``."""
        controls = np.asarray(controls, dtype=np.float64).reshape(-1, self.n_controls)
        return np.repeat(controls[:, None, :], self.dead_time, axis=1)

    def stream_estimates(
        self,
        temperatures: np.ndarray,
        controls: np.ndarray,
        restart: np.ndarray,
        state: StreamState = STREAM_START,
    ) -> tuple[np.ndarray, np.ndarray, StreamState]:
        """:meth:`from_history` for every reading of a time-ordered stream at once: each
        reading's history is the readings before it since the last restart.

        ``temperatures`` (n,), ``controls`` (n, k): consecutive samples (settings in
        force); ``restart`` (n,): where the history breaks (a gap, a bad row), that
        reading starts afresh; ``state``: where the previous chunk ended. Returns each
        reading's disturbance estimate (n,), its settings in flight (n, dead_time, k) and
        the state to continue from. :meth:`from_history` is its last reading of a stream
        from the history's start; a file streams in one pass at the rate of its advice
        (a test holds chunked streams with restarts to fresh ones)."""
        temperatures = np.asarray(temperatures, dtype=np.float64).reshape(-1)
        n, d, k = len(temperatures), self.dead_time, self.n_controls
        # as logged for the filter (as observer_fit), clipped only in flight
        clipped = np.asarray(controls, dtype=np.float64).reshape(n, k)
        restart = np.asarray(restart, dtype=bool).reshape(n)
        recent = state.recent.reshape(-1, k)[-d:] if d and state.samples else np.zeros((0, k))
        joined = np.concatenate([recent, clipped])  # reading i is joined[len(recent) + i]
        since = np.empty(n, dtype=np.int64)  # samples of the run before reading i
        count = state.samples
        for i, fresh in enumerate(restart.tolist()):
            count = 0 if fresh else count
            since[i] = count
            count += 1
        position = len(recent) + np.arange(n)
        # settings in flight: the run's last d settings, the oldest repeated before it
        back = np.arange(d - 1, -1, -1)  # oldest first
        source = position[:, None] - np.minimum(back[None, :], since[:, None])
        pending = np.clip(joined[source], self.lower, self.upper) if d else np.zeros((n, 0, k))
        disturbance = np.zeros(n)
        observer = self.observer
        temperature, estimate = state.temperature, state.disturbance
        if observer is None or not observer.active:
            temperature, estimate = float(temperatures[-1]) if n else temperature, 0.0
        else:
            usable = since >= max(d, 1)
            steady = np.full(n, np.nan)
            index = np.flatnonzero(usable)
            steady[index] = self.model.predict(joined[position[index] - d])
            t_hat, disturbance = filter_log(
                observer,
                temperatures,
                steady,
                np.cumsum(restart),
                usable,
                start=(state.temperature, state.disturbance),
            )
            temperature, estimate = float(t_hat[-1]), float(disturbance[-1])
        tail = joined[max(len(joined) - d, 0) :] if n else recent
        return (
            disturbance,
            pending,
            StreamState(tail.copy(), int(count) if n else state.samples, temperature, estimate),
        )

    @functools.cached_property
    def row_offsets(self) -> np.ndarray:
        """Offset of every data row (see the module docstring)."""
        return self.offset_for(self.rows.state, self.rows.controls)

    def codec(self, action_mode: str) -> ActionCodec:
        """How actions of ``action_mode`` move this plant's controls."""
        return ActionCodec(action_mode, self.steps, self.settings.continuous_deadband)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ physics
    def offset_for(self, temperature: FloatOrArray, controls: np.ndarray) -> np.ndarray:
        """Constant offset of an episode from this state (0 with identified dynamics)."""
        temperature = np.asarray(temperature, dtype=np.float64)
        if self.identified is not None:
            return np.zeros_like(temperature)
        return temperature - self.model.predict(controls)

    def advance(
        self,
        temperature: np.ndarray,
        pending: np.ndarray,
        new_controls: np.ndarray,
        offset: FloatOrArray,
        disturbance: np.ndarray | float = 0.0,
        noise: np.ndarray | float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One move of a batch: the next readings and the settings in flight after it.

        ``pending`` (..., dead_time, k): settings in flight, oldest first; the oldest
        drives this move, ``new_controls`` joins the queue. Without dead time the new
        settings drive the move themselves.
        """
        if self.dead_time:
            effective = pending[..., 0, :]
            pending = np.concatenate([pending[..., 1:, :], new_controls[..., None, :]], axis=-2)
        else:
            effective = new_controls
        return (
            self.next_temperature(temperature, effective, offset, disturbance, noise),
            pending,
        )

    def keep_settles(
        self, temperature: np.ndarray, controls: np.ndarray, pending: np.ndarray, offset: Any
    ) -> np.ndarray:
        """Shape (n,): the move from which the temperature stays in the band if every
        setting is kept (0: in the band now and staying), -1 if it is not in the band at
        the horizon's end (on the model, noise-free). On a static plant a reading in the
        band stays there (0), any other is -1 at once. What the advice's "inside the
        band, hold" and "keep, already on its way" rest on.

        With ``env.hold_margin`` > 0 a temperature that settles in the band's outer
        margin (within ``hold_margin`` half-widths of an edge) counts as not settling
        (-1): the policy is asked instead of holding."""
        if not self.lagging:
            return np.where(self.in_hold_zone(temperature), 0, -1)
        temps = [temperature]
        current = temperature
        for _ in range(self.settings.horizon):
            current, pending = self.advance(current, pending, controls, offset)
            temps.append(current)
        inside = self.in_band(np.stack(temps, axis=1))
        stays = np.logical_and.accumulate(inside[:, ::-1], axis=1)[:, ::-1]
        settled = inside[:, -1] & self.clear_of_edges(current)
        return np.where(settled, stays.argmax(axis=1), -1)

    @functools.cached_property
    def landing_directions(self) -> np.ndarray:
        """(m, k) moves (-1, 0, +1 steps per control, none all 0) the "land" rule tries."""
        k = self.n_controls
        grid = np.stack(np.meshgrid(*[(-1, 0, 1)] * k, indexing="ij"), axis=-1).reshape(-1, k)
        changed = np.abs(grid).sum(axis=1)
        limit = k if k <= LANDING_ALL_MOVES_MAX_CONTROLS else LANDING_MAX_CHANGED
        return grid[(changed > 0) & (changed <= limit)].astype(np.int8)

    def land(
        self, temperature: np.ndarray, controls: np.ndarray, offset: Any, proposed: np.ndarray
    ) -> np.ndarray:
        """(n, k) settings after the advice's "land" rule (``env.land_in_one_move``):
        where the reading is outside the band, ``proposed`` (the policy's new settings)
        does not bring it in on the model and one of :attr:`landing_directions` does,
        that move's settings (the one landing nearest the band's middle); elsewhere
        ``proposed``. Unchanged on a lagging plant or with the rule off."""
        if not self.lands_in_one_move:
            return proposed
        offsets = np.broadcast_to(np.asarray(offset, dtype=np.float64), temperature.shape)
        reached = self.model.predict(proposed) + offsets
        rows = np.flatnonzero(~self.in_band(temperature) & ~self.in_hold_zone(reached))
        if rows.size == 0:
            return proposed
        candidates, temps = self._one_move_settlings(
            controls[rows], offsets[rows], self.landing_directions
        )
        lands = self.in_hold_zone(temps)
        found = lands.any(axis=1)
        if not found.any():
            return proposed
        best = np.argmin(np.where(lands, np.abs(temps - self.band_mid), np.inf), axis=1)
        result = proposed.copy()
        landed = rows[found]
        result[landed] = candidates[found, best[found]]
        return result

    def centre(self, controls: np.ndarray, offset: Any, proposed: np.ndarray) -> np.ndarray:
        """(n, k) settings after the advice's "centre" rule (``env.centre_settling``):
        on a lagging plant, where the policy's settings ``proposed`` would settle in the
        band on the model (offsets included: with a log, the observer's estimate), or
        where the policy keeps settings that settle in the band's margin, the move of
        whole steps (of :attr:`landing_directions`, or keeping) whose settings settle
        nearest the band's middle, when that is nearer; elsewhere ``proposed``. It only
        chooses among moves of one actuation each, so it never adds one where the
        policy moves. Unchanged without lag or with the rule off."""
        if not self.centres_settling:
            return proposed
        offsets = np.broadcast_to(np.asarray(offset, dtype=np.float64), (len(controls),))
        moved = np.any(np.abs(proposed - controls) > ACTUATION_TOLERANCE, axis=1)
        settled = self.model.predict(proposed) + offsets
        in_band = self.in_band(settled)
        rows = np.flatnonzero(in_band & (moved | ~self.clear_of_edges(settled)))
        if rows.size == 0:
            return proposed
        keep = np.zeros((1, self.n_controls), dtype=np.int8)
        directions = np.vstack([keep, self.landing_directions])
        candidates, temps = self._one_move_settlings(controls[rows], offsets[rows], directions)
        distance = np.abs(temps - self.band_mid)
        best = np.argmin(distance, axis=1)
        nearer = distance[np.arange(rows.size), best] < np.abs(settled[rows] - self.band_mid)
        result = proposed.copy()
        result[rows[nearer]] = candidates[nearer, best[nearer]]
        return result

    def _one_move_settlings(
        self, controls: np.ndarray, offsets: np.ndarray, directions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The move rules' candidates: (r, m, k) settings after each of ``directions``
        (m, k) from each of ``controls`` (r, k), and (r, m) their settling temperatures
        on the model plus each row's offset."""
        candidates = self.apply_delta(controls[:, None, :], (directions * self.steps)[None])
        flat = candidates.reshape(-1, self.n_controls)
        temps = self.model.predict(flat).reshape(len(controls), -1) + offsets[:, None]
        return candidates, temps

    def advice_move(
        self, temperature: np.ndarray, controls: np.ndarray, offset: Any, proposed: np.ndarray
    ) -> np.ndarray:
        """(n, k) settings after the advice's move rule for this plant: "land" without
        lag (:meth:`land`), "centre" with it (:meth:`centre`); ``proposed`` where neither
        applies."""
        if self.lagging:
            return self.centre(controls, offset, proposed)
        return self.land(temperature, controls, offset, proposed)

    @property
    def has_advice_move_rule(self) -> bool:
        """Whether :meth:`advice_move` can change a policy's move on this plant."""
        return self.lands_in_one_move or self.centres_settling

    @property
    def centres_settling(self) -> bool:
        """Whether the advice's "centre" rule applies here (on, and a lagging plant)."""
        return self.settings.centre_settling and self.lagging

    @property
    def lands_in_one_move(self) -> bool:
        """Whether the advice's "land" rule applies here (on, and no lag)."""
        return self.settings.land_in_one_move and not self.lagging

    def in_hold_zone(self, temperature: np.ndarray) -> np.ndarray:
        """Whether a settled temperature holds: in the band and clear of its margin
        (``env.hold_margin``); on a plant without lag, the advice's "hold" itself."""
        return self.in_band(temperature) & self.clear_of_edges(temperature)

    def clear_of_edges(self, temperature: FloatOrArray) -> np.ndarray:
        """Whether ``temperature`` lies outside the band's margin (``env.hold_margin``)."""
        margin = self.hold_margin
        if margin <= 0.0:
            return np.ones(np.shape(temperature), dtype=bool)
        half = 0.5 * self.band_width
        return np.abs(np.asarray(temperature) - self.band_mid) <= (1.0 - margin) * half

    def holds(
        self, temperature: np.ndarray, controls: np.ndarray, pending: np.ndarray, offset: Any
    ) -> np.ndarray:
        """Shape (n,): the readings at which the advice is "inside the band, hold": in
        the band, and staying there when nothing is touched (on a lagging plant a
        reading passing through the band on its way out does not hold; with
        ``env.hold_margin`` one in the band's outer margin does not, as in
        :meth:`keep_settles`)."""
        if not self.lagging:
            return self.in_hold_zone(temperature)
        inside = self.in_band(temperature)
        if not inside.any():
            return inside
        rows = np.flatnonzero(inside)  # only these can hold: simulate only them
        offsets = np.broadcast_to(np.asarray(offset, dtype=np.float64), temperature.shape)
        settles = self.keep_settles(temperature[rows], controls[rows], pending[rows], offsets[rows])
        holds = np.zeros_like(inside)
        holds[rows] = settles == 0
        return holds

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
        """First-order lag towards ``steady`` (rate 1: no lag), plus noise."""
        rate = self.rate
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

    @overload
    def in_band_reward(self, temperature: float) -> float: ...
    @overload
    def in_band_reward(self, temperature: np.ndarray) -> np.ndarray: ...
    def in_band_reward(self, temperature: FloatOrArray) -> float | np.ndarray:
        """Reward of a reading inside the band: ``in_band_reward``, less the pull to the
        band's middle (``env.centre_weight``) times the squared offset from it in
        half-widths."""
        weight = self.centre_weight
        if weight <= 0.0:
            return self.settings.in_band_reward
        off_centre = (temperature - self.band_mid) / (0.5 * self.band_width)
        return self.settings.in_band_reward - weight * off_centre * off_centre

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
        reward = np.where(distance == 0.0, self.in_band_reward(temperature), outside)
        moved = np.abs(moved_steps).mean(axis=-1)
        reward = reward - s.move_cost * moved
        cost = self.actuation_cost
        if cost > 0.0:
            reward = reward - cost * (moved > ACTUATION_TOLERANCE)
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
            reward = self.in_band_reward(temperature)
        else:
            distance = (low - temperature if temperature < low else temperature - high) / (
                self.band_width
            )
            reward = -(s.out_of_band_penalty + s.distance_weight * min(distance, s.distance_cap))
        reward -= s.move_cost * mean_moved_steps
        if mean_moved_steps > ACTUATION_TOLERANCE:
            reward -= self.actuation_cost
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

    def observe_lagging_scalar(
        self, temperature: float, controls: list[float], settle: float, pending: list[list[float]]
    ) -> np.ndarray:
        """Python-float twin of :meth:`observe` for a lagging plant (the env's path).

        ``settle``: the steady state of ``controls`` with the episode's offset.
        """
        low, high, mid, inv_scale, inv_width = self._observe_constants[:5]
        values = self.observe_scalar(temperature, controls).tolist()
        temp = (settle - mid) * inv_scale
        gap = (settle - low if settle < low else max(settle - high, 0.0)) * inv_width
        values.append(-OBS_CLIP if temp < -OBS_CLIP else OBS_CLIP if temp > OBS_CLIP else temp)
        values.append(-OBS_CLIP if gap < -OBS_CLIP else OBS_CLIP if gap > OBS_CLIP else gap)
        inv_steps = self._inv_steps_list
        for queued in pending[:-1]:  # the newest queued setting is the current one
            for u, q, inv in zip(controls, queued, inv_steps, strict=True):
                move = (u - q) * inv
                values.append(
                    -OBS_CLIP if move < -OBS_CLIP else OBS_CLIP if move > OBS_CLIP else move
                )
        return np.array(values, dtype=np.float32)

    @functools.cached_property
    def _inv_steps_list(self) -> list[float]:
        return (1.0 / self.steps).tolist()

    def observe(
        self,
        temperature: FloatOrArray,
        controls: np.ndarray,
        pending: np.ndarray | None = None,
        offset: FloatOrArray | None = None,
    ) -> np.ndarray:
        """Observation vector(s), all normalised (see :attr:`observation_size`):

        * temperature: (T - band centre) / scale, clipped to +/- OBS_CLIP;
        * band gap: signed distance to the band in band widths (0 inside), clipped;
        * controls: mapped from [lower, upper] to [-1, 1];

        and for a lagging plant (rate < 1 or a dead time), what a policy needs to tell
        "keep, it is already on its way" from "move":

        * settling temperature: the steady state of the current settings (with the
          episode's ``offset``; default: the offset of a start at this state),
          normalised as the temperature, and its signed gap to the band;
        * settings in flight (dead time > 1): for each queued setting but the newest
          (which is the current one), current minus queued, in steps, clipped:
          the part of the moves made that the process has not seen yet.

        ``pending`` (..., dead_time, k): the settings in flight, oldest first (default:
        nothing in flight, every queued setting equal to ``controls``).
        """
        temperature = np.asarray(temperature, dtype=np.float64)
        controls = np.asarray(controls, dtype=np.float64)
        parts = [
            self._normalised(temperature)[..., None],
            self._gap(temperature)[..., None],
            np.clip(2.0 * (controls - self.lower) / (self.upper - self.lower) - 1.0, -1.0, 1.0),
        ]
        if self.lagging:
            if offset is None:
                offset = self.offset_for(temperature, controls)
            settle = self.model.predict(controls) + offset
            parts += [self._normalised(settle)[..., None], self._gap(settle)[..., None]]
            if self.dead_time > 1:
                queued = (
                    np.asarray(pending, dtype=np.float64)[..., :-1, :]
                    if pending is not None
                    else None
                )
                moves = (
                    np.zeros((*controls.shape[:-1], self.in_flight_features))
                    if queued is None
                    else ((controls[..., None, :] - queued) / self.steps).reshape(
                        *controls.shape[:-1], -1
                    )
                )
                parts.append(np.clip(moves, -OBS_CLIP, OBS_CLIP))
        return np.concatenate(parts, axis=-1).astype(np.float32)

    def settle_seen(self, obs: np.ndarray) -> np.ndarray:
        """The settling temperature a lagging plant's observation shows (the model's
        steady state plus the offset or the observer's estimate), back in physical
        units: the inverse of its feature in :meth:`observe` (exact unless clipped)."""
        return self.band_mid + np.asarray(obs, np.float64)[..., 2 + self.n_controls] * (
            self.temperature_scale
        )

    def _normalised(self, temperature: np.ndarray) -> np.ndarray:
        return np.clip((temperature - self.band_mid) / self.temperature_scale, -OBS_CLIP, OBS_CLIP)

    def _gap(self, temperature: np.ndarray) -> np.ndarray:
        return np.clip(self.distance_to_band(temperature) / self.band_width, -OBS_CLIP, OBS_CLIP)

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
        if not len(self.start_indices):
            raise InputError(
                self.spec.csv_path,
                "no row can start an episode (each needs its settings within the bounds"
                + (
                    f" and, with dead time {self.dead_time}, {max(self.dead_time, 1)} earlier "
                    "rows of its segment)"
                    if self.identified is not None
                    else ")"
                ),
            )
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
