"""The fewest-moves planner on the fitted model: the yardstick for every trained policy.

Every plan says whether its move count is *proven minimal* (``Plan.exact``).

Discrete moves
    A move shifts every control by -1, 0 or +1 step at once (clipped at its bounds), so
    ``D`` moves reach exactly the product of each control's values reachable in at most
    ``D`` moves of its own (:mod:`env.lattice`): the lattice ball of radius ``D``. The
    fewest moves is the smallest ``D`` whose ball holds a setting with a predicted
    reading in the band. The planner brackets that ``D`` from both sides:

    * **above**, by a greedy path: each move shifts every control one step in the
      direction that brings the reading towards the band (the corner of the reachable
      box that changes it fastest), and the move that would cross the band tries the
      sub-moves that keep some controls still, to land inside. A path is a plan, so its
      length is an upper bound; on smooth plants it is usually the minimum already.
    * **below**, by the continuous relaxation: every lattice point of the ball lies in
      the box ``u0 +/- D * step`` (within bounds); where rigorous bounds of the model
      over that box miss the band (:mod:`env.bounds`), no move sequence of length ``D``
      (lattice or continuous) can work.
    * **exactly**, by branch and bound over the ball's sub-boxes (:mod:`env.search`):
      sub-boxes whose bounds miss the band are discarded, and lattice points of the
      remaining ones are evaluated; the search either finds a setting in the band (a
      plan of at most ``D`` moves) or discards the whole ball (a proof that ``D`` moves
      are not enough). The planner asks about one move less than its best plan: a proof
      ends the row, a setting found is a shorter plan and the question repeats
      (bisecting after two such surprises). The answer is minimal once the depth below
      the best plan is proven infeasible. All rows are searched together, in numpy
      batches.

    Each row has a budget of sub-boxes (``budget``); a row that exhausts it keeps the
    shortest plan found, labelled ``exact=False``, or, having found none, falls back to
    a beam search (``plan_beam``, also ``exact=False``). A row whose every depth up to
    the horizon is proven infeasible is unreachable, and that is exact too.

    **Which setting**: the move count is what is guaranteed minimal. The planner takes
    the setting its greedy path or search reached, then moves each control in turn
    back towards its start as far as the band allows (fewest moves of its own, then
    the reading nearest the band centre), and moves every control straight there
    (front-loaded). This prefers plans that move less, but it is one greedy pass:
    unlike the previous exhaustive planner it does not guarantee the least total
    movement among equally short plans.

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

Both assume the noise-free model. A plant with inertia (a lag identified from a log or
a hand-set ``response_rate < 1``, a dead time) is planned by :mod:`env.lagged_planner`:
the count is then the move from which the temperature stays in the band, bracketed by
simulated plans and a relaxation, exact where they meet.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from env.continuous_planner import continuous_plans
from env.discrete_planner import BEAM_WIDTH, discrete_plans, plan_beam
from env.lagged_planner import lagged_plans
from env.plans import APPROXIMATE, METHOD_BOX, METHOD_LATTICE, Plan, PlanningRows
from env.plant import Plant

__all__ = [
    "APPROXIMATE",
    "BEAM_WIDTH",
    "DEFAULT_BUDGET",
    "METHOD_BOX",
    "METHOD_LATTICE",
    "Plan",
    "plan_beam",
    "plan_continuous",
    "plan_discrete",
    "plan_rows",
    "rows_planned",
]

DEFAULT_BUDGET = 20_000
"""Sub-boxes the branch and bound may bound per row before it gives up on a proof."""

_rows_planned = 0


def rows_planned() -> int:
    """Start rows this process has planned so far (every :func:`plan_rows` call counts).

    Planning is the one expensive step that a saved yardstick exists to avoid, so the
    count is what shows that a trial or a resumed run *loaded* its yardstick: trials
    report it with their results (0 when nothing was planned again).
    """
    return _rows_planned


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
    pending: np.ndarray | None = None,
) -> list[Plan]:
    """Plans for many start states at once (``mode``: "discrete" or "continuous").

    Batching is what makes the planner fast: the searches of all rows share numpy
    calls. Any action mode other than "continuous" plans discrete moves. Settings
    outside the control bounds are clipped into them first. ``pending``: with a dead
    time, the settings in flight (n, dead_time, k), oldest first (default: none).
    """
    global _rows_planned
    temps = np.asarray(temperatures, dtype=np.float64).reshape(-1)
    _rows_planned += len(temps)
    start = np.asarray(controls, dtype=np.float64).reshape(len(temps), plant.n_controls)
    # Start rows lie within the bounds; a setting outside is planned from its clipped
    # value (the first move of any control clips it there anyway).
    start = np.clip(start, plant.lower, plant.upper)
    horizon = plant.settings.horizon if max_moves is None else int(max_moves)
    if plant.lagging:
        queued = plant.no_pending(start) if pending is None else np.asarray(pending, np.float64)
        return lagged_plans(plant, temps, start, queued, mode, horizon, budget)
    rows = PlanningRows(plant, temps, start, horizon, budget)
    discrete = discrete_plans(rows)
    if mode != "continuous":
        return discrete
    return continuous_plans(rows, discrete)
