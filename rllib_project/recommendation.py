"""From a reading and the current settings to "move this control, by this much".

Works with any policy that maps observations to actions (a checkpoint or an exported
policy), on the plant's fitted model, without Ray. The answer holds:

* per control: increase / decrease / keep, the amount in physical units, the new setting;
* the predicted temperature path until it is inside the band: a closed-loop roll-out
  of the same policy on the model from this state (noise-free), with the model
  ensemble's standard deviation at every step as its uncertainty;
* ``support``: how far the reading's settings lie from the training rows
  (:mod:`env.support`), and a ``warning`` when they are outside the data, where the
  model and the policy extrapolate. The advice is still given, flagged.

Many readings are advised at once (:func:`advise`): the batch file command and the
server vectorise over readings; a single recommendation is a batch of one.

Inside the band the answer is always "keep all": the point of the band is that nothing
needs doing there. If the policy itself would have moved something, that is reported
(``policy_disagrees``) rather than hidden. Outside it, on a plant without lag, a move
that lands in the band on the model is advised where the policy's would not land
(``env.land_in_one_move``, :meth:`env.plant.Plant.land`), with a note saying so; the
predicted path follows the same rules. On a lagging plant the move rule is "centre"
instead (``env.centre_settling``, :meth:`env.plant.Plant.centre`): where the policy's
settings would settle in the band, or kept settings settle in its margin, the settings
of one move settling nearest the middle.

On a **lagging plant** (rate < 1 or a dead time, :mod:`env.dynamics`) a reading is only
part of the story: the temperature may still be travelling toward the steady state of
settings made earlier. So there:

* "inside the band, hold" applies only when keeping every setting keeps the reading in
  the band on the model (a reading passing through the band on its way out gets the
  policy's advice);
* the predicted path runs until the temperature is in the band *and stays there* (up to
  the horizon): ``moves_to_band`` is the sample from which it stays, as in evaluation;
* when the advice is to keep every setting, the reading is outside the band and keeping
  them brings it into the band and holds it there, the answer is **"keep — already on
  its way"** (``on_its_way``), with the sample it is predicted to arrive at: the right
  moves were made, pushing again would overshoot.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from env.actions import ActionCodec
from env.errors import InputError
from env.plant import Plant
from env.support import DataSupport, Support, SupportBatch


@dataclass(frozen=True)
class ControlAdvice:
    name: str
    direction: str
    """"increase", "decrease" or "keep"."""
    amount: float
    """Size of the change in the control's units (>= 0)."""
    current: float
    new: float
    unit: str = ""


@dataclass(frozen=True)
class PathPoint:
    move: int
    temperature: float
    model_std: float
    in_band: bool
    controls: dict[str, float]


