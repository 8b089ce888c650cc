"""Branch and bound: does any setting in a set reach the band? Many sets at once.

A *query* asks whether some setting of a finite lattice set (the settings reachable in
``D`` discrete moves) or of a box (the continuous counterpart) has a predicted reading
inside the band. The search keeps a stack of sub-boxes and, in batches across all
queries at once:

1. bounds the model over each sub-box (:mod:`env.bounds`) and drops the sub-boxes whose
   bounds miss the band: no setting inside can reach it (a proof, not a guess);
2. evaluates the model at two settings of every remaining sub-box: its middle, and
   the setting a linear model of the sub-box (the bounder's gradient at its centre)
   predicts to read the band's centre; a reading inside the band answers the query
   with that setting (lattice sub-boxes are probed at lattice points only);
3. splits every remaining sub-box in two along the axis that contributes most to its
   bound's width (a single lattice point is never split: it was evaluated exactly).

A query whose sub-boxes are all dropped is *proven* unreachable. Each query has a budget
of sub-boxes; a query that exhausts it is answered "out of budget" (undecided).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from env.bounds import BoxBounder, BoxBounds
from env.model import ProcessModel

SEARCHING, FOUND, INFEASIBLE, OUT_OF_BUDGET = 0, 1, 2, 3
_BATCH_FLOATS = 1 << 22
"""Work per batch (boxes x bounder cost): about 32 MB of temporaries."""
_BOUND_FIELDS = ("low", "high", "score", "value", "slope")
_TOLERANCE = 1e-9
"""Relative slack on the band when pruning: bounds are computed in floating point."""


class BoxSet(Protocol):
    """How the sub-boxes of one kind of query are represented, probed and split."""

    n_queries: int

    def roots(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One box per query: (query ids, lower, upper) in the set's own coordinates."""
        ...

    def extent(
        self, query: np.ndarray, lower: np.ndarray, upper: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The boxes in physical units."""
        ...

    def probe(
        self, query: np.ndarray, lower: np.ndarray, upper: np.ndarray, aim: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """A setting inside each box, near ``aim`` (physical) or the middle if None.

        Returns the setting in the set's own coordinates and in physical units.
        """
        ...

    def split(
        self, lower: np.ndarray, upper: np.ndarray, axis: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Halve each box along ``axis``: (lower_a, upper_a, lower_b, upper_b)."""
        ...

    def splittable(self, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """(n, k) whether each axis of each box can still be halved."""
        ...


class LatticeBoxes:
    """Queries over finite product lattices; a box is an index range per axis.

    ``values`` (queries, k, width) holds each axis's reachable values sorted ascending,
    padded with +inf past ``count`` (queries, k).
    """

    def __init__(self, values: np.ndarray, count: np.ndarray, steps: np.ndarray) -> None:
        self.values = values
        self.count = count
        self.steps = steps
        self.n_queries, self.k, self.width = values.shape
        self._flat = values.reshape(-1, self.width)
        self._axis = np.arange(self.k)

    def roots(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q = np.arange(self.n_queries)
        return q, np.zeros((self.n_queries, self.k), np.int32), (self.count - 1).astype(np.int32)

    def _gather(self, query: np.ndarray, index: np.ndarray) -> np.ndarray:
        return self._flat[query[:, None] * self.k + self._axis, index]

    def extent(
        self, query: np.ndarray, lower: np.ndarray, upper: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return self._gather(query, lower), self._gather(query, upper)

    def probe(
        self, query: np.ndarray, lower: np.ndarray, upper: np.ndarray, aim: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if aim is None:
            index = (lower + upper) // 2
        else:
            # values are (nearly) a step apart: a good guess, and always inside the box
            first = self._gather(query, lower)
            index = lower + np.rint((aim - first) / self.steps).astype(np.int32)
            index = np.clip(index, lower, upper)
        return index, self._gather(query, index)

    def split(
        self, lower: np.ndarray, upper: np.ndarray, axis: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rows = np.arange(len(axis))
        middle = (lower[rows, axis] + upper[rows, axis]) // 2
        upper_a, lower_b = upper.copy(), lower.copy()
        upper_a[rows, axis] = middle
        lower_b[rows, axis] = middle + 1
        return lower, upper_a, lower_b, upper

    def splittable(self, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        return upper > lower


class ContinuousBoxes:
    """Queries over boxes of real settings (``lower``, ``upper`` of shape (queries, k))."""

    def __init__(self, lower: np.ndarray, upper: np.ndarray, min_width: np.ndarray) -> None:
        self.lower, self.upper = lower, upper
        self.min_width = min_width
        self.n_queries = len(lower)

    def roots(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.arange(self.n_queries), self.lower.copy(), self.upper.copy()

    def extent(
        self, query: np.ndarray, lower: np.ndarray, upper: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return lower, upper

    def probe(
        self, query: np.ndarray, lower: np.ndarray, upper: np.ndarray, aim: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        point = 0.5 * (lower + upper) if aim is None else np.clip(aim, lower, upper)
        return point, point

    def split(
        self, lower: np.ndarray, upper: np.ndarray, axis: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rows = np.arange(len(axis))
        middle = 0.5 * (lower[rows, axis] + upper[rows, axis])
        upper_a, lower_b = upper.copy(), lower.copy()
        upper_a[rows, axis] = middle
        lower_b[rows, axis] = middle
        return lower, upper_a, lower_b, upper

    def splittable(self, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        return (upper - lower) > self.min_width


@dataclass(frozen=True)
class SearchResult:
    """Answer per query."""

    status: np.ndarray
    """FOUND, INFEASIBLE (proven) or OUT_OF_BUDGET."""
    coords: np.ndarray
    """(queries, k) the setting found, in the set's coordinates (if FOUND)."""
    point: np.ndarray
    """(queries, k) the same in physical units (NaN if not FOUND)."""
    boxes: np.ndarray
    """(queries,) sub-boxes bounded."""


@dataclass
class _Stack:
    query: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    def __len__(self) -> int:
        return len(self.query)

    def pop(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        start = max(0, len(self.query) - count)
        taken = self.query[start:], self.lower[start:], self.upper[start:]
        self.query, self.lower, self.upper = (
            self.query[:start],
            self.lower[:start],
            self.upper[:start],
        )
        return taken

    def push(self, query: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
        self.query = np.concatenate([self.query, query])
        self.lower = np.concatenate([self.lower, lower])
        self.upper = np.concatenate([self.upper, upper])


def _aim(bounds: BoxBounds, lower: np.ndarray, upper: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """The setting a linear model of each box predicts to read ``goal`` (box clipped).

    Moves from the centre along the signs of the gradient, scaled per axis by the
    box's half-width: the corner direction that changes the reading fastest.
    """
    half = 0.5 * (upper - lower)
    reach = (np.abs(bounds.slope) * half).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.clip(np.nan_to_num((goal - bounds.value) / reach), -1.0, 1.0)
    return 0.5 * (lower + upper) + fraction[:, None] * np.sign(bounds.slope) * half


def search(
    boxes: BoxSet,
    bounder: BoxBounder,
    model: ProcessModel,
    band: tuple[np.ndarray, np.ndarray],
    offset: np.ndarray,
    budget: np.ndarray,
    probe_band: tuple[np.ndarray, np.ndarray] | None = None,
) -> SearchResult:
    """Answer every query of ``boxes``: is a setting with ``f(u) + offset`` in the band?

    ``band`` holds per-query (low, high) arrays; ``probe_band`` (default: the band)
    is what a probe must hit to count as found (narrower to leave a safety margin).
    Each surviving box is probed twice: at its middle and where the linear model of the
    box predicts the band's centre.
    """
    q_total = boxes.n_queries
    band_low, band_high = band
    hit_low, hit_high = probe_band if probe_band is not None else band
    goal = 0.5 * (band_low + band_high) - offset
    slack = _TOLERANCE * np.maximum(1.0, np.maximum(np.abs(band_low), np.abs(band_high)))
    status = np.zeros(q_total, np.int8)
    used = np.zeros(q_total, np.int64)
    root_q, root_lo, root_hi = boxes.roots()
    coords = np.zeros(root_lo.shape, root_lo.dtype)
    point = np.full(root_lo.shape, np.nan)
    stack = _Stack(root_q, root_lo, root_hi)
    batch = max(64, _BATCH_FLOATS // max(1, bounder.cost_per_box))
    while len(stack):
        q, lo, hi = stack.pop(batch)
        keep = status[q] == SEARCHING
        over = keep & (used[q] >= budget[q])
        status[q[over]] = OUT_OF_BUDGET
        keep &= ~over
        q, lo, hi = q[keep], lo[keep], hi[keep]
        if not len(q):
            continue
        used += np.bincount(q, minlength=q_total)
        u_lo, u_hi = boxes.extent(q, lo, hi)
        bounds = bounder(u_lo, u_hi)
        off = offset[q]
        alive = (bounds.low + off <= band_high[q] + slack[q]) & (
            bounds.high + off >= band_low[q] - slack[q]
        )
        q, lo, hi, u_lo, u_hi = q[alive], lo[alive], hi[alive], u_lo[alive], u_hi[alive]
        bounds = BoxBounds(*(getattr(bounds, f)[alive] for f in _BOUND_FIELDS))
        if not len(q):
            continue
        aim = _aim(bounds, u_lo, u_hi, goal[q])
        probe_q = np.concatenate([q, q])
        c_mid, p_mid = boxes.probe(q, lo, hi, None)
        c_aim, p_aim = boxes.probe(q, lo, hi, aim)
        probe_c, probe_p = np.concatenate([c_mid, c_aim]), np.concatenate([p_mid, p_aim])
        reading = model.predict(probe_p) + offset[probe_q]
        hit = (reading >= hit_low[probe_q]) & (reading <= hit_high[probe_q])
        if hit.any():
            first = np.flatnonzero(hit)
            first = first[np.unique(probe_q[first], return_index=True)[1]]
            status[probe_q[first]] = FOUND
            coords[probe_q[first]] = probe_c[first]
            point[probe_q[first]] = probe_p[first]
            rest = status[q] == SEARCHING
            q, lo, hi, score = q[rest], lo[rest], hi[rest], bounds.score[rest]
        else:
            score = bounds.score
        can = boxes.splittable(lo, hi)
        open_ = can.any(axis=1)
        q, lo, hi, score, can = q[open_], lo[open_], hi[open_], score[open_], can[open_]
        if not len(q):
            continue
        axis = np.argmax(np.where(can, score, -1.0), axis=1)
        lo_a, hi_a, lo_b, hi_b = boxes.split(lo, hi, axis)
        stack.push(
            np.concatenate([q, q]), np.concatenate([lo_a, lo_b]), np.concatenate([hi_a, hi_b])
        )
    status[status == SEARCHING] = INFEASIBLE
    return SearchResult(status, coords, point, used)
