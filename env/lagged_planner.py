"""Fewest moves into the band *and staying there* on a plant with a lag or dead time.

On a plant without inertia the temperature is the steady state of the settings, so the
fewest moves to a setting whose steady state is in the band is the answer (and it is
proven minimal, :mod:`env.planner`). With a lag (rate ``a`` < 1) and a dead time ``D``
the temperature travels: it enters the band some moves after the right settings are
made, it may cross the band and leave it, and moves in flight keep acting for ``D``
moves. What counts is the **settling move**: the first reading from which every reading
to the horizon's end is inside the band (noise-free, on the model). The planner brackets
it from both sides:

* **above**, by plans simulated on the model (the count is the simulation's):
  the steady-state plan (fewest moves to a setting whose steady state is in the band,
  the proven planner run on the plant without lag) and then "keep"; *overdrive*
  variants, which first push every control the way that heats (or cools) fastest for
  ``s`` moves, hold ``h`` and then follow the steady-state plan from there (a furnace
  fired harder for a while gets there sooner); and the best sequence of a beam search
  over single moves (:mod:`env.lagged_search`). The earliest settling move wins; among
  equals the fewest **actuations** (moves that change a setting), then the least
  movement.
* **below**, by a relaxation: after ``j`` of the agent's moves its settings lie in the
  box ``u0 +/- j * step``, the moves in flight are known, and the reading after ``m``
  moves is a positive combination of the start and the steady states along the way,
  so rigorous bounds of the model over those boxes (:mod:`env.bounds`) give an interval
  that every possible reading ``T[m]`` lies in. A move from which some later reading
  cannot be in the band is proven too early.

A plan is labelled **exact** when the two meet (its settling move is proven minimal),
or when no reading can settle within the horizon; otherwise it is the best found,
labelled approximate. The relaxation lets every move take the box's most helpful
corner independently of the next one, which is what pushing hard achieves for entering
but not for staying: on slow plants far from the band the proof often falls short.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from env.bounds import box_bounder
from env.lagged_search import beam_plans
from env.plans import APPROXIMATE, Plan
from env.plant import Plant

OVERDRIVE_MOVES = tuple(range(1, 9))
"""Overdrive variants push for these many moves (either way) ..."""
OVERDRIVE_HOLDS = (0, 2)
"""... and hold there for these many moves before coming back."""
METHOD_LAGGED = "lag plan"


@functools.lru_cache(maxsize=8)
def _steady_twin_cached(plant: Plant) -> Plant:
    model = plant.model.without_dynamics()
    settings = dataclasses.replace(plant.settings, response_rate=1.0)
    return dataclasses.replace(plant, model=model, settings=settings)


def steady_twin(plant: Plant) -> Plant:
    """The same plant without lag or dead time (its steady states are the same)."""
    return _steady_twin_cached(plant)


def settle_index(inside: np.ndarray) -> np.ndarray:
    """Per row, the first index from which every entry to the end is True (-1: none)."""
    outside = ~inside
    last_out = np.where(
        outside.any(axis=-1), inside.shape[-1] - 1 - np.argmax(outside[..., ::-1], axis=-1), -1
    )
    settled = last_out + 1
    return np.where(settled <= inside.shape[-1] - 1, settled, -1)


def simulate_lagged(
    plant: Plant,
    temps: np.ndarray,
    start: np.ndarray,
    pending: np.ndarray,
    deltas: np.ndarray,
    horizon: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free roll-out of ``deltas`` (n, moves, k), then "keep", for every row.

    Returns the settings (n, horizon + 1, k) and the readings (n, horizon + 1).
    """
    offset = plant.offset_for(temps, start)
    u, t, q = start.copy(), temps.copy(), pending.copy()
    path_u, path_t = [u.copy()], [t.copy()]
    for move in range(horizon):
        if move < deltas.shape[1]:
            u = plant.apply_delta(u, deltas[:, move])
        t, q = plant.advance(t, q, u, offset)
        path_u.append(u.copy())
        path_t.append(t.copy())
    return np.stack(path_u, axis=1), np.stack(path_t, axis=1)


def settle_lower_bound(
    plant: Plant, temps: np.ndarray, start: np.ndarray, pending: np.ndarray, horizon: int
) -> np.ndarray:
    """Per row, the earliest move from which the readings *can* all be in the band
    (horizon + 1: none can settle within the horizon); see the module docstring."""
    n, d, a = len(temps), plant.dead_time, plant.rate
    offset = plant.offset_for(temps, start)
    moves = max(horizon - d, 0)
    bounder = box_bounder(plant.model)
    if moves:
        rows = np.repeat(np.arange(n), moves)
        reach = np.tile(np.arange(1, moves + 1), n)[:, None] * plant.steps
        lower = np.maximum(plant.lower, start[rows] - reach)
        upper = np.minimum(plant.upper, start[rows] + reach)
        bounds = bounder(lower, upper)
        f_lo, f_hi = bounds.low.reshape(n, moves), bounds.high.reshape(n, moves)
    low, high = plant.band
    slack = 1e-9 * max(1.0, abs(low), abs(high))
    t_lo, t_hi = temps.astype(np.float64).copy(), temps.astype(np.float64).copy()
    possible = np.zeros((n, horizon + 1), bool)
    possible[:, 0] = (t_lo <= high + slack) & (t_hi >= low - slack)
    for m in range(horizon):
        if m < d:
            e_lo = e_hi = plant.model.predict(pending[:, m]) + offset
        else:
            e_lo, e_hi = f_lo[:, m - d] + offset, f_hi[:, m - d] + offset
        t_lo = t_lo + a * (e_lo - t_lo)
        t_hi = t_hi + a * (e_hi - t_hi)
        possible[:, m + 1] = (t_lo <= high + slack) & (t_hi >= low - slack)
    index = settle_index(possible)
    return np.where(index < 0, horizon + 1, index)