@dataclass(frozen=True)
class Recommendation:
    state: str
    unit: str
    temperature: float
    band: tuple[float, float]
    in_band: bool
    controls: list[ControlAdvice]
    path: list[PathPoint]
    moves_to_band: int | None
    """Predicted moves until the reading is in the band (0 = already in); None if the
    policy does not get there within the horizon on the model."""
    policy: str
    support: Support
    """How far the reading's settings lie from the training rows."""
    warning: str | None = None
    """Set when the reading is outside the data: the advice is extrapolation."""
    notes: list[str] = field(default_factory=list)
    policy_disagrees: bool = False
    on_its_way: bool = False
    """Lagging plant: keep every setting, the temperature is already travelling into the
    band (predicted there after ``moves_to_band`` samples)."""
    disturbance: float = 0.0
    """Lagging plant: how far the plant's steady state lies from the model's, as the
    log's disturbance observer estimated it from the readings up to this one
    (:mod:`env.observer`);
    the advice and its path use the model plus this. 0 without a history."""

    @property
    def keep_all(self) -> bool:
        return all(c.direction == "keep" for c in self.controls)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what ``recommend --json`` prints and the server sends).

        Built field by field: ``dataclasses.asdict`` deep-copies every value and costs
        more than computing the advice when a server answers hundreds per second.
        """
        data = dict(self.__dict__)
        data["band"] = list(self.band)
        data["controls"] = [dict(c.__dict__) for c in self.controls]
        data["path"] = [{**p.__dict__, "controls": dict(p.controls)} for p in self.path]
        data["support"] = dict(self.support.__dict__)
        data["notes"] = list(self.notes)
        data["keep_all"] = self.keep_all
        return data


def parse_state(text: str, plant: Plant) -> tuple[float, np.ndarray]:
    """``"temperature=947.1,fuel_rate=12,..."`` -> (temperature, controls in spec order)."""
    values: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, raw = part.partition("=")
        name = name.strip()
        if not sep:
            raise InputError("--state", f"expected name=value, got {part!r}")
        if name in values:
            raise InputError("--state", f"{name!r} given twice")
        try:
            value = float(raw)
        except ValueError:
            raise InputError("--state", f"{name}: {raw.strip()!r} is not a number") from None
        if not np.isfinite(value):
            raise InputError("--state", f"{name}: value must be finite")
        values[name] = value
    return state_from_mapping(values, plant, "--state")


def state_from_mapping(
    values: Mapping[str, float], plant: Plant, source: str = "state"
) -> tuple[float, np.ndarray]:
    """Split a {column: value} mapping into the state and the controls, checking names."""
    spec = plant.spec
    known = {spec.state, *spec.control_names}
    unknown = [name for name in values if name not in known]
    if unknown:
        raise InputError(
            source,
            f"unknown name(s) {', '.join(unknown)} (expected {spec.state} and "
            f"{', '.join(spec.control_names)})",
        )
    missing = [name for name in (spec.state, *spec.control_names) if name not in values]
    if missing:
        raise InputError(source, f"missing {', '.join(missing)}")
    try:
        temperature = float(values[spec.state])
        controls = np.array([float(values[n]) for n in spec.control_names])
    except (TypeError, ValueError) as exc:
        raise InputError(source, f"values must be numbers ({exc})") from None
    if not np.isfinite(temperature) or not np.isfinite(controls).all():
        raise InputError(source, "values must be finite numbers")
    return temperature, controls


DIRECTION_NAMES = ("decrease", "keep", "increase")
"""Name of direction -1, 0, +1 (index: direction + 1)."""


def _changes(plant: Plant, current: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Direction (-1, 0, +1) and amount (>= 0, physical units) of each control's change."""
    change = new - current
    tiny = 1e-9 * np.maximum(1.0, np.abs(plant.steps))
    direction = np.where(np.abs(change) <= tiny, 0, np.sign(change)).astype(np.int8)
    amount = np.where(direction == 0, 0.0, np.round(np.abs(change), 12))
    return direction, amount


@dataclass(frozen=True, eq=False)
class PathBatch:
    """Predicted closed-loop paths of n readings; row ``i`` uses ``length[i]`` points."""

    temperature: np.ndarray
    """Shape (n, horizon + 1); NaN after a path's end."""
    model_std: np.ndarray
    """Shape (n, horizon + 1): the model ensemble's standard deviation at each point."""
    controls: np.ndarray
    """Shape (n, horizon + 1, k)."""
    length: np.ndarray
    """Shape (n,): points of each path (1 = the reading only)."""
    moves_to_band: np.ndarray
    """Shape (n,): moves until inside the band; -1 = not within the horizon (or not
    rolled out)."""
    rolled_out: bool
    """False when paths were skipped: every path is the reading alone."""


