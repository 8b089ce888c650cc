"""Beam search for fast-settling move sequences on a lagging plant, all rows at once.

:mod:`env.lagged_planner` needs good plans (upper bounds) on plants with a lag and a
dead time. The fastest way into the band and to stay there is often to push harder than
the final setting and come back in time; which controls, how far and when depends on
the plant. This search grows move sequences one move at a time (every direction of
every control, ``3**k`` up to 3 controls, else each control alone, all together and the
model's steepest corners) and keeps the ``BEAM_WIDTH`` best per row, judging each by the
whole trajectory it leads to if every setting is then kept:

1. the settling move (first reading from which all readings stay in the band),
2. then the summed distance to the band over the horizon (how close it runs),
3. then the actuations so far.

"Then kept" has a cheap exact form: with the settings fixed, the moves in flight drive
the next ``D`` readings and the steady state of the last setting all later ones, so one
model evaluation per candidate prices its whole future. A row stops once its moves
reach the best settling move found (a later move cannot bring an earlier reading into
the band). The result is a plan, not a proof: :mod:`env.lagged_planner` compares it
with the relaxation's bound.
"""

from __future__ import annotations

import numpy as np

from env.actions import candidate_directions, direction_table
from env.bounds import box_bounder
from env.plant import Plant

BEAM_WIDTH = 4
"""Sequences kept per row and depth (4 did as well as 150 on generated plants)."""
_FULL_TABLE_CONTROLS = 3


def search_directions(plant: Plant, start: np.ndarray) -> np.ndarray:
    """(n, m, k) directions tried per row (see the module docstring)."""
    k = plant.n_controls
    n = len(start)
    if k <= _FULL_TABLE_CONTROLS:
        table = direction_table(k).astype(np.float64)
        return np.broadcast_to(table, (n, len(table), k))
    base = candidate_directions(k).astype(np.float64)
    corner = np.sign(box_bounder(plant.model)(start, start).slope)
    return np.concatenate(
        [np.broadcast_to(base, (n, len(base), k)), corner[:, None], -corner[:, None]], axis=1
    )


