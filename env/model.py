"""The process model: steady-state temperature as a function of the controls.

A CSV without time order holds static operating points, not trajectories, so the
environment needs a model ``T = f(u)`` fitted to them. (A time-ordered log is fitted by
:mod:`env.dynamics`: the same families for ``f``, plus how the temperature follows the
settings over time, recorded as :class:`Dynamics` in the same artifact.) Several
families are compared by k-fold cross-validation (out-of-fold RMSE and R² are reported
for each) and the best one is refitted on every row as a bootstrap ensemble. The
ensemble's spread is the model's own measure of where it is unsure: it grows away from
the data, which lets the environment (and the recommendations) show or penalise moves
into unsupported regions.

Every family is linear in its features (polynomials of the standardised controls, or
Gaussian radial basis functions plus linear terms), which keeps the fit closed-form
(ridge regression), the prediction one small matrix product, and the saved artifact
plain numbers in JSON: no pickle is ever written or read.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from env.data import PlantData
from env.errors import InputError
from env.files import write_json_atomic
from env.spec import ModelSettings
from env.table_format import RecordedRead, TableFormat

ARTIFACT_FORMAT = "process-model/1"
READ_AS_KEY = "read_as"
"""Artifact key of how the data file was read (absent in artifacts of older versions)."""
_POLY_DEGREE = {"linear": 1, "quadratic": 2, "cubic": 3}
_CHUNK_ROWS = 65536
PROCESS_MODEL_FILE = "process_model.json"
"""The fitted model's file name inside a folder (experiment folder, exported policy)."""


DYNAMICS_KEY = "dynamics"
"""Artifact key of the identified dynamics (absent: rows without time order)."""
STATIC = "static"
FIRST_ORDER = "first_order"


@dataclass(frozen=True)
class CandidateScore:
    """Cross-validated quality of one model family (at its best ridge penalty).

    For a time-ordered log each candidate is a family *and* its dynamics: ``kind``,
    and for ``first_order`` the best ``rate`` and ``dead_time``; ``rmse`` is then the
    free-run error (readings predicted 1..H samples ahead from each held-out reading)
    and ``one_step_rmse`` the error one sample ahead. Rows without time order leave
    these at None and ``rmse`` is the k-fold CV error of ``T = f(u)``.
    """

    family: str
    alpha: float
    rmse: float
    r2: float
    n_features: int
    kind: str | None = None
    rate: float | None = None
    dead_time: int | None = None
    one_step_rmse: float | None = None


