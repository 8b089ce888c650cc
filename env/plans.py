"""Plans and the shared machinery of planning many start rows at once.

:class:`Plan` is what the planner returns for one start state. :class:`PlanningRows`
holds a batch of start states and what every search over them shares (offsets, the
model's bounder, each row's search budget, the continuous relaxation);
:class:`DepthBracket` holds, per row, the depths proven too few and the shortest plan
known, and chooses the next depth to ask about. How the bracket is closed is explained
in :mod:`env.planner`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from env.bounds import BoxBounder, box_bounder
from env.plant import Plant
from env.search import FOUND, INFEASIBLE, OUT_OF_BUDGET

METHOD_LATTICE = "lattice"
METHOD_BOX = "box"
APPROXIMATE = "approximate"


@dataclass(frozen=True)
class Plan:
    """A move sequence from a start state into the band."""

    moves: int | None
    """Moves until the reading is inside the band and stays there to the horizon's end
    (without inertia: the first reading inside); None if not within the horizon."""
    deltas: np.ndarray
    """Shape (L, k): the physical change of each control at each planned move, then
    "keep". L = moves without inertia; with it, moves made after the reading has
    settled (coming back from an overdrive) count too, so L may differ."""
    controls: np.ndarray
    """Shape (max(moves, L) + 1, k): settings from the start to the end of the plan."""
    temperatures: np.ndarray
    """Shape (max(moves, L) + 1,): predicted readings along the plan."""
    exact: bool
    """True when the move count (or unreachability) is proven minimal (see :mod:`env.planner`)."""
    method: str

    @property
    def reachable(self) -> bool:
        return self.moves is not None

    @property
    def actuations(self) -> int:
        """Planned moves that change a setting (an operator's interventions)."""
        return int(np.any(self.deltas != 0.0, axis=1).sum()) if len(self.deltas) else 0

    def directions(self, steps: np.ndarray) -> np.ndarray:
        """Per-move directions in {-1, 0, +1} (for discrete action modes)."""
        return np.sign(np.round(self.deltas / steps, 9)).astype(np.int8)


class PlanningRows:
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
        self.lagged = plant.lagging
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
class DepthBracket:
    """Per row: the largest depth proven too small and the smallest depth that works."""

    proven_bad: np.ndarray
    good: np.ndarray
    """horizon + 1 while no plan is known."""
    exhausted: np.ndarray
    descents: np.ndarray
    """Queries below a known plan that found a shorter one."""

    @classmethod
    def start(cls, proven_bad: np.ndarray, good: np.ndarray) -> DepthBracket:
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


def simulate(
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


def make_plans(
    rows: PlanningRows,
    deltas: np.ndarray,
    exact: np.ndarray,
    methods: Sequence[str],
    expected: np.ndarray | None = None,
) -> list[Plan]:
    """Simulate every row's deltas and package the paths as plans.

    The move count is the simulation's. A plan stays ``exact`` only if the simulation
    agrees with the ``expected`` count (the proven minimum) and no lag is simulated:
    with inertia the readings between steady states can cross the band at other
    times, or never, so nothing the steady-state search proved carries over.
    """
    plant, k = rows.plant, rows.plant.n_controls
    path_u, path_t, first = simulate(plant, rows.temps, rows.start, deltas, rows.horizon)
    plans = []
    for i in range(len(rows)):
        moves = int(first[i])
        lag_note = rows.lagged and moves != 0
        proven = bool(exact[i]) and not lag_note
        if expected is not None and expected[i] <= rows.horizon:
            proven = proven and moves == expected[i]
        method = methods[i] + (f" + lag simulation ({APPROXIMATE})" if lag_note else "")
        if moves < 0:
            plans.append(
                Plan(None, np.zeros((0, k)), rows.start[i][None].copy(),
                     rows.temps[i : i + 1].copy(), proven, method)
            )  # fmt: skip
            continue
        plans.append(
            Plan(
                moves,
                np.diff(path_u[i, : moves + 1], axis=0),
                path_u[i, : moves + 1],
                path_t[i, : moves + 1],
                proven,
                method,
            )
        )
    return plans
