"""Fewest continuous moves: box relaxation, branch and bound, verified straight lines.

See :mod:`env.planner` for the method and what is guaranteed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from env.plans import (
    APPROXIMATE,
    METHOD_BOX,
    DepthBracket,
    Plan,
    PlanningRows,
    make_plans,
    simulate,
)
from env.plant import Plant
from env.search import FOUND, OUT_OF_BUDGET, ContinuousBoxes, search

_PROBE_MARGIN = 1e-3
"""Continuous probes must land this fraction of the band width inside it, so that the
float32 action encoding of the verified plan cannot push the end reading out."""


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


def continuous_plans(rows: PlanningRows, discrete: list[Plan]) -> list[Plan]:
    plant, horizon = rows.plant, rows.horizon
    discrete_moves = np.array([horizon + 1 if p.moves is None else p.moves for p in discrete])
    bracket = DepthBracket.start(
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
            _, _, first = simulate(plant, rows.temps[r], rows.start[r], deltas, horizon)
            verified = (first > 0) & (first <= depth[q])
            for i in np.flatnonzero(verified & (first < bracket.good[r])):
                deltas_found[int(r[i])] = deltas[i]
            reach[q[verified]] = first[verified]
            # a plan that fails its check ends the row's search: not proven either way
            status[q[~verified]] = OUT_OF_BUDGET
        bracket.record(open_, depth, status, reach)
    return _continuous_results(rows, discrete, bracket, deltas_found)


def _continuous_results(
    rows: PlanningRows,
    discrete: list[Plan],
    bracket: DepthBracket,
    deltas_found: dict[int, np.ndarray],
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
        simulated = make_plans(rows, deltas, exact, methods, bracket.good)
        for r in which:
            plans[r] = simulated[r]
    for r in range(len(rows)):
        if r in deltas_found:
            continue
        # the discrete plan is the answer; proven if the box one move shorter is
        plan = discrete[r]
        proven = bool(exact[r]) and not (rows.lagged and plan.moves != 0)
        label = plan.method
        if not proven and APPROXIMATE not in label:
            label = f"{label} ({APPROXIMATE} for continuous moves)"
        plans[r] = dataclasses.replace(plan, exact=proven, method=label)
    return plans