@dataclass(frozen=True, eq=False)
class AdviceBatch:
    """Advice for n readings as arrays: what files and the server compute in one go."""

    plant: Plant
    policy: str
    temperature: np.ndarray
    """Shape (n,): the readings' state."""
    controls: np.ndarray
    """Shape (n, k): the readings' settings as given."""
    clipped: np.ndarray
    """Shape (n, k): the settings inside the model's bounds, where advice starts."""
    new: np.ndarray
    """Shape (n, k): the settings after the advised move."""
    out_of_bounds: np.ndarray
    """Shape (n, k): settings given outside the model's bounds."""
    in_band: np.ndarray
    disagrees: np.ndarray
    """In the band, where the policy would have moved something (we hold instead)."""
    direction: np.ndarray
    """Shape (n, k): -1 decrease, 0 keep, +1 increase."""
    amount: np.ndarray
    """Shape (n, k): size of each change (>= 0, physical units)."""
    path: PathBatch
    support: SupportBatch
    on_its_way: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """Shape (n,): lagging plant, keep all, outside the band but travelling into it."""
    disturbance: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Shape (n,): the disturbance estimate the advice used (see :class:`Recommendation`)."""
    ruled: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """Shape (n,): the advised move is the move rule's, not the policy's
    (:meth:`env.plant.Plant.advice_move`: "land" without lag, "centre" with it)."""

    def __len__(self) -> int:
        return len(self.temperature)

    def notes(self, i: int) -> list[str]:
        plant = self.plant
        notes = []
        outside = self.out_of_bounds[i]
        if outside.any():
            names = [n for n, o in zip(plant.spec.control_names, outside, strict=True) if o]
            notes.append(
                f"{', '.join(names)} outside the model's bounds: treated as at the nearest bound"
            )
        if self.disagrees[i]:
            notes.append("in band: holding every control (the policy would have moved some)")
        elif len(self.ruled) and self.ruled[i]:
            notes.append(
                "these settings settle nearest the band's middle on the model; advised"
                " instead of the policy's"
                if plant.lagging
                else "this move lands in the band on the model; advised instead of the"
                " policy's, which would not"
            )
        elif self.on_its_way[i]:
            notes.append(
                "keep - already on its way: the temperature is still travelling toward the "
                f"band (predicted there from sample {int(self.path.moves_to_band[i])} on)"
            )
        elif not self.in_band[i] and self.path.rolled_out and self.path.moves_to_band[i] < 0:
            notes.append(
                f"the policy does not reach the band within {plant.settings.horizon} moves"
                " on the model"
            )
        return notes

    def moves_to_band(self, i: int) -> int | None:
        moves = int(self.path.moves_to_band[i])
        return None if moves < 0 else moves

    def recommendation(self, i: int) -> Recommendation:
        """The advice for reading ``i`` as a :class:`Recommendation`."""
        plant = self.plant
        names = plant.spec.control_names
        path = self.path
        points = [
            PathPoint(
                move,
                float(path.temperature[i, move]),
                float(path.model_std[i, move]),
                bool(plant.in_band(path.temperature[i, move])),
                dict(zip(names, path.controls[i, move].tolist(), strict=True)),
            )
            for move in range(int(path.length[i]))
        ]
        controls = [
            ControlAdvice(
                control.name,
                DIRECTION_NAMES[int(self.direction[i, j]) + 1],
                float(self.amount[i, j]),
                float(self.clipped[i, j]),
                float(self.new[i, j]),
                control.unit,
            )
            for j, control in enumerate(plant.spec.controls)
        ]
        support = self.support.at(i)
        return Recommendation(
            state=plant.spec.state,
            unit=plant.spec.state_unit,
            temperature=float(self.temperature[i]),
            band=plant.band,
            in_band=bool(self.in_band[i]),
            controls=controls,
            path=points,
            moves_to_band=self.moves_to_band(i),
            policy=self.policy,
            support=support,
            warning=support.warning(),
            notes=self.notes(i),
            policy_disagrees=bool(self.disagrees[i]),
            on_its_way=bool(self.on_its_way[i]),
            disturbance=float(self.disturbance[i]) if len(self.disturbance) else 0.0,
        )


def advise(
    plant: Plant,
    codec: ActionCodec,
    act: Callable[[np.ndarray], np.ndarray],
    support: DataSupport,
    temperature: np.ndarray,
    controls: np.ndarray,
    *,
    policy_name: str = "policy",
    with_path: bool = True,
    pending: np.ndarray | None = None,
    disturbance: np.ndarray | float | None = None,
) -> AdviceBatch:
    """The next move of n readings at once (see module docstring).

    One policy call on all readings gives the first move; the paths are rolled out
    together, one policy call per move for the readings not yet in the band. A
    reading's answer does not depend on which others share its batch, up to float
    rounding (matrix products of another shape may differ in the last bits).

    ``pending``: on a plant with a dead time, the settings in flight of each reading
    (n, dead_time, k), oldest first, the newest being the current settings; default:
    nothing in flight. The observation is built exactly as the environment builds it
    (:meth:`env.plant.Plant.observe`), so a lagging plant's policy sees the settling
    temperature and the moves in flight here too.

    ``disturbance``: on a lagging plant, each reading's estimate of how far the plant
    settles from the model (:mod:`env.observer`, from the readings up to it): a scalar
    for all or one per reading; the observation, the hold and the path use the model
    plus it. Default: 0.
    """
    temperature = np.asarray(temperature, dtype=np.float64).reshape(-1)
    controls = np.asarray(controls, dtype=np.float64).reshape(len(temperature), plant.n_controls)
    clipped = np.clip(controls, plant.lower, plant.upper)
    queue = (
        plant.no_pending(clipped)
        if pending is None
        else np.clip(np.asarray(pending, dtype=np.float64), plant.lower, plant.upper)
    )
    estimate = _per_reading(disturbance, len(temperature), "disturbance")
    offset = plant.offset_for(temperature, clipped) + estimate
    in_band = plant.in_band(temperature)
    obs = plant.observe(temperature, clipped, queue, offset)
    first = plant.apply_delta(clipped, codec.to_delta(act(obs)))
    keep_settles = plant.keep_settles(temperature, clipped, queue, offset)
    hold = in_band & (keep_settles == 0)
    disagrees = hold & ~np.isclose(first, clipped).all(axis=1)
    held = np.where(hold[:, None], clipped, first)
    new = plant.advice_move(temperature, clipped, offset, held)
    ruled = ~np.isclose(new, held).all(axis=1)
    direction, amount = _changes(plant, clipped, new)
    horizon = plant.settings.horizon if with_path else 0
    path = _roll_out(plant, codec, act, (temperature, clipped, queue, offset), new, hold, horizon)
    path = dataclasses.replace(path, rolled_out=with_path)
    on_its_way = ~in_band & (direction == 0).all(axis=1) & (keep_settles > 0)
    return AdviceBatch(
        plant=plant,
        policy=policy_name,
        temperature=temperature,
        controls=controls,
        clipped=clipped,
        new=new,
        out_of_bounds=~np.isclose(clipped, controls),
        in_band=in_band,
        disagrees=disagrees,
        direction=direction,
        amount=amount,
        path=path,
        support=support.measure(controls),
        on_its_way=on_its_way,
        disturbance=estimate,
        ruled=ruled,
    )


def _per_reading(values: np.ndarray | float | None, n: int, name: str) -> np.ndarray:
    """(n,) float copy of a per-reading argument given as None (zeros), a scalar or n values."""
    if values is None:
        return np.zeros(n)
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 1:
        return np.full(n, float(array[0]))
    if array.size != n:
        raise ValueError(f"{name}: {array.size} values for {n} readings")
    return array.copy()


def _display_width(text: str) -> int:
    """Terminal columns of ``text``: CJK characters take two (a name like 燃料流量)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _display_width(text))


