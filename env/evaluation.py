"""Evaluate any policy from many start states at once: a pure function, no Ray.

The same function scores trained policies during Tune runs (to choose checkpoints),
in ``rllib-project evaluate``, and in the report, so the numbers in all three agree.
All start states are rolled out together as one batch through :class:`env.plant.Plant`,
the same dynamics the Gymnasium environment steps, so hundreds of rows cost one
batched policy call per move.

Metrics per episode (horizon H):

* ``moves_to_band``: index of the reading from which every reading to the horizon's
  end is inside the band (0 = started inside and stayed), NaN if the episode ends
  outside. On a plant without inertia a policy that enters and holds gets the index of
  its first reading inside; one that leaves and comes back is counted from the last
  entry. On a lagging plant, a reading that passes through the band on its way
  elsewhere does not count as arriving: what counts is where it stays (the planner's
  yardstick is the same, :mod:`env.lagged_planner`);
* ``actuations``: moves that changed at least one setting (an operator's
  interventions: a policy that saws at the valves scores high);
* ``success``: reached the band within the horizon *and* ended inside it;
* ``time_in_band``: fraction of the H readings after a move that are in the band;
* ``return``: sum of the environment's rewards.

With a dead time the settings in flight at each start are part of the start state
(``pending``; :meth:`env.plant.Plant.start_pending` for data rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from env.actions import ActionCodec
from env.observer import DisturbanceObserver, ObserverState
from env.plant import Plant


class PlantStepper(Protocol):
    """Another plant to close the loop on (e.g. the simulator a log came from): it takes
    the settings made at each move (n, k), in force from now on, and returns the next
    readings (n,). Its state at the start must match the start states given."""

    def step(self, controls: np.ndarray) -> np.ndarray: ...


class BatchPolicy(Protocol):
    """A policy acting on a batch of states.

    ``obs`` is the environment's observation (what RL policies see); model-based
    baselines may also read the physical ``temperatures`` and ``controls``. On a plant
    with a dead time, ``reset`` also gets ``pending=`` (n, dead_time, k): the settings
    in flight at the start, oldest first.
    """

    name: str

    def reset(self, temperatures: np.ndarray, controls: np.ndarray) -> None: ...

    def act(
        self, obs: np.ndarray, temperatures: np.ndarray, controls: np.ndarray, t: int
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class Rollouts:
    """Trajectories of a batch of episodes."""

    temperatures: np.ndarray
    """(n, H + 1) readings, the start included."""
    controls: np.ndarray
    """(n, H + 1, k) settings, the start included."""
    rewards: np.ndarray
    """(n, H) rewards."""
    in_band: np.ndarray
    """(n, H + 1) whether each reading is inside the band."""

    @property
    def moves_to_band(self) -> np.ndarray:
        """Index from which every reading is in the band; NaN if it ends outside."""
        stays = np.logical_and.accumulate(self.in_band[:, ::-1], axis=1)[:, ::-1]
        settled = stays.argmax(axis=1).astype(np.float64)
        return np.where(self.in_band[:, -1], settled, np.nan)

    @property
    def first_entry(self) -> np.ndarray:
        """Index of the first reading inside the band; NaN if never."""
        reached = self.in_band.any(axis=1)
        return np.where(reached, self.in_band.argmax(axis=1).astype(np.float64), np.nan)

    @property
    def actuations(self) -> np.ndarray:
        """Moves that changed at least one setting, per episode."""
        change = np.abs(np.diff(self.controls, axis=1))
        return (
            (change > 1e-12 * np.maximum(1.0, np.abs(self.controls[:, 1:]))).any(axis=2).sum(axis=1)
        )

    @property
    def success(self) -> np.ndarray:
        return self.in_band.any(axis=1) & self.in_band[:, -1]

    @property
    def time_in_band(self) -> np.ndarray:
        return self.in_band[:, 1:].mean(axis=1)

    @property
    def returns(self) -> np.ndarray:
        return self.rewards.sum(axis=1)


def start_states(plant: Plant, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Temperatures and controls of data rows (default: every valid start row); with a
    dead time see :func:`start_pending` for the rest of the state."""
    index = plant.start_indices if rows is None else np.asarray(rows, dtype=np.intp)
    return plant.rows.state[index].copy(), plant.start_controls(index)


