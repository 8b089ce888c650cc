"""Rigorous bounds of the process model over boxes of control settings.

The planner proves "no setting in this box reaches the band" by bounding the model
over the box: if the lowest possible prediction is above the band (or the highest
below it), every point of the box can be discarded without evaluating it. The bounds
must therefore *contain* the true range (up to floating-point rounding, which the
planner covers with a tolerance); the tighter they are, the fewer boxes the search
splits. Both model families get a bound that is exact to second order as boxes
shrink, so small boxes are decided almost as sharply as single points.

Polynomial families (degree <= 3, in standardised ``z``)
    Taylor form about the box centre ``c`` with radius ``r``: a cubic equals its
    expansion ``f(c) + g.h + h'Hh/2 + f3(h)`` exactly, where ``f3`` is the degree-3
    part of ``f`` itself (third derivatives are constant). Each axis's own terms
    ``g_i h + H_ii h^2 / 2 + a_iii h^3`` form a one-dimensional cubic whose range over
    ``[-r_i, r_i]`` is computed exactly (end points and critical points); cross terms
    are bounded by ``|H_ij| r_i r_j`` and ``|a_m| r^m``. Gradient and Hessian at the
    centres are matrix products of low-degree monomials, precomputed per model.

Gaussian-RBF family (linear terms + ``sum_j v_j exp(-|z - mu_j|^2 / (2 w^2))``)
    Two bounds are intersected (details in :class:`RbfBounds`): the sum of per-basis
    ranges by the sign of ``v_j`` (each basis's range over a box is exact from the
    nearest and farthest point to its centre), tight for large boxes; and the same
    second-order Taylor form as above with the exact gradient and Hessian at the
    centre and a rigorous bound on the third-order remainder, tight for small boxes.
    Fitted RBF weights are large and of both signs, so only the Taylor form, which
    sums them before taking sizes, gets tight.

Every bounder also returns, per axis, how much that axis contributes to the bound's
width: the search splits the box along the largest, so an axis the model barely
depends on is never split.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from env.model import ProcessModel


@dataclass(frozen=True)
class BoxBounds:
    """What a bounder knows about n boxes."""

    low: np.ndarray
    """(n,) no prediction inside the box is below this."""
    high: np.ndarray
    """(n,) ... nor above this."""
    score: np.ndarray
    """(n, k) each axis's contribution to the bound's width (split the largest)."""
    value: np.ndarray
    """(n,) prediction at the box centre."""
    slope: np.ndarray
    """(n, k) gradient at the box centre, per physical unit of each control."""


class BoxBounder(Protocol):
    """Bounds of the model's prediction over boxes of settings."""

    cost_per_box: int
    """Rough floats of work per box, so the search can size its batches."""

    def __call__(self, lower: np.ndarray, upper: np.ndarray) -> BoxBounds:
        """Boxes ``[lower, upper]`` of shape (n, k), physical units."""
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


def _exponents(combos: np.ndarray, k: int) -> np.ndarray:
    """Exponent vectors (m, k) of monomials given as index tuples into [1, z_1..z_k]."""
    exponents = np.zeros((len(combos), k), dtype=np.intp)
    for m, combo in enumerate(combos):
        for index in combo:
            if index:
                exponents[m, index - 1] += 1
    return exponents


@dataclass(frozen=True)
class _TaylorTables:
    """A polynomial's derivatives as linear maps of low-degree monomials of the centre."""

    pairs: np.ndarray
    """(p, 2) degree <= 2 monomials as index pairs into [1, z]."""
    gradient: np.ndarray
    """(p, k): gradient = monomials(pairs) @ gradient."""
    hessian: np.ndarray
    """(k + 1, k, k): Hessian = [1, z] contracted with this."""
    axis_cubic: np.ndarray
    """(k,) coefficient of z_i^3."""
    cross_coef: np.ndarray
    """|coefficients| of the other degree-3 monomials ..."""
    cross_combos: np.ndarray
    """... as index triples into [1, r]."""


def _taylor_tables(combos: np.ndarray, coef: np.ndarray, k: int) -> _TaylorTables:
    exponents = _exponents(combos, k)
    pairs = np.array(list(itertools.combinations_with_replacement(range(k + 1), 2)), np.intp)
    pair_column = {tuple(e): c for c, e in enumerate(_exponents(pairs, k))}
    gradient, hessian, axis_cubic = np.zeros((len(pairs), k)), np.zeros((k + 1, k, k)), np.zeros(k)
    cross: list[tuple[float, np.ndarray]] = []
    for m, (e, c) in enumerate(zip(exponents, coef, strict=True)):
        for i in np.flatnonzero(e):  # d/dz_i of c z^e is c e_i z^(e - 1_i)
            de = e.copy()
            de[i] -= 1
            gradient[pair_column[tuple(de)], i] += c * e[i]
            for j in np.flatnonzero(de):
                dde = de.copy()
                dde[j] -= 1
                column = 0 if dde.sum() == 0 else 1 + int(np.flatnonzero(dde)[0])
                hessian[column, i, j] += c * e[i] * de[j]
        if e.sum() == 3 and e.max() == 3:
            axis_cubic[int(np.argmax(e))] += c
        elif e.sum() == 3:
            cross.append((abs(c), combos[m]))
    return _TaylorTables(
        pairs,
        gradient,
        hessian,
        axis_cubic,
        np.array([c for c, _ in cross]),
        np.array([c for _, c in cross], dtype=np.intp).reshape(-1, 3),
    )


