"""Rigorous bounds of the process model over boxes of control settings.

The planner proves "no setting in this box reaches the band" by bounding the model
over the box: if the lowest possible prediction is above the band (or the highest
below it), every point of the box can be discarded without evaluating it. The bounds
must therefore *contain* the true range (up to floating-point rounding, which the
planner covers with a tolerance); the tighter they are, the fewer boxes the search
splits. Both model families get a bound that is exact to first order as boxes shrink,
so small boxes are decided almost as sharply as single points.

Polynomial families (degree <= 3, in standardised ``z``)
    Taylor form about the box centre ``c`` with radius ``r``: a cubic equals its
    expansion ``f(c) + g.h + h'Hh/2 + f3(h)`` exactly, where ``f3`` is the degree-3
    part of ``f`` itself (third derivatives are constant). Each axis's own terms
    ``g_i h + H_ii h^2 / 2 + a_iii h^3`` form a one-dimensional cubic whose range over
    ``[-r_i, r_i]`` is computed exactly (end points and critical points); cross terms
    are bounded by ``|H_ij| r_i r_j`` and ``|a_m| r^m``. Gradient and Hessian at the
    centres are matrix products of low-degree monomials, precomputed per model.

Gaussian-RBF family (linear terms + ``sum_j v_j exp(-|z - mu_j|^2 / (2 w^2))``)
    Each basis factorises over the axes, so its range over a box is exact from the
    per-axis nearest and farthest distances to its centre. Two bounds are intersected:
    the sum of per-basis ranges (by sign of ``v_j``), tight for large boxes; and the
    mean-value form ``f(c) + sum_i G_i [-r_i, r_i]``, with ``G_i`` an enclosure of the
    partial derivative built from exact per-basis, per-axis factor ranges, tight for
    small boxes.

Every bounder also returns, per axis, how much that axis contributes to the bound's
width: the search splits the box along the largest, so an axis the model barely
depends on is never split.
"""

from __future__ import annotations

import itertools
from typing import Protocol

import numpy as np

from env.model import ProcessModel