def start_pending(plant: Plant, rows: np.ndarray | None = None) -> np.ndarray:
    """(n, dead_time, k) settings in flight at the start of data rows (oldest first)."""
    index = plant.start_indices if rows is None else np.asarray(rows, dtype=np.intp)
    return plant.start_pending(index)


def fixed_start_rows(plant: Plant, count: int | None, seed: int) -> np.ndarray:
    """A seeded, reproducible subset of start rows (all of them when count is None)."""
    rows = plant.start_indices
    if count is None or count >= len(rows):
        return rows.copy()
    return np.sort(np.random.default_rng(seed).choice(rows, size=count, replace=False))


def rollout(
    plant: Plant,
    codec: ActionCodec,
    policy: BatchPolicy,
    temperatures: np.ndarray,
    controls: np.ndarray,
    horizon: int | None = None,
    seed: int = 0,
    pending: np.ndarray | None = None,
    truth: PlantStepper | None = None,
    hold_in_band: bool = False,
    observer: tuple[DisturbanceObserver, ObserverState] | None = None,
    offsets: np.ndarray | None = None,
    move_rule: bool = False,
) -> Rollouts:
    """Run ``policy`` from every start state for ``horizon`` moves, in lockstep.

    ``pending``: with a dead time, the settings in flight at each start (n, dead_time,
    k), oldest first; default: nothing in flight. ``truth``: the plant that answers the
    moves instead of the model (a policy trained on a fitted model judged on the plant
    itself); the model still tracks the settings in flight and the settling value the
    observation shows, from the readings the truth returns, as the policy would in use.
    The rewards are the model's reward function applied to the truth's readings.
    ``hold_in_band``: the advice's rule on top of the policy, as ``recommend`` and the
    server give it: where the reading is in the band and stays there when nothing is
    touched (:meth:`env.plant.Plant.holds`), every setting is kept whatever the policy
    says; the operator's interventions under the advice, not the raw policy's.
    ``move_rule``: the advice's move rule as well, as ``recommend`` and the server give
    it (:meth:`env.plant.Plant.advice_move`): without lag, outside the band, a move that
    lands in it on the model replaces one that does not (``env.land_in_one_move``); on a
    lagging plant, a move whose settings settle in the band becomes the one settling
    nearest the middle (``env.centre_settling``).
    ``observer``: a disturbance observer and its estimates at the starts
    (:mod:`env.observer`): after every reading it updates its estimate of how far the
    plant's steady state lies from the model's, and the policy's observation and the
    advice's rule see the model's steady state plus that estimate (the model itself
    still steps without it), and the rule judges the observer's filtered temperature
    instead of the noisy reading. ``offsets``: (n,) constants added to the model's
    steady state at each start, for the model's steps and the observation alike (a
    log's disturbance estimate at its row: the model as the readings up to the start
    say the plant settles).
    """
    settings = plant.settings
    horizon = settings.horizon if horizon is None else horizon
    rng = np.random.default_rng(seed)
    n = len(temperatures)
    temp = np.asarray(temperatures, dtype=np.float64).copy()
    ctrl = np.asarray(controls, dtype=np.float64).copy()
    queue = plant.no_pending(ctrl) if pending is None else np.asarray(pending, np.float64).copy()
    offset = plant.offset_for(temp, ctrl)
    if offsets is not None:
        offset = offset + np.asarray(offsets, dtype=np.float64)
    disturbance = np.zeros(n)
    temps, ctrls, rewards = [temp.copy()], [ctrl.copy()], []
    if plant.dead_time:
        policy.reset(temp.copy(), ctrl.copy(), pending=queue.copy())  # type: ignore[call-arg]
    else:
        policy.reset(temp.copy(), ctrl.copy())
    estimate = None if observer is None else observer[1]
    for t in range(horizon):
        seen = offset if estimate is None else offset + estimate.disturbance
        obs = plant.observe(temp, ctrl, queue, seen)
        action = policy.act(obs, temp.copy(), ctrl.copy(), t)
        new_ctrl = plant.apply_delta(ctrl, codec.to_delta(action))
        if hold_in_band:
            # with an observer, the rule judges its filtered temperature, not one noisy reading
            judged = temp if estimate is None else estimate.temperature
            new_ctrl = np.where(plant.holds(judged, ctrl, queue, seen)[:, None], ctrl, new_ctrl)
        if move_rule:
            new_ctrl = plant.advice_move(temp, ctrl, seen, new_ctrl)
        effective = queue[:, 0, :] if plant.dead_time else new_ctrl
        moved = (new_ctrl - ctrl) / plant.steps
        noise = settings.noise_std * rng.standard_normal(n) if settings.noise_std > 0 else 0.0
        if settings.drift_std > 0:
            disturbance = disturbance + settings.drift_std * rng.standard_normal(n)
        modelled, queue = plant.advance(temp, queue, new_ctrl, offset, disturbance, noise)
        temp = modelled if truth is None else np.asarray(truth.step(new_ctrl), np.float64)
        if observer is not None and estimate is not None:
            steady = plant.model.predict(effective) + offset
            estimate = observer[0].step(estimate, steady, temp)
        ctrl = new_ctrl
        std = plant.model.predict_with_std(ctrl)[1] if settings.uncertainty_penalty > 0 else 0.0
        rewards.append(plant.reward(temp, moved, std))
        temps.append(temp.copy())
        ctrls.append(ctrl.copy())
    temps_arr = np.stack(temps, axis=1)
    return Rollouts(
        temperatures=temps_arr,
        controls=np.stack(ctrls, axis=1),
        rewards=np.stack(rewards, axis=1) if rewards else np.zeros((n, 0)),
        in_band=plant.in_band(temps_arr),
    )


