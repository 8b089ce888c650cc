"""Identify how a plant follows its settings over time, from a time-ordered log.

A historian export is a time series: when a setting moves, the temperature follows over
several samples, sometimes after a dead time. The model, per sample::

    T[t+1] = T[t] + a * (f(u[t - d]) - T[t])

``f`` is the steady state (the families of :mod:`env.model`: the temperature the
settings lead to once it has settled), ``a`` in (0, 1] the fraction of the remaining gap
closed per sample (the rate; ``1 - a`` is ``exp(-period / time constant)``) and ``d`` in
0..``max_dead_time`` the dead time in samples. Row ``t`` of the log holds the reading at
time ``t`` and the settings made then, in force until the next row; so ``d = 0`` means a
change shows (partly) at the very next reading. The issue's constant ``c`` is absorbed
by ``f``'s intercept (``a * (f + c / a - T)``).

How it is chosen
    **Blocked cross-validation.** The log is cut into ``folds`` contiguous blocks; each
    block is predicted by a model fitted on the others, leaving out ``guard`` samples
    on either side of it (``max(free_run_horizon, max_dead_time + 1)``). Shuffled
    folds would put each held-out row's neighbours, nearly the same reading, into the
    training set and flatter every model that can interpolate (tested).

    **Scored by free-run error.** From every held-out reading, the model predicts the
    next ``free_run_horizon`` readings with the *logged* settings, feeding back its own
    predictions (not the measured ones); the error over all those predictions is the
    score (``cv_free_run_rmse``, printed next to ``cv_one_step_rmse``, the error one
    sample ahead). One-step error rewards a model for copying the last reading; free
    run is what the environment, the planner and a policy rely on. A static model
    predicts ``f(u)`` of the settings in force, whatever the start.

    **Candidates.** Every family and ridge penalty, every dead time ``d``, and rates
    ``a`` on a geometric grid from 0.01 to 1, refined around the best. For fixed ``a``
    and ``d`` the fit is linear: ``f(u[t-d]) = T[t] + (T[t+1] - T[t]) / a`` is a ridge
    regression on the family's features, and its solution is ``W1 + W2 / a`` for two
    solves per fold: the whole rate grid costs one batched simulation. ``first_order``
    is chosen over ``static`` (the best of each) only if its free-run error is lower by
    more than ``STATIC_MARGIN``; the spec's ``dynamics`` may also fix the kind.

The chosen model is then fitted on every transition of the log as a bootstrap ensemble
(its spread is the uncertainty, as for rows without time order), with moving-block
weights: neighbouring samples are not independent, so they are resampled together.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from env.data import PlantData
from env.errors import InputError
from env.model import (
    FIRST_ORDER,
    STATIC,
    CandidateScore,
    Dynamics,
    ProcessModel,
    _feature_map,
    _FeatureMap,
    _normal_equations,
    _ridge_solve,
)
from env.spec import ModelSettings
from env.time_log import position_in_segment

RATE_GRID = np.geomspace(0.01, 1.0, 41)
"""Rates tried for every candidate (about 12% apart), before refining the best."""
REFINE_FACTOR = 1.15
REFINE_POINTS = 31
STATIC_MARGIN = 0.02
"""``first_order`` must beat ``static``'s free-run error by this fraction: a plant
without inertia must not be given a lag for noise's sake."""


@dataclass(frozen=True)
class BlockedLog:
    """The rows cross-validation runs on, with their segments and blocked folds."""

    z: np.ndarray
    """(n, k) standardised controls."""
    y: np.ndarray
    """(n,) centred temperature."""
    segment: np.ndarray
    position: np.ndarray
    """Rows of the same segment before each row."""
    fold: np.ndarray
    """Contiguous blocks: fold of each row."""
    folds: int
    guard: int

    def run_end(self) -> np.ndarray:
        """Per row, the last row of its run (same segment and same fold)."""
        n = len(self.y)
        boundary = np.ones(n, bool)
        boundary[:-1] = (self.segment[1:] != self.segment[:-1]) | (self.fold[1:] != self.fold[:-1])
        ends = np.flatnonzero(boundary)
        return ends[np.searchsorted(ends, np.arange(n))]

    def training(self, fold: int) -> np.ndarray:
        """Rows a model for ``fold`` may learn from: other folds, beyond the guard."""
        held = (self.fold == fold).astype(np.int64)
        if self.guard:
            held = np.convolve(held, np.ones(2 * self.guard + 1, np.int64), mode="same")
        return held == 0

    def transitions(self, dead_time: int) -> np.ndarray:
        """Rows ``t`` with ``t + 1`` and ``t - dead_time`` in the same segment."""
        t = np.flatnonzero(self.position[:-1] >= dead_time)
        return t[self.segment[t + 1] == self.segment[t]]


