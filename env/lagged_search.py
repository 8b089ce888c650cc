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

BEAM_WIDTH = 8
"""Sequences kept per row and depth (8 matched a width of 150 on tested plants)."""
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
    the band among them, -1 if none; summed distance to the band)."""
    low, high = plant.band
    a = plant.rate
    t = temperature.copy()
    last_out = np.full(len(t), -1)
    distance = np.zeros(len(t))
    for i in range(steps):
        drive = queue_f[:, i] if i < queue_f.shape[1] else final_f
        t = t + a * (drive + offset - t)
        outside = (t < low) | (t > high)
        last_out = np.where(outside, i, last_out)
        distance += np.abs(plant.distance_to_band(t))
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
    # beam state per (row, slot)
    u = start[:, None, :].copy()
    queue = (
        plant.model.predict(pending.reshape(-1, k)).reshape(n, 1, d) if d else np.zeros((n, 1, 0))
    )
    temp = temps[:, None].copy()
    last_out = np.where(plant.in_band(temps), -1, 0)[:, None]
    prefix = np.abs(plant.distance_to_band(temps))[:, None]
    acts = np.zeros((n, 1), np.int64)
    paths = np.zeros((n, 1, horizon, k))
    best_settle = np.asarray(incumbent, np.int64).copy()
    best_path = np.zeros((n, horizon, k))
    found = np.zeros(n, bool)
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
        lo = np.where(out1, depth + 1, last_out[rows, slot])
        dist = prefix[rows, slot] + np.abs(plant.distance_to_band(t1))
        tail_out, tail_dist = _tail(plant, t1, new_q, new_f, offset[rows], horizon - depth - 1)
        lo = np.where(tail_out >= 0, depth + 2 + tail_out, lo)
        settle = lo + 1
        changed = np.any(np.abs(new_u - cu) > 1e-12 * np.maximum(1.0, np.abs(cu)), axis=1)
        act = acts[rows, slot] + changed
        key = np.stack([settle, dist + tail_dist, act], axis=1)
        # per row: the best complete plan, then the beam
        order = np.lexsort((key[:, 2], key[:, 1], key[:, 0], rows))
        rows_sorted = rows[order]
        first = np.searchsorted(rows_sorted, active)
        winner = order[first]
        improve = settle[winner] < best_settle[active]
        for i, w in zip(active[improve], winner[improve], strict=True):
            best_settle[i] = settle[w]
            best_path[i] = paths[i, slot[w]]
            best_path[i, depth] = new_u[w] - u[i, slot[w]]
            found[i] = True
        rank = np.arange(len(order)) - np.repeat(first, np.diff(np.append(first, len(order))))
        keep = order[rank < BEAM_WIDTH]
        keep_rows = rows[keep]
        slots = rank[rank < BEAM_WIDTH]
        width = min(BEAM_WIDTH, width * m)
        u_next = np.zeros((n, width, k))
        q_next = np.zeros((n, width, d))
        temp_next = np.zeros((n, width))
        lo_next = np.zeros((n, width), np.int64)
        prefix_next = np.zeros((n, width))
        acts_next = np.zeros((n, width), np.int64)
        paths_next = np.zeros((n, width, horizon, k))
        u_next[keep_rows, slots] = new_u[keep]
        q_next[keep_rows, slots] = new_q[keep]
        temp_next[keep_rows, slots] = t1[keep]
        lo_next[keep_rows, slots] = np.where(out1[keep], depth + 1, last_out[keep_rows, slot[keep]])
        prefix_next[keep_rows, slots] = dist[keep]
        acts_next[keep_rows, slots] = act[keep]
        paths_next[keep_rows, slots] = paths[keep_rows, slot[keep]]
        paths_next[keep_rows, slots, depth] = new_u[keep] - cu[keep]
        u, queue, temp, last_out = u_next, q_next, temp_next, lo_next
        prefix, acts, paths = prefix_next, acts_next, paths_next
    return best_path, np.where(found, best_settle, horizon + 1)
