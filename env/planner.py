"""The optimal planner on the fitted model: the yardstick for every trained policy.

Discrete moves (exact)
    A move shifts every control by -1, 0 or +1 step at once (clipped at its bounds), so
    the controls move *independently and simultaneously*. The fewest moves to a control
    setting ``u*`` is therefore ``max_i d_i(u0_i, u*_i)``, where ``d_i`` is the
    shortest path along control i's own one-dimensional lattice (found by a breadth-first
    search that includes the extra points clipping creates). The planner grows
    ``D = 0, 1, 2, ...`` and evaluates the model on the *shell* of lattice points whose
    largest per-control distance is exactly ``D``; the first ``D`` with a point whose
    predicted temperature is inside the band is the minimum, and no smaller ``D`` can
    work because every point reachable in fewer moves was checked before. Among the
    points at that depth it picks the least total movement, then the reading nearest the
    band centre, and moves every control straight there (front-loaded).

    **Limit**: the enumeration is exact while the lattice ball of radius ``D`` has at
    most ``MAX_LATTICE_POINTS`` (2,000,000) points: radius 18 for 4 controls, 5 for
    6 controls, 3 for 8 controls. Beyond it the planner switches to a beam search
    (width ``BEAM_WIDTH``) and labels its result ``exact=False``.

Continuous moves
    Each control may move any amount up to one step per move, so ``D`` moves reach
    exactly the box ``u0 +/- D * step`` (within bounds). The planner searches that box
    (grid, random points and gradient refinement on the model, then bisection between a
    too-cold and a too-hot point) for a setting in the band, and verifies every plan by
    simulating it through the environment's own dynamics and action dead-band. Lattice
    moves are valid continuous moves, so the result is never worse than the discrete
    optimum; it is labelled ``exact=False`` because a search of a box can miss a narrow
    feasible region.

Both assume the noise-free model. With a first-order lag (``response_rate < 1``)
the control path is planned on steady states and then simulated; the count is that of
the simulation and is labelled ``exact=False``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from env.actions import candidate_directions
from env.plant import Plant

MAX_LATTICE_POINTS = 2_000_000
"""Largest lattice ball the exact discrete planner enumerates at one depth."""
BEAM_WIDTH = 64
"""States kept per depth by the approximate (beam) planner."""
_CONTINUOUS_SAMPLES = 2048


@dataclass(frozen=True)
class Plan:
    """A move sequence from a start state into the band."""

    moves: int | None
    """Moves until the first reading inside the band; None if not within the horizon."""
    deltas: np.ndarray
    """Shape (moves, k): the physical change of each control at each move."""
    controls: np.ndarray
    """Shape (moves + 1, k): settings from the start to the end of the plan."""
    temperatures: np.ndarray
    """Shape (moves + 1,): predicted readings along the plan."""
    exact: bool
    """True when the move count is proven minimal (see the module docstring)."""
    method: str

    @property
    def reachable(self) -> bool:
        return self.moves is not None

    def directions(self, steps: np.ndarray) -> np.ndarray:
        """Per-move directions in {-1, 0, +1} (for discrete action modes)."""
        return np.sign(np.round(self.deltas / steps, 9)).astype(np.int8)


def _simulate(
    plant: Plant,
    controls: np.ndarray,
    temperature: float,
    deltas: np.ndarray,
    max_moves: int,
) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Noise-free roll-out of ``deltas``, then "keep", until the first in-band reading."""
    offset = float(plant.offset_for(temperature, controls))
    path_u, path_t = [controls.copy()], [float(temperature)]
    u, t = controls.copy(), float(temperature)
    if plant.in_band(t):
        return np.array(path_u), np.array(path_t), 0
    for move in range(max_moves):
        delta = deltas[move] if move < len(deltas) else np.zeros_like(u)
        u = plant.apply_delta(u, delta)
        t = float(plant.next_temperature(t, u, offset))
        path_u.append(u.copy())
        path_t.append(t)
        if plant.in_band(t):
            return np.array(path_u), np.array(path_t), move + 1
    return np.array(path_u), np.array(path_t), None


def _finish(
    plant: Plant,
    controls: np.ndarray,
    temperature: float,
    deltas: np.ndarray,
    max_moves: int,
    exact: bool,
    method: str,
) -> Plan:
    path_u, path_t, moves = _simulate(plant, controls, temperature, deltas, max_moves)
    if moves is None:
        return Plan(None, np.zeros((0, plant.n_controls)), path_u[:1], path_t[:1], exact, method)
    deltas = np.diff(path_u[: moves + 1], axis=0)
    lagged = plant.settings.response_rate < 1.0
    return Plan(
        moves, deltas, path_u[: moves + 1], path_t[: moves + 1], exact and not lagged, method
    )