@dataclass(frozen=True)
class Windows:
    """Held-out free-run predictions of one fold: starts and how far each may run."""

    starts: np.ndarray
    lengths: np.ndarray
    """Predictions from each start (1..horizon), within its segment and its fold."""

    def pairs(self, horizon: int) -> Iterator[tuple[int, np.ndarray]]:
        for h in range(horizon):
            valid = self.lengths > h
            if not valid.any():
                return
            yield h, valid


@dataclass
class _Score:
    """Accumulated squared errors of one candidate over the folds."""

    sse: np.ndarray
    sse_one: np.ndarray
    count: int = 0
    count_one: int = 0
    sst: float = 0.0

    def rmse(self) -> np.ndarray:
        return np.sqrt(self.sse / max(self.count, 1))

    def one_step(self) -> np.ndarray:
        return np.sqrt(self.sse_one / max(self.count_one, 1))


# --------------------------------------------------------------------------- rows


def _standardise(data: PlantData) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]:
    x_mean = data.controls.mean(axis=0)
    x_scale = data.controls.std(axis=0)
    x_scale[x_scale == 0] = 1.0
    y_mean = float(data.state.mean())
    return x_mean, x_scale, y_mean, (data.controls - x_mean) / x_scale, data.state - y_mean


def selection_rows(n: int, limit: int, windows: int) -> np.ndarray:
    """All rows, or ``windows`` evenly spaced contiguous runs of ``limit`` rows in all."""
    if n <= limit:
        return np.arange(n)
    length = limit // windows
    starts = np.linspace(0, n - length, windows).astype(np.intp)
    return np.concatenate([np.arange(s, s + length) for s in starts])


def blocked_log(
    z: np.ndarray, y: np.ndarray, segment: np.ndarray, settings: ModelSettings
) -> BlockedLog:
    """The log (or evenly spaced windows of a long one) cut into contiguous folds."""
    rows = selection_rows(len(y), settings.max_selection_rows, settings.folds)
    segment = segment[rows]
    breaks = (np.diff(rows) != 1) | (np.diff(segment) != 0)
    segment = np.concatenate([[0], np.cumsum(breaks)]).astype(np.int64)
    n = len(rows)
    fold = (np.arange(n) * settings.folds) // n
    guard = max(settings.free_run_horizon, settings.max_dead_time + 1)
    return BlockedLog(
        z[rows], y[rows], segment, position_in_segment(segment), fold, settings.folds, guard
    )


def shuffled_log(log: BlockedLog, seed: int) -> BlockedLog:
    """The same rows with shuffled folds and no guard: the *wrong* way for a time
    series, kept to show (and test) how much it flatters a model."""
    fold = np.random.default_rng(seed).permutation(np.arange(len(log.y)) % log.folds)
    return BlockedLog(log.z, log.y, log.segment, log.position, fold, log.folds, 0)


def held_out_rmse(log: BlockedLog, fmap: _FeatureMap, alpha: float) -> float:
    """Cross-validated RMSE of ``T = f(u)`` over every row (each predicted by the model
    fitted without its fold): the plain row-wise score whose folds make the difference
    between an honest and a flattering estimate on a time series."""
    x = fmap(log.z)
    sse = 0.0
    for f in range(log.folds):
        train, held = log.training(f), log.fold == f
        w = _ridge_solve(x[train].T @ x[train], x[train].T @ log.y[train], alpha)
        sse += float(((x[held] @ w - log.y[held]) ** 2).sum())
    return float(np.sqrt(sse / len(log.y)))


def _windows(log: BlockedLog, fold: int, max_dead_time: int, horizon: int) -> Windows:
    """Starts in ``fold`` with ``max_dead_time`` rows of settings before them (the same
    starts for every dead time, so that all candidates are scored on the same
    predictions), each running to the end of its segment and fold or ``horizon``."""
    end = log.run_end()
    starts = np.flatnonzero((log.fold == fold) & (log.position >= max_dead_time))
    lengths = np.minimum(end[starts] - starts, horizon)
    keep = lengths > 0
    return Windows(starts[keep], lengths[keep])