def _push_directions(plant: Plant, start: np.ndarray) -> np.ndarray:
    """Per row, each control's direction that raises the steady state (the model's slope
    at the start): pushing along it heats fastest, against it cools fastest."""
    slope = box_bounder(plant.model)(start, start).slope
    return np.sign(slope)


def _sequences(plans: list[Plan], n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Plans' deltas as one array (n, width, k) and each plan's length."""
    width = max(1, max(len(p.deltas) for p in plans))
    out = np.zeros((n, width, k))
    lengths = np.zeros(n, np.intp)
    for i, p in enumerate(plans):
        out[i, : len(p.deltas)] = p.deltas
        lengths[i] = len(p.deltas)
    return out, lengths


def _candidates(
    plant: Plant,
    temps: np.ndarray,
    start: np.ndarray,
    mode: str,
    horizon: int,
    budget: int,
) -> np.ndarray:
    """(n, c, horizon, k) steady and overdrive sequences (see the module docstring)."""
    from env.planner import plan_rows  # the steady sub-problem is the static planner's

    n, k = len(temps), plant.n_controls
    twin = steady_twin(plant)
    offset = plant.offset_for(temps, start)
    pushes = [(0, 1.0)] + [(s, sign) for s in OVERDRIVE_MOVES for sign in (1.0, -1.0)]
    direction = _push_directions(plant, start)
    pushed = np.concatenate(
        [plant.apply_delta(start, s * sign * direction * plant.steps) for s, sign in pushes]
    )
    offsets = np.tile(offset, len(pushes))
    steady = plan_rows(twin, plant.model.predict(pushed) + offsets, pushed, mode, horizon, budget)
    follow, _ = _sequences(steady, len(pushed), k)
    follow = follow.reshape(len(pushes), n, -1, k)
    variants = [(p, h) for p, (s, _) in enumerate(pushes) for h in (OVERDRIVE_HOLDS if s else (0,))]
    out = np.zeros((n, len(variants), horizon, k))
    for c, (p, h) in enumerate(variants):
        s, sign = pushes[p]
        out[:, c, : min(s, horizon)] = (sign * direction * plant.steps)[:, None, :]
        begin = s + h
        length = max(0, min(follow.shape[2], horizon - begin))
        out[:, c, begin : begin + length] = follow[p, :, :length]
    return out


def lagged_plans(
    plant: Plant,
    temps: np.ndarray,
    start: np.ndarray,
    pending: np.ndarray,
    mode: str,
    horizon: int,
    budget: int,
) -> list[Plan]:
    """Plans for a lagging plant (see the module docstring)."""
    n = len(temps)
    family = _candidates(plant, temps, start, mode, horizon, budget)
    searched, _ = beam_plans(plant, temps, start, pending, horizon, np.full(n, horizon + 1))
    sequences = np.concatenate([family, searched[:, None]], axis=1)
    bound = settle_lower_bound(plant, temps, start, pending, horizon)
    plans = []
    for first in range(0, n, _CHUNK_ROWS):
        chunk = np.arange(first, min(n, first + _CHUNK_ROWS))
        plans += _best_plans(plant, temps, start, pending, sequences[chunk], chunk, bound, horizon)
    return plans


_CHUNK_ROWS = 64
"""Rows whose candidates are simulated together (bounds the memory of the batch)."""


def _best_plans(
    plant: Plant,
    temps: np.ndarray,
    start: np.ndarray,
    pending: np.ndarray,
    sequences: np.ndarray,
    chunk: np.ndarray,
    bound: np.ndarray,
    horizon: int,
) -> list[Plan]:
    """Simulate every candidate of the rows in ``chunk``; package each row's best."""
    n, c, _, k = sequences.shape
    rows = np.repeat(chunk, c)
    path_u, path_t = simulate_lagged(
        plant,
        temps[rows],
        start[rows],
        pending[rows],
        sequences.reshape(n * c, horizon, k),
        horizon,
    )
    change = np.abs(np.diff(path_u, axis=1))
    moved = change > 1e-12 * np.maximum(1.0, np.abs(path_u[:, 1:]))
    actuations = moved.any(axis=2).sum(axis=1).reshape(n, c)
    movement = (change / plant.steps).sum(axis=(1, 2)).reshape(n, c)
    settled = settle_index(plant.in_band(path_t)).reshape(n, c)
    key = np.where(settled < 0, horizon + 1, settled)
    best = np.lexsort((movement, actuations, key), axis=-1)[:, 0]
    plans = []
    for i, row in enumerate(chunk):
        j = i * c + best[i]
        m = int(key[i, best[i]])
        last = np.flatnonzero(moved[j].any(axis=1))
        length = int(last[-1]) + 1 if len(last) else 0
        if m > horizon:
            exact = bool(bound[row] > horizon)
            plans.append(
                Plan(None, np.zeros((0, k)), start[row][None].copy(), temps[row : row + 1].copy(),
                     exact, METHOD_LAGGED if exact else f"{METHOD_LAGGED} ({APPROXIMATE})")
            )  # fmt: skip
            continue
        exact = bool(m == bound[row])
        end = max(m, length)
        plans.append(
            Plan(
                m,
                np.diff(path_u[j, : length + 1], axis=0),
                path_u[j, : end + 1],
                path_t[j, : end + 1],
                exact,
                METHOD_LAGGED if exact else f"{METHOD_LAGGED} ({APPROXIMATE}: not proven minimal)",
            )
        )
    return plans
