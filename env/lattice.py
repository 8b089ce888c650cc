"""The settings one control can reach in a given number of discrete moves.

A move shifts a control by -1, 0 or +1 step and clips it to its bounds. Along one
control, the values reachable from ``u0`` form three families:

* straight: ``u0 + j step`` inside the bounds, in ``|j|`` moves;
* via the lower bound: the first move that would pass ``lower`` stops on it, after
  ``a = ceil((u0 - lower) / step)`` moves; then ``lower + m step`` in ``a + m`` moves;
* via the upper bound likewise (``b = ceil((upper - u0) / step)``, ``upper - m step``).

Any other path clips more than once, which only repeats these values later (reaching
the far bound through the near one takes longer than going straight), so the fewest
moves to each value is the smallest over the three families. Because the controls move
simultaneously, a setting ``u*`` is reachable in ``D`` moves exactly when every control's
value is reachable in at most ``D`` moves of its own.

Everything is computed for many start rows at once (one row per leading index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STRAIGHT, VIA_LOWER, VIA_UPPER = 0, 1, 2
_KEY_RESOLUTION = 1e6
"""Values closer than step / 1e6 are the same lattice point (rounding of repeated steps)."""


@dataclass(frozen=True)
class AxisLattices:
    """Reachable values of one control for many rows, sorted by value, padded.

    Arrays have shape (rows, width); entries past ``count[row]`` are padding
    (value +inf, distance a large sentinel).
    """

    values: np.ndarray
    distance: np.ndarray
    """Fewest moves to each value."""
    family: np.ndarray
    """STRAIGHT, VIA_LOWER or VIA_UPPER: how the fewest-moves path goes."""
    count: np.ndarray
    """(rows,) number of valid entries."""


def axis_lattices(
    start: np.ndarray, lower: float, upper: float, step: float, horizon: int
) -> AxisLattices:
    """Reachable values within ``horizon`` moves of one control, for every row's start."""
    start = np.asarray(start, dtype=np.float64)
    n = len(start)
    j = np.arange(-horizon, horizon + 1, dtype=np.float64)
    m = np.arange(0, horizon + 1, dtype=np.float64)
    tolerance = step / _KEY_RESOLUTION
    a = np.ceil((start - lower) / step - 1e-9)  # moves until the lower bound
    b = np.ceil((upper - start) / step - 1e-9)
    values = np.concatenate(
        [
            start[:, None] + j * step,
            lower + np.broadcast_to(m * step, (n, len(m))),
            upper - np.broadcast_to(m * step, (n, len(m))),
        ],
        axis=1,
    )
    distance = np.concatenate(
        [np.broadcast_to(np.abs(j), (n, len(j))), a[:, None] + m, b[:, None] + m], axis=1
    )
    family = np.repeat(
        np.array([STRAIGHT, VIA_LOWER, VIA_UPPER], dtype=np.int8), [len(j), len(m), len(m)]
    )
    valid = (values >= lower - tolerance) & (values <= upper + tolerance) & (distance <= horizon)
    values = np.clip(values, lower, upper)
    key = np.where(valid, np.round((values - lower) / step * _KEY_RESOLUTION), np.inf)
    # sort each row by (key, distance): the first entry of every key is its fewest moves
    order = np.lexsort((distance, key), axis=1)
    key = np.take_along_axis(key, order, axis=1)
    first = np.ones_like(valid)
    first[:, 1:] = key[:, 1:] != key[:, :-1]
    keep = first & np.isfinite(key)
    # compact the kept entries to the left of each row
    rank = np.argsort(~keep, axis=1, kind="stable")
    order = np.take_along_axis(order, rank, axis=1)
    count = keep.sum(axis=1)
    width = int(count.max())
    order = order[:, :width]
    padding = np.arange(width) >= count[:, None]
    sorted_values = np.where(padding, np.inf, np.take_along_axis(values, order, axis=1))
    sorted_distance = np.where(
        padding, horizon + 1, np.take_along_axis(distance, order, axis=1)
    ).astype(np.int32)
    sorted_family = np.where(padding, STRAIGHT, family[order]).astype(np.int8)
    return AxisLattices(sorted_values, sorted_distance, sorted_family, count)


def axis_directions(
    family: int, distance: int, start: float, value: float, bounds: tuple[float, float],
    step: float, moves: int,
) -> np.ndarray:  # fmt: skip
    """Per-move directions (-1, 0, +1) along one control to reach ``value``, front-loaded.

    The caller turns directions into changes with the plant's own clipping, which makes
    the move that reaches a bound shorter than a step.
    """
    path = np.zeros(moves, dtype=np.int8)
    if family == STRAIGHT:
        path[:distance] = 1 if value > start else -1
        return path
    lower, upper = bounds
    if family == VIA_LOWER:
        to_bound = int(np.ceil((start - lower) / step - 1e-9))
        path[:to_bound], path[to_bound:distance] = -1, 1
    else:
        to_bound = int(np.ceil((upper - start) / step - 1e-9))
        path[:to_bound], path[to_bound:distance] = 1, -1
    return path