def _fold_windows(log: BlockedLog, settings: ModelSettings) -> list[Windows] | None:
    windows = [
        _windows(log, f, settings.max_dead_time, settings.free_run_horizon)
        for f in range(log.folds)
    ]
    return None if any(len(w.starts) == 0 for w in windows) else windows


# --------------------------------------------------------------------------- scoring


def _static_score(
    log: BlockedLog, x: np.ndarray, alphas: tuple[float, ...], windows: list[Windows], h_max: int
) -> _Score:
    """Free-run and one-step errors of ``T = f(u)`` per ridge penalty."""
    score = _Score(np.zeros(len(alphas)), np.zeros(len(alphas)))
    for f, win in enumerate(windows):
        train = log.training(f)
        gram, moment = x[train].T @ x[train], x[train].T @ log.y[train]
        solution = np.stack([_ridge_solve(gram, moment, a) for a in alphas], axis=1)
        for h, valid in win.pairs(h_max):
            target = win.starts[valid] + h + 1
            error = x[target] @ solution - log.y[target][:, None]
            score.sse += (error**2).sum(axis=0)
            score.count += int(valid.sum())
            score.sst += float((log.y[target] ** 2).sum())
            if h == 0:
                score.sse_one += (error**2).sum(axis=0)
                score.count_one += int(valid.sum())
    return score