def _roll_out(
    plant: Plant,
    codec: ActionCodec,
    act: Callable[[np.ndarray], np.ndarray],
    state: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    first: np.ndarray,
    in_band: np.ndarray,
    horizon: int,
) -> PathBatch:
    """Closed-loop roll-out on the model (noise-free) until each reading is in the band.

    ``state``: temperatures, settings, settings in flight and offsets of the readings.
    The offset (the bias of a reading without time order, measured minus modelled
    temperature; with dynamics identified from a log the observer's disturbance
    estimate, or 0) is carried as a constant, as in the environment. On a lagging
    plant a reading passing through the band has not arrived: the roll-out goes on to
    the horizon and the path ends where the temperature is in the band for good.
    """
    temperature, clipped, queue, offset = state
    n, k = clipped.shape
    temps = np.full((n, horizon + 1), np.nan)
    ctrls = np.full((n, horizon + 1, k), np.nan)
    temps[:, 0], ctrls[:, 0] = temperature, clipped
    length = np.ones(n, dtype=np.int64)
    moves = np.where(in_band, 0, -1)
    current_t, current_u, current_q = temperature.copy(), clipped.copy(), queue.copy()
    active = np.flatnonzero(~in_band)
    for move in range(1, horizon + 1):
        if active.size == 0:
            break
        if move == 1:
            new = first[active]
        else:
            obs = plant.observe(
                current_t[active], current_u[active], current_q[active], offset[active]
            )
            proposed = plant.apply_delta(current_u[active], codec.to_delta(act(obs)))
            new = plant.advice_move(current_t[active], current_u[active], offset[active], proposed)
        reached_t, reached_q = plant.advance(
            current_t[active], current_q[active], new, offset[active]
        )
        current_t[active], current_u[active], current_q[active] = reached_t, new, reached_q
        temps[active, move], ctrls[active, move] = reached_t, new
        length[active] = move + 1
        inside = plant.in_band(reached_t)
        if plant.lagging:
            continue
        moves[active[inside]] = move
        active = active[~inside]
    if plant.lagging and horizon > 0:
        rolled = np.flatnonzero(~in_band)
        inside = plant.in_band(temps[rolled])
        stays = np.logical_and.accumulate(inside[:, ::-1], axis=1)[:, ::-1]
        settled = inside[:, -1]
        arrival = stays.argmax(axis=1)
        moves[rolled] = np.where(settled, arrival, -1)
        length[rolled] = np.where(settled, arrival + 1, horizon + 1)
        for i, end in zip(rolled, length[rolled], strict=True):  # NaN after the path's end
            temps[i, end:], ctrls[i, end:] = np.nan, np.nan
    # the ensemble's spread of every point in one call, not one per move: per request the
    # model's features were computed twice a move (advance, then the spread)
    stds = np.full((n, horizon + 1), np.nan)
    on_path = ~np.isnan(temps)
    stds[on_path] = plant.model.predict_with_std(ctrls[on_path])[1]
    return PathBatch(temps, stds, ctrls, length, moves, rolled_out=True)