def _unreachable(plant: Plant, controls: np.ndarray, temperature: float, exact: bool) -> Plan:
    return Plan(
        None,
        np.zeros((0, plant.n_controls)),
        controls[None].copy(),
        np.array([temperature]),
        exact,
        "lattice" if exact else "beam (approximate)",
    )


# --------------------------------------------------------------------------- discrete


class _AxisLattice:
    """Breadth-first search along one control's lattice (u0 +/- steps, clipped)."""

    def __init__(self, start: float, low: float, high: float, step: float) -> None:
        self.low, self.high, self.step = low, high, step
        self.values = [start]
        self.dist = [0]
        self.parent = [-1]
        self._keys = {self._key(start): 0}
        self._frontier = [0]
        self.depth = 0

    def _key(self, value: float) -> int:
        return round((value - self.low) / self.step * 1e6)

    def grow(self) -> None:
        """Add the values first reachable in ``depth + 1`` moves."""
        self.depth += 1
        frontier = []
        for index in self._frontier:
            value = self.values[index]
            for candidate in (value - self.step, value + self.step):
                candidate = min(max(candidate, self.low), self.high)
                key = self._key(candidate)
                if key not in self._keys:
                    self._keys[key] = len(self.values)
                    self.values.append(candidate)
                    self.dist.append(self.depth)
                    self.parent.append(index)
                    frontier.append(len(self.values) - 1)
        self._frontier = frontier

    def path(self, index: int) -> list[float]:
        """Values from the start to ``values[index]`` (inclusive)."""
        chain = []
        while index != -1:
            chain.append(self.values[index])
            index = self.parent[index]
        return chain[::-1]


def plan_discrete(
    plant: Plant,
    controls: np.ndarray,
    temperature: float,
    max_moves: int | None = None,
    max_points: int = MAX_LATTICE_POINTS,
) -> Plan:
    """Fewest discrete moves into the band (exact within ``max_points``, see module)."""
    controls = np.asarray(controls, dtype=np.float64)
    max_moves = plant.settings.horizon if max_moves is None else max_moves
    if plant.in_band(temperature):
        return _finish(
            plant, controls, temperature, np.zeros((0, plant.n_controls)), 0, True, "lattice"
        )
    offset = float(plant.offset_for(temperature, controls))
    low, high = plant.band
    axes = [
        _AxisLattice(u, lo, hi, s)
        for u, lo, hi, s in zip(controls, plant.lower, plant.upper, plant.steps, strict=True)
    ]
    for depth in range(1, max_moves + 1):
        for axis in axes:
            axis.grow()
        sizes = [len(axis.values) for axis in axes]
        if int(np.prod(sizes, dtype=np.float64)) > max_points:
            return plan_beam(plant, controls, temperature, max_moves)
        # Points reachable in fewer moves were all checked at earlier depths, so any
        # in-band point of this ball lies on its outer shell: D is the minimum.
        predicted = plant.model.predict_grid([np.asarray(a.values) for a in axes]) + offset
        hit = np.nonzero((predicted >= low) & (predicted <= high))
        if hit[0].size == 0:
            continue
        total_moves = np.sum([np.asarray(a.dist)[hit[i]] for i, a in enumerate(axes)], axis=0)
        gap = np.abs(predicted[hit] - plant.band_mid)
        choice = np.lexsort((gap, total_moves))[0]
        best = [int(h[choice]) for h in hit]
        deltas = np.zeros((depth, plant.n_controls))
        for i, axis in enumerate(axes):
            chain = np.diff(axis.path(best[i]))
            deltas[: len(chain), i] = chain
        return _finish(plant, controls, temperature, deltas, max_moves, True, "lattice")
    return _unreachable(plant, controls, temperature, exact=True)


def plan_beam(
    plant: Plant, controls: np.ndarray, temperature: float, max_moves: int | None = None
) -> Plan:
    """Approximate planner for lattices too large to enumerate: beam search on |gap|."""
    controls = np.asarray(controls, dtype=np.float64)
    max_moves = plant.settings.horizon if max_moves is None else max_moves
    offset = float(plant.offset_for(temperature, controls))
    k = plant.n_controls
    moves = candidate_directions(k).astype(np.float64)
    beam_u = controls[None].copy()
    history = np.zeros((1, 0, k))
    for _ in range(max_moves):
        candidates = plant.apply_delta(beam_u[:, None, :] + 0.0, moves * plant.steps).reshape(-1, k)
        parents = np.repeat(np.arange(len(beam_u)), len(moves))
        candidates, unique = np.unique(np.round(candidates, 9), axis=0, return_index=True)
        parents = parents[unique]
        gap = np.abs(plant.distance_to_band(plant.model.predict(candidates) + offset))
        keep = np.argsort(gap, kind="stable")[:BEAM_WIDTH]
        steps_taken = candidates[keep] - beam_u[parents[keep]]
        history = np.concatenate([history[parents[keep]], steps_taken[:, None, :]], axis=1)
        beam_u = candidates[keep]
        if gap[keep[0]] == 0.0:
            return _finish(
                plant, controls, temperature, history[0], max_moves, False, "beam (approximate)"
            )
    return _unreachable(plant, controls, temperature, exact=False)


