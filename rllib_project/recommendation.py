"""From a reading and the current settings to "move this control, by this much".

Works with any policy that maps observations to actions (a checkpoint or an exported
policy), on the plant's fitted model, without Ray. The answer holds:

* per control: increase / decrease / keep, the amount in physical units, the new setting;
* the predicted temperature path until it is inside the band: a closed-loop roll-out
  of the same policy on the model from this state (noise-free), with the model
  ensemble's standard deviation at every step as its uncertainty.

Inside the band the answer is always "keep all": the point of the band is that nothing
needs doing there. If the policy itself would have moved something, that is reported
(``policy_disagrees``) rather than hidden.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from env.actions import ActionCodec
from env.errors import InputError
from env.plant import Plant


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
    notes: list[str] = field(default_factory=list)
    policy_disagrees: bool = False

    @property
    def keep_all(self) -> bool:
        return all(c.direction == "keep" for c in self.controls)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
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


def _advice(plant: Plant, current: np.ndarray, new: np.ndarray) -> list[ControlAdvice]:
    advice = []
    for control, before, after in zip(plant.spec.controls, current, new, strict=True):
        change = float(after - before)
        tiny = 1e-9 * max(1.0, abs(control.step))
        direction = "keep" if abs(change) <= tiny else "increase" if change > 0 else "decrease"
        advice.append(
            ControlAdvice(
                control.name,
                direction,
                0.0 if direction == "keep" else round(abs(change), 12),
                float(before),
                float(after),
                control.unit,
            )
        )
    return advice


def recommend(
    plant: Plant,
    codec: ActionCodec,
    act: Callable[[np.ndarray], np.ndarray],
    temperature: float,
    controls: np.ndarray,
    policy_name: str = "policy",
) -> Recommendation:
    """The next move and the predicted path into the band (see module docstring)."""
    notes = []
    clipped = np.clip(controls, plant.lower, plant.upper)
    if not np.allclose(clipped, controls):
        outside = [
            n for n, a, b in zip(plant.spec.control_names, controls, clipped, strict=True) if a != b
        ]
        notes.append(
            f"{', '.join(outside)} outside the model's bounds: treated as at the nearest bound"
        )
    names = plant.spec.control_names
    offset = float(plant.offset_for(temperature, clipped))
    temp, ctrl = float(temperature), clipped.copy()
    in_band_now = bool(plant.in_band(temp))
    path = [
        PathPoint(
            0,
            temp,
            float(plant.model.predict_with_std(ctrl)[1]),
            in_band_now,
            dict(zip(names, ctrl.tolist(), strict=True)),
        )
    ]
    first_new = None
    moves_to_band = 0 if in_band_now else None
    for move in range(1, plant.settings.horizon + 1):
        if moves_to_band is not None:
            break
        action = act(plant.observe(temp, ctrl)[None])[0]
        new = plant.apply_delta(ctrl, codec.to_delta(action))
        if first_new is None:
            first_new = new
        temp = float(plant.next_temperature(temp, new, offset))
        ctrl = new
        inside = bool(plant.in_band(temp))
        path.append(
            PathPoint(
                move,
                temp,
                float(plant.model.predict_with_std(ctrl)[1]),
                inside,
                dict(zip(names, ctrl.tolist(), strict=True)),
            )
        )
        if inside:
            moves_to_band = move
    disagrees = False
    if in_band_now:
        observation = plant.observe(float(temperature), clipped)[None]
        proposed = plant.apply_delta(clipped, codec.to_delta(act(observation)[0]))
        disagrees = not np.allclose(proposed, clipped)
        if disagrees:
            notes.append("in band: holding every control (the policy would have moved some)")
        first_new = clipped
    elif moves_to_band is None:
        notes.append(
            f"the policy does not reach the band within {plant.settings.horizon} moves on the model"
        )
    return Recommendation(
        state=plant.spec.state,
        unit=plant.spec.state_unit,
        temperature=float(temperature),
        band=plant.band,
        in_band=in_band_now,
        controls=_advice(plant, clipped, first_new if first_new is not None else clipped),
        path=path,
        moves_to_band=moves_to_band,
        policy=policy_name,
        notes=notes,
        policy_disagrees=disagrees,
    )


def _display_width(text: str) -> int:
    """Terminal columns of ``text``: CJK characters take two (a name like 燃料流量)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _display_width(text))


def format_recommendation(rec: Recommendation) -> str:
    """Human-readable form, for the terminal."""
    unit = f" {rec.unit}" if rec.unit else ""
    low, high = rec.band
    where = "inside" if rec.in_band else ("below" if rec.temperature < low else "above")
    lines = [
        f"{rec.state} {rec.temperature:.2f}{unit} is {where} the band [{low:g}, {high:g}]"
        f"  (policy: {rec.policy})",
    ]
    if rec.keep_all:
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
    lines.extend(f"note: {note}" for note in rec.notes)
    return "\n".join(lines)