@dataclass(frozen=True, eq=False)
class Advisor:
    """A policy ready to give advice: its plant, action mapping and data support."""

    name: str
    plant: Plant
    codec: ActionCodec
    act: Callable[[np.ndarray], np.ndarray]
    support: DataSupport

    def advise(
        self,
        temperature: np.ndarray,
        controls: np.ndarray,
        *,
        with_path: bool = True,
        pending: np.ndarray | None = None,
        disturbance: np.ndarray | float | None = None,
    ) -> AdviceBatch:
        """Advice for n readings at once (see :func:`advise`)."""
        return advise(
            self.plant,
            self.codec,
            self.act,
            self.support,
            temperature,
            controls,
            policy_name=self.name,
            with_path=with_path,
            pending=pending,
            disturbance=disturbance,
        )

    def advise_with_histories(
        self,
        temperature: np.ndarray,
        controls: np.ndarray,
        histories: Sequence[np.ndarray | None],
        *,
        with_path: bool = True,
    ) -> AdviceBatch:
        """Advice for n readings, each with its history or None: (m, 1 + k) earlier
        readings, oldest first (state, then the settings then in force). On a lagging
        plant a history gives the reading's settings in flight and disturbance estimate
        (:meth:`env.plant.Plant.from_history`); without one, nothing is in flight and
        the estimate is 0, as for a lone reading (also where absurd readings overflow the
        filter). On a plant without lag it changes nothing."""
        plant = self.plant
        if len(histories) != len(np.atleast_1d(temperature)):
            raise ValueError(
                f"{len(histories)} histories for {len(np.atleast_1d(temperature))} readings"
            )
        if not plant.lagging or all(h is None for h in histories):
            return self.advise(temperature, controls, with_path=with_path)
        temperature = np.asarray(temperature, dtype=np.float64).reshape(-1)
        controls = np.asarray(controls, dtype=np.float64).reshape(len(temperature), -1)
        pending = plant.no_pending(np.clip(controls, plant.lower, plant.upper))
        disturbance = np.zeros(len(temperature))
        for i, history in enumerate(histories):
            if history is None:
                continue
            estimate = plant.from_history(
                np.append(history[:, 0], temperature[i]), np.vstack([history[:, 1:], controls[i]])
            )
            pending[i] = estimate.pending
            # absurd readings (e.g. +-1e308) can overflow the filter: no estimate then
            finite = np.isfinite(estimate.disturbance)
            disturbance[i] = estimate.disturbance if finite else 0.0
        return self.advise(
            temperature, controls, with_path=with_path, pending=pending, disturbance=disturbance
        )

    def recommend(
        self,
        temperature: float,
        controls: np.ndarray,
        pending: np.ndarray | None = None,
        disturbance: float = 0.0,
    ) -> Recommendation:
        """Advice for one reading (``pending``: its settings in flight, (dead_time, k);
        ``disturbance``: the observer's estimate up to it, see :func:`advise`)."""
        queue = None if pending is None else np.asarray(pending)[None]
        advice = self.advise(
            np.array([temperature]),
            np.asarray(controls)[None],
            pending=queue,
            disturbance=np.array([disturbance], dtype=np.float64),
        )
        return advice.recommendation(0)

    def recommend_state(self, state: Mapping[str, float]) -> Recommendation:
        """Advice for one reading given as ``{column name: value}``."""
        return self.recommend(*state_from_mapping(state, self.plant))