# --------------------------------------------------------------------------- continuous


def _box_samples(low: np.ndarray, high: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    k = len(low)
    per_axis = max(2, round(4096 ** (1.0 / k)))
    samples = [rng.uniform(low, high, size=(_CONTINUOUS_SAMPLES, k))]
    if per_axis**k <= 4096:
        axes = [np.linspace(lo, hi, per_axis) for lo, hi in zip(low, high, strict=True)]
        samples.append(np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, k))
    return np.concatenate(samples)


def _refine(
    plant: Plant, point: np.ndarray, low: np.ndarray, high: np.ndarray, sign: float
) -> np.ndarray:
    """Projected gradient steps that push f up (sign=+1) or down (sign=-1) in the box."""
    width = np.maximum(high - low, 1e-12)
    eps = 1e-6 * width
    for _ in range(25):
        probes = point + np.diag(eps)
        gradient = (plant.model.predict(probes) - plant.model.predict(point)) / eps
        candidate = np.clip(point + sign * 0.1 * width * np.sign(gradient), low, high)
        if sign * (plant.model.predict(candidate) - plant.model.predict(point)) <= 0:
            break
        point = candidate
    return point


def _feasible_point(
    plant: Plant, low: np.ndarray, high: np.ndarray, offset: float, rng: np.random.Generator
) -> np.ndarray | None:
    """A setting in the box whose predicted reading is in the band, or None."""
    band_low, band_high = plant.band
    points = _box_samples(low, high, rng)
    values = plant.model.predict(points) + offset
    inside = np.flatnonzero((values >= band_low) & (values <= band_high))
    if inside.size:
        return points[inside[np.argmin(np.abs(values[inside] - plant.band_mid))]]
    cold = _refine(plant, points[np.argmin(values)], low, high, -1.0)
    hot = _refine(plant, points[np.argmax(values)], low, high, +1.0)
    if (
        plant.model.predict(hot) + offset < band_low
        or plant.model.predict(cold) + offset > band_high
    ):
        return None
    # The box is convex and f continuous: bisect the segment from cold to hot.
    a, b = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (a + b)
        point = cold + mid * (hot - cold)
        value = plant.model.predict(point) + offset
        if band_low <= value <= band_high:
            return point
        if value < band_low:
            a = mid
        else:
            b = mid
    return None


def _straight_line_deltas(
    plant: Plant, start: np.ndarray, target: np.ndarray, moves: int
) -> np.ndarray:
    """Per-move changes along the line start -> target, honouring the action dead-band."""
    total = target - start
    deltas = np.zeros((moves, plant.n_controls))
    minimum = plant.settings.continuous_deadband * plant.steps
    for i in range(plant.n_controls):
        if minimum[i] > 0 and abs(total[i]) < minimum[i]:
            continue  # too small to be acted on: the env would read it as "keep"
        count = moves if minimum[i] == 0 else min(moves, int(abs(total[i]) // minimum[i]))
        deltas[:count, i] = total[i] / count
    return deltas


def plan_continuous(
    plant: Plant,
    controls: np.ndarray,
    temperature: float,
    max_moves: int | None = None,
    seed: int = 0,
) -> Plan:
    """Fewest continuous moves into the band found by a verified box search."""
    controls = np.asarray(controls, dtype=np.float64)
    max_moves = plant.settings.horizon if max_moves is None else max_moves
    discrete = plan_discrete(plant, controls, temperature, max_moves)
    if discrete.moves == 0:
        return discrete
    limit = discrete.moves if discrete.moves is not None else max_moves + 1
    offset = float(plant.offset_for(temperature, controls))
    rng = np.random.default_rng(seed)
    codec = plant.codec("continuous")
    for depth in range(1, limit):
        low = np.maximum(plant.lower, controls - depth * plant.steps)
        high = np.minimum(plant.upper, controls + depth * plant.steps)
        target = _feasible_point(plant, low, high, offset, rng)
        if target is None:
            continue
        deltas = _straight_line_deltas(plant, controls, target, depth)
        deltas = codec.to_delta(codec.from_delta(deltas))  # exactly what the env will do
        plan = _finish(plant, controls, temperature, deltas, depth, False, "box search")
        if plan.moves is not None:
            return plan
    return Plan(
        discrete.moves,
        discrete.deltas,
        discrete.controls,
        discrete.temperatures,
        False,
        "lattice (continuous search found nothing shorter)",
    )
