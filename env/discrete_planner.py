"""Fewest discrete moves: greedy upper bound, relaxation, branch and bound per depth.

See :mod:`env.planner` for the method and what is guaranteed.
"""

from __future__ import annotations

import itertools

import numpy as np

from env.actions import candidate_directions
from env.lattice import AxisLattices, axis_directions, axis_lattices
from env.plans import (
    APPROXIMATE,
    METHOD_LATTICE,
    DepthBracket,
    Plan,
    PlanningRows,
    make_plans,
)
from env.plant import Plant
from env.search import FOUND, LatticeBoxes, search

BEAM_WIDTH = 64
"""States kept per depth by the approximate (beam) planner."""

_LANDING_AXES = 5
"""Controls whose every keep/move combination the greedy path tries when landing."""


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


def _greedy_paths(rows: PlanningRows) -> tuple[np.ndarray, np.ndarray]:
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


def _discrete_search(rows: PlanningRows) -> tuple[DepthBracket, list[AxisLattices], np.ndarray]:
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
    bracket = DepthBracket.start(rows.proven_too_few(good), good)
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


def _trim_movement(
    rows: PlanningRows, lattices: list[AxisLattices], chosen: np.ndarray
) -> np.ndarray:
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
    rows: PlanningRows, lattices: list[AxisLattices], chosen: np.ndarray, moves: np.ndarray
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


def discrete_plans(rows: PlanningRows) -> list[Plan]:
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
    plans = make_plans(rows, directions * plant.steps, exact, methods, bracket.good)
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
    rows = PlanningRows(plant, np.array([temperature]), controls[None], max_moves, 0)
    if plant.in_band(temperature):
        return make_plans(rows, np.zeros((1, 0, k)), np.array([True]), [method])[0]
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
            return make_plans(rows, history[:1], np.array([False]), [method])[0]
    return make_plans(rows, np.zeros((1, 0, k)), np.array([False]), [method])[0]