def format_recommendation(rec: Recommendation) -> str:
    """Human-readable form, for the terminal."""
    unit = f" {rec.unit}" if rec.unit else ""
    low, high = rec.band
    where = "inside" if rec.in_band else ("below" if rec.temperature < low else "above")
    lines = [
        f"{rec.state} {rec.temperature:.2f}{unit} is {where} the band [{low:g}, {high:g}]"
        f"  (policy: {rec.policy})",
    ]
    if rec.disturbance:
        side = "above" if rec.disturbance > 0 else "below"
        lines.append(
            f"the readings up to it put the plant's steady state {abs(rec.disturbance):.2f}"
            f"{unit} {side} the model's (disturbance observer): the advice allows for it"
        )
    if rec.on_its_way:
        lines.append(
            "recommendation: keep - already on its way (predicted in the band from sample "
            f"{rec.moves_to_band} on)"
        )
    elif rec.keep_all:
        lines.append("recommendation: keep all controls as they are")
    else:
        lines.append("recommendation:")
    width = max(_display_width(c.name) for c in rec.controls)
    for c in rec.controls:
        cunit = f" {c.unit}" if c.unit else ""
        if c.direction == "keep":
            lines.append(f"  {_pad(c.name, width)}  keep      at {c.current:.6g}{cunit}")
        else:
            lines.append(
                f"  {_pad(c.name, width)}  {c.direction:<8}  by {c.amount:.6g}{cunit}"
                f"  ({c.current:.6g} -> {c.new:.6g})"
            )
    if len(rec.path) > 1:
        lines.append("predicted path (model, closed loop, +/- ensemble std):")
        for point in rec.path:
            mark = "in band" if point.in_band else ""
            lines.append(
                f"  move {point.move:>2}: {point.temperature:8.2f} +/- {point.model_std:.2f}{unit}"
                f"  {mark}"
            )
    if rec.moves_to_band:
        lines.append(f"predicted to reach the band in {rec.moves_to_band} move(s)")
    support = rec.support
    lines.append(
        f"data support: {support.distance:.3g} standard units from the nearest training rows"
        f" ({'inside' if support.inside else 'outside'}: limit {support.threshold:.3g});"
        f" closest CSV row {support.nearest_row}"
    )
    if rec.warning:
        lines.append(f"WARNING: {rec.warning}")
    lines.extend(f"note: {note}" for note in rec.notes)
    return "\n".join(lines)