def _tail(
    plant: Plant,
    temperature: np.ndarray,
    queue_f: np.ndarray,
    final_f: np.ndarray,
    offset: np.ndarray,
    steps: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Readings after the current one with every setting kept: (last index outside
    the band among them, -1 if none; summed distance to the band).

    The queued settings drive the first readings one by one; after them the drive is
    constant and the readings approach it geometrically, computed in one go.
    """
    low, high = plant.band
    a = plant.rate
    t = temperature.copy()
    last_out = np.full(len(t), -1)
    distance = np.zeros(len(t))
    queued = min(queue_f.shape[1], steps)
    for i in range(queued):
        t = t + a * (queue_f[:, i] + offset - t)
        outside = (t < low) | (t > high)
        last_out = np.where(outside, i, last_out)
        distance += np.abs(plant.distance_to_band(t))
    rest = steps - queued
    if rest > 0:
        target = final_f + offset
        decay = (1.0 - a) ** np.arange(1, rest + 1)
        path = target[:, None] + (t - target)[:, None] * decay[None, :]
        gap = np.where(path < low, low - path, np.maximum(path - high, 0.0))
        outside = gap > 0.0
        any_out = outside.any(axis=1)
        last = rest - 1 - np.argmax(outside[:, ::-1], axis=1)
        last_out = np.where(any_out, queued + last, last_out)
        distance += gap.sum(axis=1)
    return last_out, distance


def beam_plans(
    plant: Plant,
    temps: np.ndarray,
    start: np.ndarray,
    pending: np.ndarray,
    horizon: int,
    incumbent: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Best sequences found per row: (deltas (n, horizon, k), settling move per row,
    horizon + 1 where none settles). ``incumbent``: settling moves already known."""
    n, k, d = len(temps), plant.n_controls, plant.dead_time
    low, high = plant.band
    offset = plant.offset_for(temps, start)
    directions = search_directions(plant, start)
    m = directions.shape[1]
    # beam state per (row, slot); the moves are kept as parent pointers per depth
    u = start[:, None, :].copy()
    queue = (
        plant.model.predict(pending.reshape(-1, k)).reshape(n, 1, d) if d else np.zeros((n, 1, 0))
    )
    temp = temps[:, None].copy()
    last_out = np.where(plant.in_band(temps), -1, 0)[:, None]
    prefix = np.abs(plant.distance_to_band(temps))[:, None]
    acts = np.zeros((n, 1), np.int64)
    parents: list[np.ndarray] = []
    moves: list[np.ndarray] = []
    best_settle = np.asarray(incumbent, np.int64).copy()
    best_at = np.full((n, 2), -1)  # (depth, slot) of each row's best sequence's last move
    active = np.arange(n)
    for depth in range(horizon):
        active = active[best_settle[active] > depth]
        if not len(active):
            break
        width = u.shape[1]
        rows = np.repeat(active, width * m)
        slot = np.tile(np.repeat(np.arange(width), m), len(active))
        move = np.tile(np.arange(m), len(active) * width)
        cu = u[rows, slot]
        new_u = plant.apply_delta(cu, directions[rows, move] * plant.steps)
        new_f = plant.model.predict(new_u)
        cq = queue[rows, slot]
        drive = cq[:, 0] if d else new_f
        new_q = np.concatenate([cq[:, 1:], new_f[:, None]], axis=1) if d else cq
        t1 = temp[rows, slot] + plant.rate * (drive + offset[rows] - temp[rows, slot])
        out1 = (t1 < low) | (t1 > high)
        lo1 = np.where(out1, depth + 1, last_out[rows, slot])
        dist = prefix[rows, slot] + np.abs(plant.distance_to_band(t1))
        tail_out, tail_dist = _tail(plant, t1, new_q, new_f, offset[rows], horizon - depth - 1)
        settle = np.where(tail_out >= 0, depth + 2 + tail_out, lo1) + 1
        changed = np.any(np.abs(new_u - cu) > 1e-12 * np.maximum(1.0, np.abs(cu)), axis=1)
        act = acts[rows, slot] + changed
        order = np.lexsort((act, dist + tail_dist, settle, rows))
        first = np.searchsorted(rows[order], active)
        winner = order[first]
        improve = settle[winner] < best_settle[active]
        best_settle[active[improve]] = settle[winner[improve]]
        rank = np.arange(len(order)) - np.repeat(first, np.diff(np.append(first, len(order))))
        keep = order[rank < BEAM_WIDTH]
        keep_rows, slots = rows[keep], rank[rank < BEAM_WIDTH]
        new_width = min(BEAM_WIDTH, width * m)
        parent = np.zeros((n, new_width), np.intp)
        delta = np.zeros((n, new_width, k))
        parent[keep_rows, slots] = slot[keep]
        delta[keep_rows, slots] = new_u[keep] - cu[keep]
        parents.append(parent)
        moves.append(delta)
        # the winner is the first kept sequence of its row: slot 0 at this depth
        best_at[active[improve]] = (depth, 0)
        u = np.zeros((n, new_width, k))
        queue = np.zeros((n, new_width, d))
        temp = np.zeros((n, new_width))
        last_out = np.zeros((n, new_width), np.int64)
        prefix = np.zeros((n, new_width))
        acts = np.zeros((n, new_width), np.int64)
        u[keep_rows, slots] = new_u[keep]
        queue[keep_rows, slots] = new_q[keep]
        temp[keep_rows, slots] = t1[keep]
        last_out[keep_rows, slots] = lo1[keep]
        prefix[keep_rows, slots] = dist[keep]
        acts[keep_rows, slots] = act[keep]
    return _paths(parents, moves, best_at, n, horizon, k), best_settle


def _paths(
    parents: list[np.ndarray], moves: list[np.ndarray], best_at: np.ndarray, n: int,
    horizon: int, k: int,
) -> np.ndarray:  # fmt: skip
    """Each row's best sequence, walked back from its last move through the parents."""
    out = np.zeros((n, horizon, k))
    rows = np.flatnonzero(best_at[:, 0] >= 0)
    slot = best_at[rows, 1].copy()
    depth = best_at[rows, 0].copy()
    for level in range(int(depth.max(initial=-1)), -1, -1):
        here = depth >= level
        r, sl = rows[here], slot[here]
        out[r, level] = moves[level][r, sl]
        slot[here] = parents[level][r, sl]
    return out