class PolynomialBounds:
    """Taylor-form bounds for linear, quadratic and cubic models (see module docstring)."""

    def __init__(self, model: ProcessModel) -> None:
        if model._combos is None:
            raise ValueError("PolynomialBounds needs a polynomial model")
        self.model = model
        k = model.n_controls
        tables = _taylor_tables(model._combos, model.coef_mean, k)
        self._pairs, self._grad, self._hess = tables.pairs, tables.gradient, tables.hessian
        self._axis_cubic = tables.axis_cubic
        self._cross_coef, self._cross_combos = tables.cross_coef, tables.cross_combos
        self._off_diagonal = ~np.eye(k, dtype=bool)
        self.cost_per_box = len(self._pairs) * k + (k + 1) * k * k + 3 * len(self._cross_coef)

    def __call__(self, lower: np.ndarray, upper: np.ndarray) -> BoxBounds:
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
        score = (axis_hi - axis_lo) + 2.0 * cross_by_axis
        return BoxBounds(low, high, score, value, gradient * model._inv_scale)


# --------------------------------------------------------------------------- rbf


def _third_derivative_peak(alpha: float, tau: np.ndarray) -> np.ndarray:
    """p(tau) = e^(-alpha tau^2) (12 alpha^2 tau + 8 alpha^3 tau^3), tau = |z - mu|.

    Along any direction ``h``, the third derivative of ``exp(-alpha |t|^2)`` is
    ``phi (12 alpha^2 a b - 8 alpha^3 a^3)`` with ``a = t.h``, ``b = |h|^2``; since
    ``|a| <= |t| |h|`` its size is at most ``p(|t|) |h|^3``.
    """
    return np.exp(-alpha * tau * tau) * (12.0 * alpha**2 * tau + 8.0 * alpha**3 * tau**3)


class RbfBounds:
    """Per-basis and second-order Taylor bounds for the Gaussian-RBF family.

    ``f = const + w.z + sum_j v_j phi_j(z)``, ``phi_j = exp(-alpha |z - mu_j|^2)``.
    Over a box with centre ``c`` and radius ``r`` (in ``z``):

    * per basis: ``|z - mu_j|^2`` lies in ``[S_min_j, S_max_j]`` (nearest and farthest
      point of the box, exact), so ``phi_j`` lies in ``[exp(-alpha S_max_j),
      exp(-alpha S_min_j)]``; summed by the sign of ``v_j`` with the linear part's exact
      range. Tight for boxes large against the basis width.
    * Taylor to second order about the centre with the exact gradient and Hessian
      there, and a Lagrange remainder ``|R3| <= M3 |r|^3 / 6`` with
      ``M3 = sum_j |v_j| max p(|t|)`` over the box (:func:`_third_derivative_peak`).
      The linear and diagonal terms of each axis are ranged exactly together; the
      cross terms by ``|H_ij| r_i r_j``. Fitted RBF weights are large and cancel
      (ridge on overlapping bases), so bounding per basis any earlier than the third
      order would be loose; the Hessian at the centre keeps the cancellation.

    The two are intersected. The work is a few operations per (box, basis, control),
    one batched ``k x k`` matrix product per box and exponentials per (box, basis).
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
        # p(tau) rises to one peak and decays: locate it once (then refine numerically)
        grid = np.linspace(0.0, 10.0 / np.sqrt(self.alpha), 20001)
        self.tau_peak = float(grid[np.argmax(_third_derivative_peak(self.alpha, grid))])
        self.p_peak = float(_third_derivative_peak(self.alpha, np.array(self.tau_peak))) * (
            1.0 + 1e-6
        )
        self._off_diagonal = ~np.eye(k, dtype=bool)
        self.cost_per_box = len(self.weights) * k * (12 + k)

    def __call__(self, lower: np.ndarray, upper: np.ndarray) -> BoxBounds:
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

        # second-order Taylor form about the centre
        weighted = np.exp(-alpha * s_centre) * self.weights  # (n, J)
        value = lin_mid + weighted.sum(axis=1)
        gradient = self.linear - 2.0 * alpha * np.einsum("nj,njk->nk", weighted, d)
        hessian = 4.0 * alpha**2 * np.matmul(np.swapaxes(d * weighted[:, :, None], 1, 2), d)
        diagonal = np.einsum("nii->ni", hessian) - 2.0 * alpha * weighted.sum(axis=1)[:, None]
        axis_lo, axis_hi = _cubic_range(gradient, 0.5 * diagonal, np.zeros_like(r), r)
        abs_off = np.abs(hessian) * self._off_diagonal
        cross_by_axis = 0.5 * np.einsum("nij,nj->ni", abs_off, r) * r
        peak = self._peak_over(np.sqrt(s_min), np.sqrt(s_max)) @ self.abs_weights
        radius = np.sqrt(np.einsum("nk,nk->n", r, r))
        remainder = peak * radius**3 / 6.0
        spread = cross_by_axis.sum(axis=1) + remainder
        low = np.maximum(low, value + axis_lo.sum(axis=1) - spread)
        high = np.minimum(high, value + axis_hi.sum(axis=1) + spread)
        share = r / np.maximum(radius, 1e-300)[:, None]
        score = (axis_hi - axis_lo) + 2.0 * cross_by_axis + remainder[:, None] * share
        return BoxBounds(low, high, score, value, gradient * model._inv_scale)

    def _peak_over(self, tau_min: np.ndarray, tau_max: np.ndarray) -> np.ndarray:
        """max of p(tau) over [tau_min, tau_max] (p has a single peak)."""
        ends = np.maximum(
            _third_derivative_peak(self.alpha, tau_min), _third_derivative_peak(self.alpha, tau_max)
        )
        inside = (tau_min <= self.tau_peak) & (tau_max >= self.tau_peak)
        return np.maximum(ends, inside * self.p_peak)