@dataclass(frozen=True)
class Dynamics:
    """How the temperature follows the settings over time, identified from a log.

    ``first_order``: ``T[t+1] = T[t] + rate * (f(u[t - dead_time]) - T[t])`` per sample,
    ``u[t]`` the settings made at sample ``t``; ``static``: each reading is ``f`` of the
    settings in force (no lag), as for rows without time order.
    """

    kind: str
    """``static`` or ``first_order``."""
    rate: float = 1.0
    """Fraction of the gap to the steady state closed per sample (1: no lag)."""
    dead_time: int = 0
    """Samples before a change of the settings starts to show."""
    cv_free_run_rmse: float | None = None
    """Blocked-CV error of readings predicted 1..free_run_horizon samples ahead."""
    cv_one_step_rmse: float | None = None
    """Blocked-CV error of readings predicted one sample ahead."""
    free_run_horizon: int = 0
    sample_period: float | None = None
    """Median step between time stamps (seconds for dates, else the numbers' unit)."""
    time_kind: str = ""
    """"datetime" or "number"."""
    note: str = ""
    """Why the dynamics are what they are, when that needs saying."""

    def __post_init__(self) -> None:
        if self.kind not in (STATIC, FIRST_ORDER):
            raise ValueError(f"dynamics kind must be {STATIC} or {FIRST_ORDER}, got {self.kind!r}")
        if not 0.0 < self.rate <= 1.0 or self.dead_time < 0:
            raise ValueError("dynamics rate must be in (0, 1] and dead_time >= 0")

    @property
    def identified(self) -> bool:
        """True for a lag (and dead time) identified from a log."""
        return self.kind == FIRST_ORDER

    def summary(self) -> dict[str, Any]:
        """What ``fit --json`` reports (the keys are part of its interface)."""
        return {
            "kind": self.kind,
            "rate": self.rate,
            "dead_time": self.dead_time,
            "cv_free_run_rmse": self.cv_free_run_rmse,
            "cv_one_step_rmse": self.cv_one_step_rmse,
        }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ProcessModel:
    """A fitted ensemble ``T = f(u)``; evaluates on arrays of shape (..., k)."""

    def __init__(
        self,
        *,
        family: str,
        control_names: tuple[str, ...],
        x_mean: np.ndarray,
        x_scale: np.ndarray,
        y_mean: float,
        coef_members: np.ndarray,
        residual_std: float,
        centers: np.ndarray | None = None,
        width: float | None = None,
        alpha: float = 0.0,
        cv_scores: tuple[CandidateScore, ...] = (),
        csv_sha256: str = "",
        n_rows: int = 0,
        table_format: TableFormat | None = None,
        dynamics: Dynamics | None = None,
    ) -> None:
        self.family = family
        self.control_names = tuple(control_names)
        self.x_mean = np.asarray(x_mean, dtype=np.float64)
        self.x_scale = np.asarray(x_scale, dtype=np.float64)
        self._inv_scale = 1.0 / self.x_scale
        self.y_mean = float(y_mean)
        self.coef_members = np.asarray(coef_members, dtype=np.float64)
        # The members are linear in the same features, so the ensemble mean prediction
        # is the prediction of the mean coefficients: one dot product per step.
        self.coef_mean = self.coef_members.mean(axis=0)
        self.residual_std = float(residual_std)
        self.alpha = float(alpha)
        self.cv_scores = tuple(cv_scores)
        self.csv_sha256 = csv_sha256
        self.n_rows = int(n_rows)
        self.table_format = table_format
        """How the data file was read: later commands read it the same way."""
        self.dynamics = dynamics
        """Dynamics identified from a time-ordered log (None: rows without time order)."""
        self.centers = None if centers is None else np.asarray(centers, dtype=np.float64)
        self.width = None if width is None else float(width)
        self._tensor: np.ndarray | None = None
        k = len(self.control_names)
        if family in _POLY_DEGREE:
            self._combos: np.ndarray | None = _monomials(k, _POLY_DEGREE[family])
        elif family == "rbf":
            if self.centers is None or self.width is None:
                raise ValueError("rbf model needs centers and width")
            self._combos = None
            self._inv_two_width_sq = 1.0 / (2.0 * self.width**2)
        else:
            raise ValueError(f"unknown model family {family!r}")
        self._scalar = None if self._combos is None else self._compile_polynomial()
        if self.coef_members.shape[1] != self.n_features:
            raise ValueError("coefficient count does not match the model's features")

    @property
    def n_controls(self) -> int:
        return len(self.control_names)

    @property
    def n_features(self) -> int:
        if self._combos is not None:
            return int(self._combos.shape[0])
        assert self.centers is not None  # an rbf model (checked in __init__)
        return 1 + self.n_controls + int(self.centers.shape[0])

    def features(self, controls: np.ndarray) -> np.ndarray:
        """Feature matrix (..., p) of controls (..., k) in physical units."""
        return _features(
            (np.asarray(controls, dtype=np.float64) - self.x_mean) * self._inv_scale,
            self._combos,
            self.centers,
            None if self._combos is not None else self._inv_two_width_sq,
        )

    def predict(self, controls: np.ndarray) -> np.ndarray:
        """Ensemble-mean steady-state temperature for controls (..., k)."""
        controls = np.asarray(controls, dtype=np.float64)
        if controls.ndim == 2 and len(controls) > _CHUNK_ROWS:  # bound the feature memory
            return np.concatenate(
                [
                    self.predict(controls[i : i + _CHUNK_ROWS])
                    for i in range(0, len(controls), _CHUNK_ROWS)
                ]
            )
        return self.features(controls) @ self.coef_mean + self.y_mean

    def predict_scalar(self, controls: list[float]) -> float:
        """Mean prediction for one setting given as Python floats (the env's hot path).

        NumPy's per-call overhead dominates a single 4-control evaluation, so polynomial
        models are compiled once into a plain Python function (about 4x faster than the
        NumPy path); RBF models use the NumPy path. Agrees with :meth:`predict` to
        rounding error (tested).
        """
        if self._scalar is None:
            return float(self.predict(np.asarray(controls, dtype=np.float64)))
        return self._scalar(*controls)

    def without_dynamics(self) -> ProcessModel:
        """The same steady-state model, without the dynamics of a log (for planning the
        steady states a lagging plant settles to)."""
        twin = copy.copy(self)
        twin.dynamics = None
        return twin

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_scalar"] = None  # a generated function does not pickle; rebuilt on load
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._combos is not None:
            self._scalar = self._compile_polynomial()

    def _compile_polynomial(self) -> Callable[..., float]:
        """Build ``f(u_1, ..., u_k) -> float`` as straight-line Python arithmetic.

        The generated source contains only ``float`` reprs of the fitted numbers and
        fixed variable names (never text from a file), so compiling it is safe.
        """
        k = self.n_controls
        args = ", ".join(f"u{i}" for i in range(k))
        lines = [f"def predict({args}):"]
        for i in range(k):
            mean, inv = float(self.x_mean[i]), float(self._inv_scale[i])
            lines.append(f"    z{i + 1} = (u{i} - {mean!r}) * {inv!r}")
        terms = [repr(float(self.y_mean))]
        assert self._combos is not None  # only polynomial models are compiled
        for combo, coef in zip(self._combos.tolist(), self.coef_mean.tolist(), strict=True):
            factors = "*".join(f"z{i}" for i in combo if i)  # index 0 is the constant 1
            terms.append(f"{float(coef)!r}*{factors}" if factors else repr(float(coef)))
        lines.append("    return " + " + ".join(terms))
        namespace: dict[str, Any] = {}
        exec(compile("\n".join(lines), "<process-model>", "exec"), namespace)
        return namespace["predict"]

    def predict_grid(self, axes: list[np.ndarray]) -> np.ndarray:
        """Mean prediction on the product grid of per-control values, shape (n_1..n_k).

        For polynomial families the grid is evaluated as a tensor contraction of the
        coefficient tensor with per-axis power tables, costing about (degree + 1)
        operations per grid point instead of one per feature: the exact planner
        evaluates millions of lattice points and this is its inner loop.
        """
        if self._combos is None:
            mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
            return self.predict(mesh.reshape(-1, self.n_controls)).reshape(mesh.shape[:-1])
        degree = self._combos.shape[1]
        tensor = self._coefficient_tensor()
        for i in range(self.n_controls - 1, -1, -1):
            z = (np.asarray(axes[i], dtype=np.float64) - self.x_mean[i]) * self._inv_scale[i]
            powers = z[:, None] ** np.arange(degree + 1)
            tensor = np.moveaxis(tensor @ powers.T, -1, 0)
        return tensor + self.y_mean

    def _coefficient_tensor(self) -> np.ndarray:
        if self._tensor is None:
            assert self._combos is not None  # only polynomial models have a tensor
            degree, k = self._combos.shape[1], self.n_controls
            tensor = np.zeros((degree + 1,) * k)
            for combo, coef in zip(self._combos, self.coef_mean, strict=True):
                exponents = np.bincount(combo, minlength=k + 1)[1:]
                tensor[tuple(exponents)] += coef
            self._tensor = tensor
        return self._tensor

    def predict_with_std(self, controls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and ensemble standard deviation (the model's own uncertainty)."""
        per_member = self.features(controls) @ self.coef_members.T
        return per_member.mean(axis=-1) + self.y_mean, per_member.std(axis=-1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": ARTIFACT_FORMAT,
            "family": self.family,
            "alpha": self.alpha,
            "control_names": list(self.control_names),
            "x_mean": self.x_mean.tolist(),
            "x_scale": self.x_scale.tolist(),
            "y_mean": self.y_mean,
            "coef_members": self.coef_members.tolist(),
            "residual_std": self.residual_std,
            "centers": None if self.centers is None else self.centers.tolist(),
            "width": self.width,
            "cv_scores": [_score_dict(s) for s in self.cv_scores],
            "csv_sha256": self.csv_sha256,
            "n_rows": self.n_rows,
            READ_AS_KEY: None if self.table_format is None else self.table_format.to_dict(),
            # absent without time order: those artifacts stay exactly as they were
            **({} if self.dynamics is None else {DYNAMICS_KEY: self.dynamics.to_dict()}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path = "model") -> ProcessModel:
        if not isinstance(data, dict) or data.get("format") != ARTIFACT_FORMAT:
            raise InputError(source, f"not a process model artifact (format {ARTIFACT_FORMAT})")
        read_as = data.get(READ_AS_KEY)
        table_format = None if read_as is None else TableFormat.from_dict(read_as, source)
        try:
            dynamics = data.get(DYNAMICS_KEY)
            return cls(
                family=data["family"],
                control_names=tuple(data["control_names"]),
                x_mean=np.array(data["x_mean"]),
                x_scale=np.array(data["x_scale"]),
                y_mean=data["y_mean"],
                coef_members=np.array(data["coef_members"]),
                residual_std=data["residual_std"],
                centers=None if data["centers"] is None else np.array(data["centers"]),
                width=data["width"],
                alpha=data.get("alpha", 0.0),
                cv_scores=tuple(CandidateScore(**s) for s in data.get("cv_scores", [])),
                csv_sha256=data.get("csv_sha256", ""),
                n_rows=data.get("n_rows", 0),
                table_format=table_format,
                dynamics=None if dynamics is None else Dynamics(**dynamics),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(source, f"malformed process model artifact ({exc})") from exc

    def save(self, path: str | Path) -> Path:
        """Write the artifact atomically (temp file + rename): never half-written."""
        return write_json_atomic(path, self.to_dict())

    def recorded_read(self, source: str | Path) -> RecordedRead | None:
        """How this model's data file was read, for reading it again the same way."""
        if self.table_format is None:
            return None
        return RecordedRead(self.table_format, self.csv_sha256, str(source))

    @classmethod
    def load(cls, path: str | Path) -> ProcessModel:
        path = Path(path)
        if not path.exists():
            raise InputError(path, "model file not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(path, f"cannot read model JSON ({exc})") from exc
        return cls.from_dict(data, path)


def _score_dict(score: CandidateScore) -> dict[str, Any]:
    """A score as JSON; the time-series fields only where set (older artifacts match)."""
    data = dict(score.__dict__)
    for name in ("kind", "rate", "dead_time", "one_step_rmse"):
        if data[name] is None:
            del data[name]
    return data


# --------------------------------------------------------------------------- features


def _monomials(n_inputs: int, degree: int) -> np.ndarray:
    """Index tuples into ``[1, z_1..z_k]`` whose products are all monomials <= degree."""
    return np.array(
        list(itertools.combinations_with_replacement(range(n_inputs + 1), degree)),
        dtype=np.intp,
    )


def _features(
    z: np.ndarray,
    combos: np.ndarray | None,
    centers: np.ndarray | None,
    inv_two_width_sq: float | None,
) -> np.ndarray:
    ones = np.ones((*z.shape[:-1], 1))
    z_ext = np.concatenate([ones, z], axis=-1)
    if combos is not None:
        # Column products instead of a gather + prod over a (..., p, degree) array:
        # about twice as fast, and the planner evaluates millions of points.
        features = z_ext[..., combos[:, 0]]
        for j in range(1, combos.shape[1]):
            features = features * z_ext[..., combos[:, j]]
        return features
    diff = z[..., None, :] - centers
    rbf = np.exp(-np.einsum("...ij,...ij->...i", diff, diff) * inv_two_width_sq)
    return np.concatenate([z_ext, rbf], axis=-1)


@dataclass(frozen=True)
class _FeatureMap:
    """The part of a family that is fixed before fitting (centres for RBF)."""

    family: str
    combos: np.ndarray | None
    centers: np.ndarray | None
    width: float | None

    def __call__(self, z: np.ndarray) -> np.ndarray:
        inv = None if self.width is None else 1.0 / (2.0 * self.width**2)
        return _features(z, self.combos, self.centers, inv)


def _kmeans_pp_centers(z: np.ndarray, n_centers: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding plus a few Lloyd steps: centres spread over the data."""
    n_centers = min(n_centers, len(z))
    chosen = [int(rng.integers(len(z)))]
    dist_sq = ((z - z[chosen[0]]) ** 2).sum(axis=1)
    for _ in range(1, n_centers):
        total = dist_sq.sum()
        pick = (
            int(rng.choice(len(z), p=dist_sq / total)) if total > 0 else int(rng.integers(len(z)))
        )
        chosen.append(pick)
        dist_sq = np.minimum(dist_sq, ((z - z[pick]) ** 2).sum(axis=1))
    centers = z[chosen].copy()
    for _ in range(5):
        labels = (((z[:, None, :] - centers[None]) ** 2).sum(-1)).argmin(axis=1)
        for j in range(len(centers)):
            members = z[labels == j]
            if len(members):
                centers[j] = members.mean(axis=0)
    return centers


def _feature_map(family: str, z: np.ndarray, settings: ModelSettings) -> _FeatureMap:
    k = z.shape[1]
    if family in _POLY_DEGREE:
        return _FeatureMap(family, _monomials(k, _POLY_DEGREE[family]), None, None)
    rng = np.random.default_rng(settings.seed)
    sample = z if len(z) <= 5000 else z[rng.choice(len(z), 5000, replace=False)]
    centers = _kmeans_pp_centers(sample, settings.rbf_centers, rng)
    pairwise = np.sqrt(((centers[:, None] - centers[None]) ** 2).sum(-1))
    nearest = np.sort(pairwise, axis=1)[:, 1] if len(centers) > 1 else np.ones(1)
    # Width from the typical spacing of centres: wide enough to overlap neighbours.
    width = float(max(np.median(nearest) * 1.5, 1e-3))
    return _FeatureMap(family, None, centers, width)


# --------------------------------------------------------------------------- fitting


def _ridge_solve(gram: np.ndarray, moment: np.ndarray, alpha: float) -> np.ndarray:
    """Solve (X'X + alpha * I') w = X'y, leaving the intercept (column 0) unpenalised."""
    penalty = np.full(gram.shape[0], alpha)
    penalty[0] = 0.0
    # Scale the penalty with the problem size so alphas mean the same for any row count.
    matrix = gram + np.diag(penalty * max(gram[0, 0], 1.0))
    try:
        return np.linalg.solve(matrix, moment)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(matrix, moment, rcond=None)[0]


def _normal_equations(
    z: np.ndarray, y: np.ndarray, fmap: _FeatureMap, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """X'WX and X'Wy accumulated in chunks: a million rows never build a full X."""
    gram = None
    moment = None
    for start in range(0, len(z), _CHUNK_ROWS):
        x = fmap(z[start : start + _CHUNK_ROWS])
        target = y[start : start + _CHUNK_ROWS]
        if weights is not None:
            w = weights[start : start + _CHUNK_ROWS]
            xw = x * w[:, None]
        else:
            xw = x
        g, m = xw.T @ x, xw.T @ target
        gram = g if gram is None else gram + g
        moment = m if moment is None else moment + m
    assert gram is not None and moment is not None
    return gram, moment


def _cross_validate(
    z: np.ndarray, y: np.ndarray, fmap: _FeatureMap, alphas: tuple[float, ...], folds: np.ndarray
) -> list[tuple[float, float, float]]:
    """Out-of-fold (alpha, RMSE, R²) for every alpha, sharing the fold Gram matrices."""
    n_folds = int(folds.max()) + 1
    x = fmap(z)
    predictions = np.zeros((len(alphas), len(y)))
    full_gram, full_moment = x.T @ x, x.T @ y
    for fold in range(n_folds):
        held = folds == fold
        xh = x[held]
        gram = full_gram - xh.T @ xh
        moment = full_moment - xh.T @ y[held]
        for a, alpha in enumerate(alphas):
            predictions[a, held] = xh @ _ridge_solve(gram, moment, alpha)
    total = float(((y - y.mean()) ** 2).sum())
    results = []
    for a, alpha in enumerate(alphas):
        sse = float(((predictions[a] - y) ** 2).sum())
        results.append((alpha, math.sqrt(sse / len(y)), 1.0 - sse / total if total > 0 else 0.0))
    return results


def fit_process_model(data: PlantData) -> ProcessModel:
    """Choose a family by k-fold CV, then fit it as a bootstrap ensemble on every row.

    A time-ordered log (a spec with ``time``) is fitted by :mod:`env.dynamics` instead:
    blocked cross-validation, and the plant's dynamics identified with the model.
    """
    if data.is_time_series:
        from env.dynamics import fit_time_series_model  # it builds on this module

        return fit_time_series_model(data)
    settings = data.spec.model
    rng = np.random.default_rng(settings.seed)
    x_mean = data.controls.mean(axis=0)
    x_scale = data.controls.std(axis=0)
    x_scale[x_scale == 0] = 1.0
    y_mean = float(data.state.mean())
    z_all = (data.controls - x_mean) / x_scale
    y_all = data.state - y_mean

    if data.n_rows > settings.max_selection_rows:
        chosen = rng.choice(data.n_rows, settings.max_selection_rows, replace=False)
        z_sel, y_sel = z_all[chosen], y_all[chosen]
    else:
        z_sel, y_sel = z_all, y_all
    folds = rng.permutation(np.arange(len(y_sel)) % settings.folds)

    scores: list[CandidateScore] = []
    maps: dict[str, _FeatureMap] = {}
    for family in dict.fromkeys(settings.candidates):
        fmap = _feature_map(family, z_sel, settings)
        maps[family] = fmap
        n_features = fmap(z_sel[:1]).shape[-1]
        if n_features >= len(y_sel) * (settings.folds - 1) / settings.folds:
            continue  # more parameters than training rows in a fold: not identifiable
        results = _cross_validate(z_sel, y_sel, fmap, settings.ridge_alphas, folds)
        alpha, rmse, r2 = min(results, key=lambda r: r[1])
        scores.append(CandidateScore(family, alpha, rmse, r2, n_features))
    if not scores:
        raise InputError(
            data.spec.csv_path, "too few rows for any model family in model.candidates"
        )
    best = min(scores, key=lambda s: s.rmse)
    fmap = maps[best.family]

    members = []
    for _ in range(settings.ensemble_size):
        # Poisson(1) weights are the streaming form of a bootstrap resample.
        weights = rng.poisson(1.0, size=data.n_rows).astype(np.float64)
        gram, moment = _normal_equations(z_all, y_all, fmap, weights)
        members.append(_ridge_solve(gram, moment, best.alpha))

    return ProcessModel(
        family=best.family,
        control_names=data.spec.control_names,
        x_mean=x_mean,
        x_scale=x_scale,
        y_mean=y_mean,
        coef_members=np.array(members),
        residual_std=best.rmse,
        centers=fmap.centers,
        width=fmap.width,
        alpha=best.alpha,
        cv_scores=tuple(scores),
        csv_sha256=data.csv_sha256,
        n_rows=data.n_rows,
        table_format=data.table_format,
    )
