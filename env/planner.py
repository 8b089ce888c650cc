"""The fewest-moves planner on the fitted model: the yardstick for every trained policy.

Every plan says whether its move count is *proven minimal* (``Plan.exact``).

Discrete moves
    A move shifts every control by -1, 0 or +1 step at once (clipped at its bounds), so
    ``D`` moves reach exactly the product of each control's values reachable in at most
    ``D`` moves of its own (:mod:`env.lattice`): the lattice ball of radius ``D``. The
    fewest moves is the smallest ``D`` whose ball holds a setting with a predicted
    reading in the band. The planner brackets that ``D`` from both sides:

    * **below**, by the continuous relaxation: every lattice point of the ball lies in
      the box ``u0 +/- D * step`` (within bounds); where rigorous bounds of the model
      over that box miss the band (:mod:`env.bounds`), no move sequence of length ``D``
      (lattice or continuous) can work. The first ``D`` not excluded this way is the
      lower bound.
    * **exactly**, by branch and bound over the ball's sub-boxes (:mod:`env.search`):
      sub-boxes whose bounds miss the band are discarded, and one lattice point of each
      remaining sub-box is evaluated; the search either finds a setting in the band
      (depth ``D`` is feasible; the setting's own depth may be smaller) or discards the
      whole ball (a proof that ``D`` moves are not enough). Depths are queried upwards
      from the lower bound until a feasible one follows a proven one, so the answer is
      minimal. All rows are searched together, in numpy batches.

    Each row has a budget of sub-boxes (``budget``); a row that exhausts it keeps the
    shortest plan found, labelled ``exact=False``, or, having found none, falls back to
    a beam search (``plan_beam``, also ``exact=False``). A row whose every depth up to
    the horizon is proven infeasible is unreachable, and that is exact too.

    **Which setting**: the move count is what is guaranteed minimal. Among the
    settings at that depth the planner takes the first one its search finds, then
    moves every control straight there (front-loaded); it does not search for the
    least total movement (the previous exhaustive planner did, at a cost that grew with
    the lattice ball), so two plans of the same length may move controls differently.

Continuous moves
    Each control may move any amount up to one step per move (smaller than the
    action dead-band counts as "keep"), so ``D`` moves reach at most the box
    ``u0 +/- D * step``, the same relaxation as above. The same branch and bound,
    over real sub-boxes probed at their centres, finds a setting in the band; the plan
    moves straight to it and is verified by simulating it through the environment's
    own action encoding and dead-band. Depths are bracketed as above, starting from the
    discrete plan (lattice moves are valid continuous moves, so the result is never
    worse than the discrete optimum). ``exact`` when ``D - 1`` is proven infeasible on
    the box and the ``D``-move plan verified.

Both assume the noise-free model. With a first-order lag (``response_rate < 1``) the
settings are planned on steady states and the plan is then simulated; the count is
that of the simulation and is labelled ``exact=False``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from env.actions import candidate_directions
from env.bounds import BoxBounder, box_bounder
from env.lattice import AxisLattices, axis_directions, axis_lattices
from env.plant import Plant
from env.search import (
    FOUND,
    INFEASIBLE,
    OUT_OF_BUDGET,
    ContinuousBoxes,
    LatticeBoxes,
    search,
)

DEFAULT_BUDGET = 20_000
"""Sub-boxes the branch and bound may bound per row before it gives up on a proof."""
BEAM_WIDTH = 64
"""States kept per depth by the approximate (beam) planner."""
METHOD_LATTICE = "lattice"
METHOD_BOX = "box"
APPROXIMATE = "approximate"
_PROBE_MARGIN = 1e-3
"""Continuous probes must land this fraction of the band width inside it, so that the
float32 action encoding of the verified plan cannot push the end reading out."""


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
    """True when the move count (or unreachability) is proven minimal (module docstring)."""
    method: str

    @property
    def reachable(self) -> bool:
        return self.moves is not None

    def directions(self, steps: np.ndarray) -> np.ndarray:
        """Per-move directions in {-1, 0, +1} (for discrete action modes)."""
        return np.sign(np.round(self.deltas / steps, 9)).astype(np.int8)


# --------------------------------------------------------------------------- public API


def plan_discrete(
    plant: Plant,
    controls: np.ndarray,
    temperature: float,
    max_moves: int | None = None,
    budget: int = DEFAULT_BUDGET,
) -> Plan:
    """Fewest discrete moves into the band for one start state (see module docstring)."""
    return plan_rows(plant, [temperature], [controls], "discrete", max_moves, budget)[0]


def plan_continuous(
    plant: Plant,
    controls: np.ndarray,
    temperature: float,
    max_moves: int | None = None,
    budget: int = DEFAULT_BUDGET,
) -> Plan:
    """Fewest continuous moves into the band for one start state (module docstring)."""
    return plan_rows(plant, [temperature], [controls], "continuous", max_moves, budget)[0]


def plan_rows(
    plant: Plant,
    temperatures: Sequence[float] | np.ndarray,
    controls: Sequence[np.ndarray] | np.ndarray,
    mode: str = "discrete",
    max_moves: int | None = None,
    budget: int = DEFAULT_BUDGET,
) -> list[Plan]:
    """Plans for many start states at once (``mode``: "discrete" or "continuous").

    Batching is what makes the planner fast: the searches of all rows share numpy
    calls. Any action mode other than "continuous" plans discrete moves. Settings
    outside the control bounds are clipped into them first.
    """
    temps = np.asarray(temperatures, dtype=np.float64).reshape(-1)
    start = np.asarray(controls, dtype=np.float64).reshape(len(temps), plant.n_controls)
    # Start rows lie within the bounds; a setting outside is planned from its clipped
    # value (the first move of any control clips it there anyway).
    start = np.clip(start, plant.lower, plant.upper)
    horizon = plant.settings.horizon if max_moves is None else int(max_moves)
    rows = _Rows(plant, temps, start, horizon, budget)
    discrete = _discrete_plans(rows)
    if mode != "continuous":
        return discrete
    return _continuous_plans(rows, discrete)


# --------------------------------------------------------------------------- shared


class _Rows:
    """Start states of one batch and what every search over them shares."""

    def __init__(
        self, plant: Plant, temps: np.ndarray, start: np.ndarray, horizon: int, budget: int
    ) -> None:
        self.plant = plant
        self.temps = temps
        self.start = start
        self.horizon = horizon
        self.offsets = temps - plant.model.predict(start) if len(temps) else temps.copy()
        self.in_band = np.asarray(plant.in_band(temps), dtype=bool)
        self.bounder: BoxBounder = box_bounder(plant.model)
        self.budget = np.full(len(temps), int(budget), np.int64)
        self.used = np.zeros(len(temps), np.int64)
        self.lagged = plant.settings.response_rate < 1.0
        self._relaxed: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.temps)

    def box(self, rows: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The box ``u0 +/- depth * step`` within bounds, for each row."""
        plant = self.plant
        reach = depth[:, None] * plant.steps
        return (
            np.maximum(plant.lower, self.start[rows] - reach),
            np.minimum(plant.upper, self.start[rows] + reach),
        )

    def proven_too_few(self, known: np.ndarray) -> np.ndarray:
        """Per row, the largest depth the relaxation proves infeasible (-1: in band).

        Boxes of depth 1, 2, ... are bounded until one is not excluded; only depths
        below ``known`` (a depth that works, horizon + 1 if none) are worth a look.
        """
        horizon = self.horizon
        limit = np.where(self.in_band, 0, np.minimum(known - 1, horizon))
        if self._relaxed is not None and (limit <= self._relaxed[0]).all():
            # asked before about more depths: those answers cover these
            return np.where(self.in_band, -1, np.minimum(self._relaxed[1], limit))
        result = np.where(self.in_band, -1, limit).astype(np.int64)
        todo = np.flatnonzero(limit > 0)
        if not len(todo):
            return result
        rows = np.repeat(todo, limit[todo])
        depth = np.concatenate([np.arange(1, m + 1) for m in limit[todo]])
        lower, upper = self.box(rows, depth)
        possible = np.zeros(len(rows), bool)
        low, high = self.plant.band
        slack = 1e-9 * max(1.0, abs(low), abs(high))
        chunk = max(64, (1 << 22) // max(1, self.bounder.cost_per_box))
        for s in range(0, len(rows), chunk):
            bounds = self.bounder(lower[s : s + chunk], upper[s : s + chunk])
            off = self.offsets[rows[s : s + chunk]]
            possible[s : s + chunk] = (bounds.low + off <= high + slack) & (
                bounds.high + off >= low - slack
            )
        # the first possible depth of each row; all below it are proven infeasible
        first = np.full(len(self), np.iinfo(np.int64).max)
        np.minimum.at(first, rows[possible], depth[possible])
        found = first[todo] < np.iinfo(np.int64).max
        result[todo] = np.where(found, first[todo] - 1, limit[todo])
        self._relaxed = (limit, result.copy())  # callers update theirs in place
        return result
        rows = np.repeat(todo, horizon)
        depth = np.tile(np.arange(1, horizon + 1), len(todo))
        lower, upper = self.box(rows, depth)
        possible = np.zeros(len(rows), bool)
        low, high = self.plant.band
        chunk = max(64, (1 << 22) // max(1, self.bounder.cost_per_box))
        for s in range(0, len(rows), chunk):
            bounds = self.bounder(lower[s : s + chunk], upper[s : s + chunk])
            f_lo, f_hi = bounds.low, bounds.high
            off = self.offsets[rows[s : s + chunk]]
            slack = 1e-9 * max(1.0, abs(low), abs(high))
            possible[s : s + chunk] = (f_lo + off <= high + slack) & (f_hi + off >= low - slack)
        possible = possible.reshape(len(todo), horizon)
        first = np.where(possible.any(axis=1), possible.argmax(axis=1) + 1, horizon + 1)
        result[todo] = first
        return np.where(self.in_band, 0, result)


@dataclass
class _Bracket:
    """Per row: the largest depth proven too small and the smallest depth that works."""

    proven_bad: np.ndarray
    good: np.ndarray
    """horizon + 1 while no plan is known."""
    exhausted: np.ndarray
    descents: np.ndarray
    """Queries below a known plan that found a shorter one."""

    @classmethod
    def start(cls, proven_bad: np.ndarray, good: np.ndarray) -> _Bracket:
        n = len(good)
        return cls(proven_bad, good, np.zeros(n, bool), np.zeros(n, np.int64))

    def open_rows(self) -> np.ndarray:
        return np.flatnonzero((self.good - self.proven_bad > 1) & ~self.exhausted)

    def next_depth(self, rows: np.ndarray, horizon: int) -> np.ndarray:
        """The depth to ask about next, per row.

        With no plan known, ask about the horizon: finding a setting is cheap, and the
        search's aimed probes find one about as near as the fewest moves allow (its own
        depth becomes the plan). Then prove one move less infeasible; if that finds a
        shorter plan, repeat, bisecting after two such surprises. Proofs are the costly
        part, and this order needs one per row when the aimed probe was right.
        """
        bad, good = self.proven_bad[rows], self.good[rows]
        below = np.where(self.descents[rows] >= 2, (bad + good) // 2, good - 1)
        return np.where(good > horizon, horizon, np.maximum(below, bad + 1))

    def record(
        self, rows: np.ndarray, depth: np.ndarray, status: np.ndarray, reach: np.ndarray
    ) -> None:
        """Update with search answers (``reach``: depth of the setting found)."""
        found = status == FOUND
        self.descents[rows[found & (self.good[rows] <= depth)]] += 1
        self.good[rows[found]] = np.minimum(self.good[rows[found]], reach[found])
        bad = status == INFEASIBLE
        self.proven_bad[rows[bad]] = np.maximum(self.proven_bad[rows[bad]], depth[bad])
        self.exhausted[rows[status == OUT_OF_BUDGET]] = True

    def exact(self) -> np.ndarray:
        return (self.good - self.proven_bad == 1) & ~self.exhausted


def _simulate(
    plant: Plant, temps: np.ndarray, start: np.ndarray, deltas: np.ndarray, horizon: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise-free roll-out of ``deltas`` (rows, moves, k), then "keep", for every row.

    Returns the control path (rows, horizon + 1, k), the readings (rows, horizon + 1)
    and the index of the first in-band reading (-1: none).
    """
    offset = temps - plant.model.predict(start)
    u, t = start.copy(), temps.copy()
    path_u, path_t = [u.copy()], [t.copy()]
    for move in range(horizon):
        if move < deltas.shape[1]:
            u = plant.apply_delta(u, deltas[:, move])
        t = plant.next_temperature(t, u, offset)
        path_u.append(u.copy())
        path_t.append(t.copy())
    controls, readings = np.stack(path_u, axis=1), np.stack(path_t, axis=1)
    inside = plant.in_band(readings)
    first = np.where(inside.any(axis=1), inside.argmax(axis=1), -1)
    return controls, readings, first


def _make_plans(
    rows: _Rows, deltas: np.ndarray, exact: np.ndarray, methods: Sequence[str]
) -> list[Plan]:
    """Simulate every row's deltas and package the paths as plans."""
    plant, k = rows.plant, rows.plant.n_controls
    path_u, path_t, first = _simulate(plant, rows.temps, rows.start, deltas, rows.horizon)
    plans = []
    for i in range(len(rows)):
        moves = int(first[i])
        if moves < 0:
            plans.append(
                Plan(None, np.zeros((0, k)), rows.start[i][None].copy(),
                     rows.temps[i : i + 1].copy(), bool(exact[i]), methods[i])
            )  # fmt: skip
            continue
        lag_note = rows.lagged and moves > 0
        plans.append(
            Plan(
                moves,
                np.diff(path_u[i, : moves + 1], axis=0),
                path_u[i, : moves + 1],
                path_t[i, : moves + 1],
                bool(exact[i]) and not lag_note,
                methods[i] + (f" + lag simulation ({APPROXIMATE})" if lag_note else ""),
            )
        )
    return plans


# --------------------------------------------------------------------------- discrete


def _lattice_queries(
    lattices: list[AxisLattices], rows: np.ndarray, depth: np.ndarray, steps: np.ndarray
) -> tuple[LatticeBoxes, np.ndarray]:
    """The lattice ball of radius ``depth`` of each row, and each entry's original index."""
    axes_values, axes_index = [], []
    for lattice in lattices:
        within = lattice.distance[rows] <= depth[:, None]
        order = np.argsort(~within, axis=1, kind="stable")
        count = within.sum(axis=1)
        values = np.take_along_axis(lattice.values[rows], order, axis=1)
        values[np.arange(values.shape[1]) >= count[:, None]] = np.inf
        axes_values.append((values, count))
        axes_index.append(order)
    width = max(int(c.max()) for _, c in axes_values)
    values = np.full((len(rows), len(lattices), width), np.inf)
    index = np.zeros((len(rows), len(lattices), width), np.intp)
    for i, ((v, _), order) in enumerate(zip(axes_values, axes_index, strict=True)):
        values[:, i, :] = v[:, :width]
        index[:, i, :] = order[:, :width]
    count = np.stack([c for _, c in axes_values], axis=1)
    return LatticeBoxes(values, count, steps), index


_LANDING_AXES = 5
"""Controls whose every keep/move combination the greedy path tries when landing."""


def _landing_moves(k: int, corner: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """Sub-moves of each row's corner move to try when it would overshoot the band.

    Every subset of the moving controls when there are at most ``_LANDING_AXES``;
    otherwise every subset of the ``_LANDING_AXES`` steepest ones, with the others all
    moving or all kept (64 candidates).
    """
    if k <= _LANDING_AXES:
        masks = np.array(list(itertools.product((0, 1), repeat=k)), dtype=np.int8)
        return masks[None, :, :] * corner[:, None, :]
    steep = np.argsort(-np.abs(slope), axis=1)[:, :_LANDING_AXES]
    subsets = np.array(list(itertools.product((0, 1), repeat=_LANDING_AXES)), dtype=np.int8)
    masks = np.zeros((len(corner), 2 * len(subsets), k), np.int8)
    masks[:, len(subsets) :, :] = 1  # the other controls all move ...
    rows = np.arange(len(corner))[:, None, None]
    half = np.arange(len(subsets))[None, :, None]
    for offset in (0, len(subsets)):  # ... or all stay; the steep ones take every subset
        masks[rows, half + offset, steep[:, None, :]] = subsets[None]
    return masks * corner[:, None, :]


def _greedy_paths(rows: _Rows) -> tuple[np.ndarray, np.ndarray]:
    """A cheap upper bound per row: move every control towards the band at once.

    Each move shifts every control one step in the direction that brings the reading
    towards the band (the sign of the model's slope there, re-read every move: the
    corner of the reachable box that changes the reading fastest). When that move would
    cross the band, the sub-moves that leave some controls where they are are tried
    too, to land inside it. Returns the moves taken (horizon + 1: none) and the
    settings reached (rows, k).
    """
    plant, horizon, k = rows.plant, rows.horizon, rows.plant.n_controls
    low, high = plant.band
    moves = np.where(rows.in_band, 0, horizon + 1)
    reached = rows.start.copy()
    u, t = rows.start.copy(), rows.temps.copy()
    todo = np.flatnonzero(~rows.in_band)
    for move in range(1, horizon + 1):
        if not len(todo):
            break
        slope = rows.bounder(u[todo], u[todo]).slope
        towards = np.where(t[todo] < low, 1.0, -1.0)
        corner = (np.sign(slope) * towards[:, None]).astype(np.int8)
        nxt = plant.apply_delta(u[todo], corner * plant.steps)
        reading = plant.model.predict(nxt) + rows.offsets[todo]
        crossed = np.where(towards > 0, reading >= low, reading <= high)
        if crossed.any():
            c = np.flatnonzero(crossed)
            options = _landing_moves(k, corner[c], slope[c])
            trial = plant.apply_delta(u[todo[c]][:, None, :], options * plant.steps)
            values = plant.model.predict(trial.reshape(-1, k)).reshape(trial.shape[:2])
            values = values + rows.offsets[todo[c]][:, None]
            gap = np.abs(values - plant.band_mid)
            best = np.argmin(gap, axis=1)
            nxt[c] = trial[np.arange(len(c)), best]
            reading[c] = values[np.arange(len(c)), best]
        u[todo], t[todo] = nxt, reading
        landed = (reading >= low) & (reading <= high)
        moves[todo[landed]] = move
        reached[todo[landed]] = nxt[landed]
        todo = todo[~landed]
    return moves, reached


def _depth_of(lattices: list[AxisLattices], chosen: np.ndarray) -> np.ndarray:
    """Fewest moves to each row's chosen lattice setting (the largest per control)."""
    rows = np.arange(len(chosen))
    index = np.maximum(chosen, 0)
    return np.stack(
        [lat.distance[rows, index[:, i]] for i, lat in enumerate(lattices)], axis=1
    ).max(axis=1)


def _lattice_index(lattices: list[AxisLattices], points: np.ndarray) -> np.ndarray:
    """Index of each row's setting in each axis's reachable values (nearest value)."""
    return np.stack(
        [
            np.argmin(np.abs(lat.values - points[:, i : i + 1]), axis=1)
            for i, lat in enumerate(lattices)
        ],
        axis=1,
    )


def _discrete_search(rows: _Rows) -> tuple[_Bracket, list[AxisLattices], np.ndarray]:
    """Bracket every row's fewest moves; returns the bracket, lattices, chosen indices."""
    plant, horizon = rows.plant, rows.horizon
    lattices = [
        axis_lattices(rows.start[:, i], plant.lower[i], plant.upper[i], plant.steps[i], horizon)
        for i in range(plant.n_controls)
    ]
    greedy_moves, greedy_reached = _greedy_paths(rows)
    reached = greedy_moves <= horizon
    chosen = np.where(reached[:, None], _lattice_index(lattices, greedy_reached), -1)
    # the setting reached may be nearer (per control) than the moves the path took
    good = np.where(reached, np.minimum(greedy_moves, _depth_of(lattices, chosen)), greedy_moves)
    bracket = _Bracket.start(rows.proven_too_few(good), good)
    low, high = plant.band
    while len(open_ := bracket.open_rows()):
        depth = bracket.next_depth(open_, horizon)
        boxes, index = _lattice_queries(lattices, open_, depth, plant.steps)
        result = search(
            boxes,
            rows.bounder,
            plant.model,
            (np.full(len(open_), low), np.full(len(open_), high)),
            rows.offsets[open_],
            rows.budget[open_] - rows.used[open_],
        )
        rows.used[open_] += result.boxes
        reach = np.full(len(open_), horizon + 1)
        q = np.flatnonzero(result.status == FOUND)
        if len(q):
            probe = result.coords[q].astype(np.intp)
            original = np.take_along_axis(index[q], probe[:, :, None], axis=2)[:, :, 0]
            # the setting found may lie nearer than the depth asked for
            reach[q] = np.stack(
                [lat.distance[open_[q], original[:, i]] for i, lat in enumerate(lattices)],
                axis=1,
            ).max(axis=1)
            better = reach[q] < bracket.good[open_[q]]
            chosen[open_[q[better]]] = original[better]
        bracket.record(open_, depth, result.status, reach)
    return bracket, lattices, chosen


def _trim_movement(rows: _Rows, lattices: list[AxisLattices], chosen: np.ndarray) -> np.ndarray:
    """Move each control back towards its start as far as the band allows (a tie-break).

    For one control at a time (the others fixed), every reachable value between the
    start and the chosen one is tried, and the one needing the fewest moves of its own
    whose reading stays in the band is kept (then the reading nearest the band centre).
    It never lengthens a plan (each control's moves only shrink) and prefers plans that
    move less, but it is a greedy pass, not a search for the least total movement.
    """
    plant = rows.plant
    sel = np.flatnonzero((chosen[:, 0] >= 0) & ~rows.in_band)
    if not len(sel):
        return chosen
    chosen = chosen.copy()
    low, high = plant.band
    point = np.stack([lat.values[sel, chosen[sel, i]] for i, lat in enumerate(lattices)], axis=1)
    for i, lat in enumerate(lattices):
        current = chosen[sel, i]
        distance = lat.distance[sel]
        values = lat.values[sel]
        nearer = distance < distance[np.arange(len(sel)), current][:, None]
        r, j = np.nonzero(nearer)
        if not len(r):
            continue
        trial = point[r].copy()
        trial[:, i] = values[r, j]
        reading = plant.model.predict(trial) + rows.offsets[sel[r]]
        ok = (reading >= low) & (reading <= high)
        r, j, reading = r[ok], j[ok], reading[ok]
        # per row: fewest moves on this control, then nearest the band centre
        order = np.lexsort((np.abs(reading - plant.band_mid), distance[r, j], r))
        r, j = r[order], j[order]
        first = np.unique(r, return_index=True)[1]
        chosen[sel[r[first]], i] = j[first]
        point[r[first], i] = values[r[first], j[first]]
    return chosen


def _directions_to(
    rows: _Rows, lattices: list[AxisLattices], chosen: np.ndarray, moves: np.ndarray
) -> np.ndarray:
    """Per-row direction sequences (rows, max moves, k) that reach the chosen settings."""
    plant = rows.plant
    width = int(max(1, moves.max(initial=0)))
    directions = np.zeros((len(rows), width, plant.n_controls), np.int8)
    for r in np.flatnonzero(chosen[:, 0] >= 0):
        for i, lattice in enumerate(lattices):
            j = chosen[r, i]
            directions[r, :, i] = axis_directions(
                int(lattice.family[r, j]),
                int(lattice.distance[r, j]),
                float(rows.start[r, i]),
                float(lattice.values[r, j]),
                (float(plant.lower[i]), float(plant.upper[i])),
                float(plant.steps[i]),
                width,
            )
    return directions


def _discrete_plans(rows: _Rows) -> list[Plan]:
    plant = rows.plant
    bracket, lattices, chosen = _discrete_search(rows)
    exact = bracket.exact()
    found = bracket.good <= rows.horizon
    chosen = _trim_movement(rows, lattices, chosen)
    directions = _directions_to(rows, lattices, chosen, np.where(found, bracket.good, 0))
    methods = [
        METHOD_LATTICE if e else f"{METHOD_LATTICE} ({APPROXIMATE}: search budget exhausted)"
        for e in exact
    ]
    plans = _make_plans(rows, directions * plant.steps, exact, methods)
    for r in np.flatnonzero(bracket.exhausted & ~found):
        plans[r] = plan_beam(plant, rows.start[r], float(rows.temps[r]), rows.horizon)
    return plans


def plan_beam(
    plant: Plant, controls: np.ndarray, temperature: float, max_moves: int | None = None
) -> Plan:
    """Approximate planner (beam search on |gap|): the fallback when a search runs out."""
    controls = np.asarray(controls, dtype=np.float64)
    max_moves = plant.settings.horizon if max_moves is None else max_moves
    offset = float(plant.offset_for(temperature, controls))
    k = plant.n_controls
    moves = candidate_directions(k).astype(np.float64)
    beam_u = controls[None].copy()
    history = np.zeros((1, 0, k))
    method = f"beam ({APPROXIMATE})"
    rows = _Rows(plant, np.array([temperature]), controls[None], max_moves, 0)
    if plant.in_band(temperature):
        return _make_plans(rows, np.zeros((1, 0, k)), np.array([True]), [method])[0]
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
            return _make_plans(rows, history[:1], np.array([False]), [method])[0]
    return _make_plans(rows, np.zeros((1, 0, k)), np.array([False]), [method])[0]


# --------------------------------------------------------------------------- continuous


def _straight_line_deltas(
    plant: Plant, start: np.ndarray, target: np.ndarray, moves: np.ndarray
) -> np.ndarray:
    """Per-move changes (rows, max moves, k) along the lines start -> target.

    A control whose total change is below the action dead-band is kept (the env would
    read such an action as "keep"); otherwise its change is spread over as many moves
    as the dead-band allows (at most the plan's length).
    """
    total = target - start
    minimum = plant.settings.continuous_deadband * plant.steps
    width = int(max(1, moves.max(initial=0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        by_deadband = np.where(minimum > 0, np.floor(np.abs(total) / minimum), np.inf)
    count = np.minimum(moves[:, None], by_deadband)
    count = np.where(np.abs(total) < minimum, 0, count).astype(np.int64)
    per_move = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    active = np.arange(width)[None, :, None] < count[:, None, :]
    return np.where(active, per_move[:, None, :], 0.0)


def _continuous_plans(rows: _Rows, discrete: list[Plan]) -> list[Plan]:
    plant, horizon = rows.plant, rows.horizon
    discrete_moves = np.array([horizon + 1 if p.moves is None else p.moves for p in discrete])
    bracket = _Bracket.start(
        rows.proven_too_few(discrete_moves), np.minimum(discrete_moves, horizon + 1)
    )
    # an inexact discrete "unreachable" is no upper bound for the continuous search
    unknown = np.array([p.moves is None and not p.exact for p in discrete], dtype=bool)
    bracket.good[unknown] = horizon + 1
    deltas_found: dict[int, np.ndarray] = {}
    codec = plant.codec("continuous")
    low, high = plant.band
    margin = _PROBE_MARGIN * (high - low)
    while len(open_ := bracket.open_rows()):
        depth = bracket.next_depth(open_, horizon)
        lower, upper = rows.box(open_, depth)
        boxes = ContinuousBoxes(lower, upper, 1e-6 * plant.steps)
        ones = np.ones(len(open_))
        result = search(
            boxes,
            rows.bounder,
            plant.model,
            (low * ones, high * ones),
            rows.offsets[open_],
            rows.budget[open_] - rows.used[open_],
            probe_band=((low + margin) * ones, (high - margin) * ones),
        )
        rows.used[open_] += result.boxes
        reach = np.full(len(open_), horizon + 1)
        status = result.status.copy()
        q = np.flatnonzero(status == FOUND)
        if len(q):
            r = open_[q]
            needed = np.ceil(np.abs(result.point[q] - rows.start[r]) / plant.steps - 1e-9)
            moves = np.clip(needed.max(axis=1), 1, depth[q]).astype(np.int64)
            deltas = _straight_line_deltas(plant, rows.start[r], result.point[q], moves)
            deltas = codec.to_delta(codec.from_delta(deltas))  # exactly what the env does
            _, _, first = _simulate(plant, rows.temps[r], rows.start[r], deltas, horizon)
            verified = (first > 0) & (first <= depth[q])
            for i in np.flatnonzero(verified & (first < bracket.good[r])):
                deltas_found[int(r[i])] = deltas[i]
            reach[q[verified]] = first[verified]
            # a plan that fails its check ends the row's search: not proven either way
            status[q[~verified]] = OUT_OF_BUDGET
        bracket.record(open_, depth, status, reach)
    return _continuous_results(rows, discrete, bracket, deltas_found)


def _continuous_results(
    rows: _Rows, discrete: list[Plan], bracket: _Bracket, deltas_found: dict[int, np.ndarray]
) -> list[Plan]:
    exact = bracket.exact()
    plans = list(discrete)
    k = rows.plant.n_controls
    if deltas_found:
        which = np.array(sorted(deltas_found))
        width = max(len(deltas_found[r]) for r in which)
        deltas = np.zeros((len(rows), width, k))
        for r in which:
            deltas[r, : len(deltas_found[r])] = deltas_found[r]
        methods = [
            METHOD_BOX if e else f"{METHOD_BOX} ({APPROXIMATE}: not proven minimal)" for e in exact
        ]
        simulated = _make_plans(rows, deltas, exact, methods)
        for r in which:
            plans[r] = simulated[r]
    for r in range(len(rows)):
        if r in deltas_found:
            continue
        plan = discrete[r]
        proven = (
            bool(exact[r])
            and (plan.exact or plan.moves is not None)
            and not (rows.lagged and plan.moves)
        )
        label = (
            METHOD_LATTICE if proven else f"{METHOD_LATTICE} ({APPROXIMATE} for continuous moves)"
        )
        plans[r] = Plan(plan.moves, plan.deltas, plan.controls, plan.temperatures, proven, label)
    return plans