class BoxBounder(Protocol):
    """Lower and upper bounds of the model's prediction over boxes, and split scores."""

    cost_per_box: int
    """Rough floats of work per box, so the search can size its batches."""

    def __call__(
        self, lower: np.ndarray, upper: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes ``[lower, upper]`` of shape (n, k), physical units.

        Returns ``(low, high, split_score)``: shapes (n,), (n,), (n, k).
        """
        ...


def box_bounder(model: ProcessModel) -> BoxBounder:
    """The bounder for ``model``'s family."""
    if model.family == "rbf":
        return RbfBounds(model)
    return PolynomialBounds(model)


# --------------------------------------------------------------------------- polynomial


def _cubic_range(
    g: np.ndarray, q: np.ndarray, d: np.ndarray, r: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact range of p(h) = g h + q h^2 + d h^3 over h in [-r, r] (elementwise)."""
    candidates = [-r, r]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # p'(h) = g + 2 q h + 3 d h^2
        linear_root = np.where(q != 0, -g / (2.0 * q), 0.0)
        disc = 4.0 * q * q - 12.0 * d * g
        sqrt_disc = np.sqrt(np.maximum(disc, 0.0))
        root_a = (-2.0 * q + sqrt_disc) / (6.0 * d)
        root_b = (-2.0 * q - sqrt_disc) / (6.0 * d)
        cubic = d != 0
        roots = [
            np.where(cubic, root_a, linear_root),
            np.where(cubic, root_b, linear_root),
        ]
    for root in roots:
        # Clipping keeps every candidate inside [-r, r]; a non-finite root becomes 0.
        candidates.append(np.clip(np.nan_to_num(root, nan=0.0, posinf=0.0, neginf=0.0), -r, r))
    values = np.stack([h * (g + h * (q + h * d)) for h in candidates])
    return values.min(axis=0), values.max(axis=0)


class PolynomialBounds:
    """Taylor-form bounds for linear, quadratic and cubic models (see module docstring)."""

    def __init__(self, model: ProcessModel) -> None:
        combos = model._combos
        if combos is None:
            raise ValueError("PolynomialBounds needs a polynomial model")
        self.model = model
        k = model.n_controls
        self.k = k
        coef = model.coef_mean
        exponents = np.zeros((len(combos), k), dtype=np.intp)
        for m, combo in enumerate(combos):
            for index in combo:
                if index:
                    exponents[m, index - 1] += 1
        degree = exponents.sum(axis=1)
        # Degree <= 2 monomials in [1, z]: columns of the gradient's feature matrix.
        self._pairs = np.array(
            list(itertools.combinations_with_replacement(range(k + 1), 2)), dtype=np.intp
        )
        pair_column = {}
        for column, (a, b) in enumerate(self._pairs):
            e = np.zeros(k, dtype=np.intp)
            for index in (a, b):
                if index:
                    e[index - 1] += 1
            pair_column[tuple(e)] = column
        self._grad = np.zeros((len(self._pairs), k))
        self._hess = np.zeros((k + 1, k, k))
        self._axis_cubic = np.zeros(k)
        cross: list[tuple[float, np.ndarray]] = []  # (|coef|, combo into [1, r])
        for m in range(len(combos)):
            e, c = exponents[m], coef[m]
            if c == 0.0 or degree[m] == 0:
                continue
            for i in np.flatnonzero(e):
                de = e.copy()
                de[i] -= 1
                self._grad[pair_column[tuple(de)], i] += c * e[i]
                for j in np.flatnonzero(de):
                    dde = de.copy()
                    dde[j] -= 1
                    column = 0 if dde.sum() == 0 else 1 + int(np.flatnonzero(dde)[0])
                    self._hess[column, i, j] += c * e[i] * de[j]
            if degree[m] == 3:
                if e.max() == 3:
                    self._axis_cubic[int(np.argmax(e))] += c
                else:
                    cross.append((abs(c), combos[m]))
        self._cross_coef = np.array([c for c, _ in cross])
        self._cross_combos = np.array([c for _, c in cross], dtype=np.intp).reshape(-1, 3)
        self._off_diagonal = ~np.eye(k, dtype=bool)
        self.cost_per_box = len(self._pairs) * k + (k + 1) * k * k + 3 * len(cross)

    def __call__(
        self, lower: np.ndarray, upper: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        model = self.model
        centre_u = 0.5 * (lower + upper)
        centre = (centre_u - model.x_mean) * model._inv_scale
        r = 0.5 * (upper - lower) * model._inv_scale
        value = model.predict(centre_u)
        z_ext = np.concatenate([np.ones((len(centre), 1)), centre], axis=1)
        gradient = (z_ext[:, self._pairs[:, 0]] * z_ext[:, self._pairs[:, 1]]) @ self._grad
        hessian = np.einsum("nc,cij->nij", z_ext, self._hess)
        diagonal = np.einsum("nii->ni", hessian)
        axis_lo, axis_hi = _cubic_range(gradient, 0.5 * diagonal, self._axis_cubic, r)
        # off-diagonal quadratic terms: H_ij h_i h_j over i < j, i.e. half the full sum
        abs_off = np.abs(hessian) * self._off_diagonal
        cross_by_axis = 0.5 * np.einsum("nij,nj->ni", abs_off, r) * r
        spread = cross_by_axis.sum(axis=1)
        if len(self._cross_coef):
            r_ext = np.concatenate([np.ones((len(r), 1)), r], axis=1)
            combos = self._cross_combos
            products = r_ext[:, combos[:, 0]] * r_ext[:, combos[:, 1]] * r_ext[:, combos[:, 2]]
            spread = spread + products @ self._cross_coef
        low = value + axis_lo.sum(axis=1) - spread
        high = value + axis_hi.sum(axis=1) + spread
        return low, high, (axis_hi - axis_lo) + 2.0 * cross_by_axis


# --------------------------------------------------------------------------- rbf


def _curvature_factor(alpha: float, s_min: np.ndarray, s_max: np.ndarray) -> np.ndarray:
    """max over s in [s_min, s_max] of max(e^(-alpha s), |e^(-alpha s) (2 alpha s - 1)|).

    The Hessian of ``exp(-alpha |t|^2)`` is ``phi (4 alpha^2 t t' - 2 alpha I)``, whose
    spectral norm is ``2 alpha`` times this expression at ``s = |t|^2``; both terms
    depend on ``s`` only, so the maximum over the box's range of ``s`` is exact.
    ``h(s) = e^(-alpha s)(2 alpha s - 1)`` rises from -1 at 0 to its peak at
    ``s = 3 / (2 alpha)``, then decays.
    """
    e_min = np.exp(-alpha * s_min)
    e_max = np.exp(-alpha * s_max)
    h_min = e_min * (2.0 * alpha * s_min - 1.0)
    h_max = e_max * (2.0 * alpha * s_max - 1.0)
    s_peak = 1.5 / alpha
    peak = 2.0 * np.exp(-1.5)
    inside = (s_min <= s_peak) & (s_max >= s_peak)
    h_abs = np.maximum(np.abs(h_min), np.abs(h_max))
    h_abs = np.maximum(h_abs, inside * peak)
    return np.maximum(e_min, h_abs)


class RbfBounds:
    """Per-basis and Taylor bounds for the Gaussian-RBF family.

    ``f = const + w.z + sum_j v_j phi_j(z)``, ``phi_j = exp(-alpha |z - mu_j|^2)``.
    Over a box with centre ``c`` and radius ``r`` (in ``z``):

    * per basis: ``|z - mu_j|^2`` lies in ``[S_min_j, S_max_j]`` (nearest and farthest
      point of the box, exact), so ``phi_j`` lies in ``[exp(-alpha S_max_j),
      exp(-alpha S_min_j)]``; summed by the sign of ``v_j`` with the linear part's exact
      range. Tight for boxes large against the basis width.
    * Taylor with a Hessian bound: ``f(c + h) = f(c) + grad f(c).h + h' H(xi) h / 2``
      with ``|h' H h| <= M |h|^2`` and ``M = sum_j |v_j| 2 alpha max_s(...)`` (see
      :func:`_curvature_factor`). Exact to first order: tight for small boxes.

    The two are intersected. The work is a few cheap operations per (box, basis,
    control) and exponentials per (box, basis) only.
    """

    def __init__(self, model: ProcessModel) -> None:
        if model.family != "rbf" or model.centers is None:
            raise ValueError("RbfBounds needs an rbf model")
        self.model = model
        k = model.n_controls
        coef = model.coef_mean
        self.constant = model.y_mean + coef[0]
        self.linear = coef[1 : 1 + k]
        self.abs_linear = np.abs(self.linear)
        self.weights = coef[1 + k :]
        self.abs_weights = np.abs(self.weights)
        self.v_pos = np.maximum(self.weights, 0.0)
        self.v_neg = np.minimum(self.weights, 0.0)
        self.centers = model.centers
        self.alpha = float(model._inv_two_width_sq)
        self.cost_per_box = 10 * len(self.weights) * k

    def __call__(
        self, lower: np.ndarray, upper: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        model, alpha = self.model, self.alpha
        centre = (0.5 * (lower + upper) - model.x_mean) * model._inv_scale
        r = 0.5 * (upper - lower) * model._inv_scale
        d = centre[:, None, :] - self.centers[None]  # (n, J, k)
        dist = np.abs(d)
        s_centre = np.einsum("njk,njk->nj", d, d)
        far = dist + r[:, None, :]
        s_max = np.einsum("njk,njk->nj", far, far)
        near = np.maximum(dist - r[:, None, :], 0.0)
        s_min = np.einsum("njk,njk->nj", near, near)

        # per-basis ranges plus the exact range of the linear part
        phi_lo, phi_hi = np.exp(-alpha * s_max), np.exp(-alpha * s_min)
        lin_mid = self.constant + centre @ self.linear
        lin_half = r @ self.abs_linear
        low = lin_mid - lin_half + phi_lo @ self.v_pos + phi_hi @ self.v_neg
        high = lin_mid + lin_half + phi_hi @ self.v_pos + phi_lo @ self.v_neg

        # Taylor form about the centre with a bound on the Hessian's norm
        phi_c = np.exp(-alpha * s_centre)
        weighted = phi_c * self.weights  # (n, J)
        value = lin_mid + weighted.sum(axis=1)
        # grad = w - 2 alpha sum_j v_j phi_j (c - mu_j)
        gradient = self.linear - 2.0 * alpha * np.einsum("nj,njk->nk", weighted, d)
        curvature = 2.0 * alpha * (_curvature_factor(alpha, s_min, s_max) @ self.abs_weights)
        first = np.abs(gradient) * r
        second = 0.5 * curvature[:, None] * r * r
        half = first.sum(axis=1) + second.sum(axis=1)
        low = np.maximum(low, value - half)
        high = np.minimum(high, value + half)
        return low, high, first + second