def _first_order_fold(
    log: BlockedLog, x: np.ndarray, t: np.ndarray, d: int, fold: int, alphas: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(p, n_alphas) pairs W1, W2 with ``f = x @ (W1 + W2 / a)`` fitted without ``fold``."""
    train = log.training(fold)
    t = t[train[t] & train[t + 1]]
    xd = x[t - d]
    targets = np.stack([log.y[t], log.y[t + 1] - log.y[t]], axis=1)
    gram, moment = xd.T @ xd, xd.T @ targets
    solutions = [_ridge_solve(gram, moment, a) for a in alphas]
    return np.stack([s[:, 0] for s in solutions], 1), np.stack([s[:, 1] for s in solutions], 1)


def _free_run(
    log: BlockedLog,
    f1: np.ndarray,
    f2: np.ndarray,
    rates: np.ndarray,
    win: Windows,
    d: int,
    horizon: int,
    score: _Score,
) -> None:
    """Simulate every start for every rate at once; add the errors to ``score``.

    ``f1``, ``f2``: (n,) the steady state ``f = f1 + f2 / a`` of each row's settings.
    """
    a = rates[:, None]
    inverse = 1.0 / a
    temperature = np.repeat(log.y[win.starts][None, :], len(rates), axis=0)
    for h, valid in win.pairs(horizon):
        drive = np.minimum(win.starts + h - d, len(log.y) - 1)  # ended runs: masked
        temperature += a * (f1[drive] + f2[drive] * inverse - temperature)
        target = np.minimum(win.starts + h + 1, len(log.y) - 1)
        squared = ((temperature - log.y[target]) ** 2 * valid).sum(axis=1)
        score.sse += squared
        score.count += int(valid.sum())
        score.sst += float((log.y[target][valid] ** 2).sum())
        if h == 0:
            score.sse_one += squared
            score.count_one += int(valid.sum())


def _first_order_scores(
    log: BlockedLog,
    x: np.ndarray,
    d: int,
    alphas: tuple[float, ...],
    rates: np.ndarray,
    windows: list[Windows],
    horizon: int,
) -> list[_Score]:
    """Per ridge penalty, the errors of every rate in ``rates`` at dead time ``d``."""
    t = log.transitions(d)
    scores = [_Score(np.zeros(len(rates)), np.zeros(len(rates))) for _ in alphas]
    for f, win in enumerate(windows):
        w1, w2 = _first_order_fold(log, x, t, d, f, alphas)
        rows = np.arange(max(0, win.starts.min() - d), win.starts.max() + horizon)
        rows = rows[rows < len(log.y)]
        f1, f2 = np.zeros((len(log.y), len(alphas))), np.zeros((len(log.y), len(alphas)))
        f1[rows], f2[rows] = x[rows] @ w1, x[rows] @ w2
        for i, score in enumerate(scores):
            _free_run(log, f1[:, i], f2[:, i], rates, win, d, horizon, score)
    return scores


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class _Candidate:
    score: CandidateScore
    fmap: _FeatureMap


def _r2(sse: float, score: _Score) -> float:
    return 1.0 - sse / score.sst if score.sst > 0 else 0.0


def _static_candidates(
    log: BlockedLog, maps: dict[str, _FeatureMap], settings: ModelSettings, windows: list[Windows]
) -> list[_Candidate]:
    out = []
    for family, fmap in maps.items():
        x = fmap(log.z)
        score = _static_score(log, x, settings.ridge_alphas, windows, settings.free_run_horizon)
        i = int(np.argmin(score.sse))
        out.append(
            _Candidate(
                CandidateScore(
                    family, settings.ridge_alphas[i], float(score.rmse()[i]),
                    _r2(float(score.sse[i]), score), x.shape[1], STATIC, 1.0, 0,
                    float(score.one_step()[i]),
                ),
                fmap,
            )
        )  # fmt: skip
    return out


def _best_first_order(
    log: BlockedLog,
    x: np.ndarray,
    settings: ModelSettings,
    windows: list[Windows],
    rates: np.ndarray,
    dead_times: range,
) -> tuple[float, int, float, int, _Score]:
    """(sse, dead time, alpha, rate index, score) of the best candidate of a family."""
    best: tuple[float, int, float, int, _Score] | None = None
    for d in dead_times:
        scores = _first_order_scores(
            log, x, d, settings.ridge_alphas, rates, windows, settings.free_run_horizon
        )
        for alpha, score in zip(settings.ridge_alphas, scores, strict=True):
            i = int(np.argmin(score.sse))
            if best is None or score.sse[i] < best[0]:
                best = (float(score.sse[i]), d, alpha, i, score)
    assert best is not None
    return best


def _first_order_candidates(
    log: BlockedLog, maps: dict[str, _FeatureMap], settings: ModelSettings, windows: list[Windows]
) -> list[_Candidate]:
    out = []
    dead_times = range(settings.max_dead_time + 1)
    for family, fmap in maps.items():
        x = fmap(log.z)
        _, d, alpha, i, _ = _best_first_order(log, x, settings, windows, RATE_GRID, dead_times)
        # refine the rate around the best of the grid, at that dead time and penalty
        centre = RATE_GRID[i]
        fine = np.unique(
            np.clip(np.geomspace(centre / REFINE_FACTOR, centre * REFINE_FACTOR, REFINE_POINTS),
                    1e-3, 1.0)
        )  # fmt: skip
        narrowed = ModelSettings(**{**settings.__dict__, "ridge_alphas": (alpha,)})
        sse, d, alpha, j, score = _best_first_order(
            log, x, narrowed, windows, fine, range(d, d + 1)
        )
        out.append(
            _Candidate(
                CandidateScore(
                    family, alpha, float(score.rmse()[j]), _r2(sse, score), x.shape[1],
                    FIRST_ORDER, float(fine[j]), d, float(score.one_step()[j]),
                ),
                fmap,
            )
        )  # fmt: skip
    return out


def cross_validated_candidates(
    log: BlockedLog, z_all: np.ndarray, settings: ModelSettings, kinds: tuple[str, ...]
) -> list[_Candidate] | None:
    """Every (kind, family) candidate at its best settings; None if the log is too
    short or too broken for every fold to have held-out predictions."""
    windows = _fold_windows(log, settings)
    if windows is None:
        return None
    maps: dict[str, _FeatureMap] = {}
    for family in dict.fromkeys(settings.candidates):
        fmap = _feature_map(family, log.z, settings)
        n_features = fmap(log.z[:1]).shape[-1]
        if n_features < len(log.y) * (settings.folds - 1) / settings.folds:
            maps[family] = fmap  # else: more parameters than training rows in a fold
    if not maps:
        return None
    out = []
    if STATIC in kinds:
        out += _static_candidates(log, maps, settings, windows)
    if FIRST_ORDER in kinds:
        out += _first_order_candidates(log, maps, settings, windows)
    return out


def choose(candidates: list[_Candidate]) -> _Candidate:
    """The best first-order candidate if it beats the best static one by the margin."""
    static = [c for c in candidates if c.score.kind == STATIC]
    dynamic = [c for c in candidates if c.score.kind == FIRST_ORDER]
    best_static = min(static, key=lambda c: c.score.rmse, default=None)
    best_dynamic = min(dynamic, key=lambda c: c.score.rmse, default=None)
    if best_dynamic is None:
        assert best_static is not None
        return best_static
    if (
        best_static is None
        or best_dynamic.score.rmse < (1 - STATIC_MARGIN) * best_static.score.rmse
    ):
        return best_dynamic
    return best_static


# --------------------------------------------------------------------------- final fit


def _block_weights(rng: np.random.Generator, n: int, block: int) -> np.ndarray:
    """Poisson(1) weights shared by runs of ``block`` rows: a moving-block bootstrap."""
    return np.repeat(rng.poisson(1.0, size=-(-n // block)), block)[:n].astype(np.float64)


def _ensemble(
    z: np.ndarray, target: np.ndarray, fmap: _FeatureMap, alpha: float, settings: ModelSettings
) -> np.ndarray:
    rng = np.random.default_rng(settings.seed)
    members = []
    for _ in range(settings.ensemble_size):
        weights = _block_weights(rng, len(target), settings.free_run_horizon)
        gram, moment = _normal_equations(z, target, fmap, weights)
        members.append(_ridge_solve(gram, moment, alpha))
    return np.array(members)


def _all_transitions(data: PlantData, d: int) -> np.ndarray:
    assert data.segment is not None
    position = data.position_in_segment()
    t = np.flatnonzero(position[:-1] >= d)
    return t[data.segment[t + 1] == data.segment[t]]


def _too_short(data: PlantData) -> str:
    return (
        f"too few consecutive samples to identify dynamics ({data.n_rows} rows in "
        f"{int(data.segment[-1]) + 1 if data.segment is not None else 0} segment(s)): every "
        f"one of the {data.spec.model.folds} cross-validation blocks needs readings with "
        f"{data.spec.model.max_dead_time} samples before them and one after"
    )


def fit_time_series_model(data: PlantData) -> ProcessModel:
    """Fit a time-ordered log (see the module docstring)."""
    settings = data.spec.model
    choice = data.spec.dynamics_choice
    assert data.segment is not None
    x_mean, x_scale, y_mean, z_all, y_all = _standardise(data)
    log = blocked_log(z_all, y_all, data.segment, settings)
    kinds = {"auto": (STATIC, FIRST_ORDER), "static": (STATIC,)}.get(choice, (FIRST_ORDER,))
    candidates = cross_validated_candidates(log, z_all, settings, kinds)
    note = ""
    if candidates is None and FIRST_ORDER in kinds and STATIC not in kinds:
        raise InputError(data.spec.csv_path, _too_short(data))
    if candidates is None:
        # fall back to rows as independent steady states, scored by blocked folds
        note = _too_short(data) + ": fitted as static"
        candidates = _plain_static(log, settings)
        if candidates is None:
            raise InputError(data.spec.csv_path, "too few rows for any model family")
    chosen = choose(candidates)
    score = chosen.score
    if score.kind == FIRST_ORDER:
        assert score.dead_time is not None and score.rate is not None
        t = _all_transitions(data, score.dead_time)
        target = y_all[t] + (y_all[t + 1] - y_all[t]) / score.rate
        members = _ensemble(z_all[t - score.dead_time], target, chosen.fmap, score.alpha, settings)
        residual = score.one_step_rmse
    else:
        members = _ensemble(z_all, y_all, chosen.fmap, score.alpha, settings)
        residual = score.rmse
    dynamics = Dynamics(
        kind=str(score.kind),
        rate=float(score.rate or 1.0),
        dead_time=int(score.dead_time or 0),
        cv_free_run_rmse=score.rmse,
        cv_one_step_rmse=score.one_step_rmse,
        free_run_horizon=settings.free_run_horizon,
        sample_period=data.sample_period,
        time_kind=data.time_kind,
        note=note,
    )
    return ProcessModel(
        family=score.family,
        control_names=data.spec.control_names,
        x_mean=x_mean,
        x_scale=x_scale,
        y_mean=y_mean,
        coef_members=members,
        residual_std=float(residual if residual is not None else score.rmse),
        centers=chosen.fmap.centers,
        width=chosen.fmap.width,
        alpha=score.alpha,
        cv_scores=tuple(c.score for c in candidates),
        csv_sha256=data.csv_sha256,
        n_rows=data.n_rows,
        table_format=data.table_format,
        dynamics=dynamics,
    )


def _plain_static(log: BlockedLog, settings: ModelSettings) -> list[_Candidate] | None:
    """Static candidates for a log too broken for free-run windows: every row predicted
    from the other blocks (one-step = free run for a static model)."""
    windows = []
    for f in range(log.folds):
        rows = np.flatnonzero(log.fold == f)
        if len(rows) < 2:
            return None
        windows.append(Windows(rows[:-1], np.ones(len(rows) - 1, np.intp)))
    maps: dict[str, _FeatureMap] = {
        family: _feature_map(family, log.z, settings) for family in settings.candidates
    }
    return _static_candidates(log, maps, settings, windows)