@dataclass(frozen=True)
class Summary:
    """Mean metrics over a batch of episodes (NaN where a mean has nothing to average)."""

    episodes: int
    success_rate: float
    """Reached the band within the horizon and ended inside it."""
    reached_rate: float
    mean_moves_to_band: float
    """Over the episodes that ended in the band (see ``moves_to_band``)."""
    time_in_band: float
    mean_return: float
    success_rate_solvable: float
    """The success rate over the rows the planner can solve (NaN if not given or none)."""
    mean_actuations: float = field(default=float("nan"), kw_only=True)
    """Moves that changed a setting, per episode (over every episode)."""


def summarize(rollouts: Rollouts, solvable: np.ndarray | None = None) -> Summary:
    """Mean metrics over episodes; with ``solvable`` also the rate on those rows only."""
    moves = rollouts.moves_to_band
    settled = ~np.isnan(moves)
    return Summary(
        episodes=len(moves),
        success_rate=float(rollouts.success.mean()),
        reached_rate=float(rollouts.in_band.any(axis=1).mean()),
        mean_moves_to_band=float(np.nanmean(moves)) if settled.any() else float("nan"),
        time_in_band=float(rollouts.time_in_band.mean()),
        mean_return=float(rollouts.returns.mean()),
        success_rate_solvable=(
            float(rollouts.success[solvable].mean())
            if solvable is not None and solvable.any()
            else float("nan")
        ),
        mean_actuations=float(rollouts.actuations.mean()) if len(moves) else float("nan"),
    )


def moves_ratio(policy_moves: np.ndarray, optimal_moves: np.ndarray) -> float:
    """Mean moves to band ÷ the planner's, over rows where both reach the band.

    Rows that start inside the band count with 0 moves on both sides (a policy that
    leaves the band from there and comes back pays for it); NaN when nothing is shared.
    """
    both = ~np.isnan(policy_moves) & ~np.isnan(optimal_moves)
    denominator = optimal_moves[both].sum()
    if not both.any():
        return float("nan")
    if denominator == 0:
        return 1.0 if policy_moves[both].sum() == 0 else float("inf")
    return float(policy_moves[both].sum() / denominator)


def actuations_ratio(
    policy_actuations: np.ndarray, planner_actuations: np.ndarray, solvable: np.ndarray
) -> float:
    """Total actuations ÷ the planner's, over the rows the planner solves (1 = as few
    setting changes as the planner; NaN when nothing is shared)."""
    if not solvable.any():
        return float("nan")
    denominator = planner_actuations[solvable].sum()
    if denominator == 0:
        return 1.0 if policy_actuations[solvable].sum() == 0 else float("inf")
    return float(policy_actuations[solvable].sum() / denominator)


def evaluate_policy(
    plant: Plant,
    codec: ActionCodec,
    policy: BatchPolicy,
    rows: np.ndarray | None = None,
    horizon: int | None = None,
    seed: int = 0,
) -> tuple[Summary, Rollouts]:
    """Roll ``policy`` out from ``rows`` (default: every valid row) and summarise."""
    temperatures, controls = start_states(plant, rows)
    pending = start_pending(plant, rows)
    result = rollout(plant, codec, policy, temperatures, controls, horizon, seed, pending)
    return summarize(result), result
