"""Data support: is a reading's operating point one the training rows cover?

A process model fitted on a few hundred rows says nothing reliable about control
settings far from those rows, and neither does a policy trained on it. Advice there must
say so instead of sounding certain. This module measures how far a reading's control
settings lie from the rows and calibrates what "far" means on the rows themselves.

The measure:

* every control is standardised by the rows' mean and standard deviation, so that one
  unit means "one typical spread of this control" whatever its physical unit;
* the *distance* of a setting is the mean Euclidean distance to its ``k`` nearest rows
  (``k`` = 5): one stray historical row does not make a region "covered", and unlike a
  Mahalanobis ellipse the measure follows data that sit in several clusters or along a
  curve;
* the *threshold* is calibrated by cross-validation: the rows are split into folds,
  every held-out row is measured against the other folds, and the threshold is the
  99th percentile of those held-out distances. So about 99% of rows the model has not
  seen, drawn like the training rows, count as inside; readings beyond it are
  "outside the data". (Against all rows, rather than four fifths of them, distances
  come out a little shorter, so the rate is, if anything, slightly above 99%.)

At most :data:`MAX_REFERENCE_ROWS` rows (a seeded random subset) are kept, which bounds
both the size of an exported policy and the cost of one query (one small matrix product
against the kept rows). Pure numpy, no Ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from env.data import PlantData
from env.errors import InputError

NEIGHBOURS = 5
"""Rows averaged over for the distance (fewer if there are fewer rows)."""
INSIDE_QUANTILE = 0.99
"""Share of held-out rows the calibrated threshold keeps inside."""
FOLDS = 5
"""Cross-validation folds of the calibration."""
MAX_REFERENCE_ROWS = 4096
"""Rows kept for queries (and in an export): a seeded random subset beyond this."""
MIN_THRESHOLD = 1e-6
"""Floor of the threshold: rows that all repeat a few settings still leave a margin
for float noise around those settings."""
_CHUNK_ELEMENTS = 1 << 22
"""Query rows x reference rows per distance block (bounds the memory of a query)."""
OUTSIDE_WARNING = "outside the data — verify before acting"
"""First words of every warning: the data do not cover the reading's settings."""
_ARRAY_NAMES = ("center", "scale", "rows", "row_numbers", "threshold", "neighbours", "quantile")


@dataclass(frozen=True)
class Support:
    """How well the training rows cover one reading's control settings."""

    distance: float
    """Mean distance to the nearest training rows, in standard deviations of the rows."""
    threshold: float
    """Calibrated limit: about 99% of held-out rows lie within it."""
    inside: bool
    """``distance <= threshold``."""
    nearest_row: int
    """CSV data row (0-based) whose settings are closest to the reading's."""
    furthest_control: str
    """The control that differs most from that nearest row (in standard deviations)."""

    def warning(self) -> str | None:
        """``None`` inside the data; outside, the warning to show with the advice."""
        if self.inside:
            return None
        return (
            f"{OUTSIDE_WARNING}: the settings are {self.distance:.3g} standard units from "
            f"the nearest training rows (99% of held-out rows lie within {self.threshold:.3g}); "
            f"furthest off: {self.furthest_control}"
        )


@dataclass(frozen=True)
class SupportBatch:
    """:class:`Support` of many readings as arrays (index ``i`` = reading ``i``)."""

    distance: np.ndarray
    inside: np.ndarray
    nearest_row: np.ndarray
    furthest: np.ndarray
    """Index of the control furthest from the nearest row."""
    threshold: float
    control_names: tuple[str, ...]

    def at(self, i: int) -> Support:
        return Support(
            distance=float(self.distance[i]),
            threshold=self.threshold,
            inside=bool(self.inside[i]),
            nearest_row=int(self.nearest_row[i]),
            furthest_control=self.control_names[int(self.furthest[i])],
        )


@dataclass(frozen=True, eq=False)
class DataSupport:
    """Standardised training rows and the calibrated distance threshold."""

    control_names: tuple[str, ...]
    center: np.ndarray
    """Shape (k,): mean of each control over the rows."""
    scale: np.ndarray
    """Shape (k,): standard deviation of each control over the rows."""
    rows: np.ndarray
    """Shape (m, k): the kept rows, standardised."""
    row_numbers: np.ndarray
    """Shape (m,): CSV data-row number of each kept row."""
    threshold: float
    neighbours: int
    quantile: float

    def measure(self, controls: np.ndarray) -> SupportBatch:
        """Support of readings with ``controls`` of shape (n, k) (raw units)."""
        z = (np.asarray(controls, dtype=np.float64) - self.center) / self.scale
        distance, nearest = _knn_distance(z, self.rows, self.neighbours)
        furthest = np.abs(z - self.rows[nearest]).argmax(axis=1)
        return SupportBatch(
            distance=distance,
            inside=distance <= self.threshold,
            nearest_row=self.row_numbers[nearest],
            furthest=furthest,
            threshold=self.threshold,
            control_names=self.control_names,
        )

    def measure_one(self, controls: np.ndarray) -> Support:
        return self.measure(np.asarray(controls, dtype=np.float64)[None]).at(0)

    # ------------------------------------------------------------------ files
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for ``numpy.savez`` (read back with ``allow_pickle=False``)."""
        return {
            "center": self.center,
            "scale": self.scale,
            "rows": self.rows,
            "row_numbers": self.row_numbers.astype(np.int64),
            "threshold": np.float64(self.threshold),
            "neighbours": np.int64(self.neighbours),
            "quantile": np.float64(self.quantile),
        }

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], control_names: tuple[str, ...], source: str | Path
    ) -> DataSupport:
        missing = [name for name in _ARRAY_NAMES if name not in arrays]
        if missing:
            raise InputError(source, f"data-support arrays missing: {', '.join(missing)}")
        k = len(control_names)
        rows = np.asarray(arrays["rows"], dtype=np.float64)
        shapes_ok = (
            rows.ndim == 2
            and rows.shape[1] == k
            and rows.shape[0] >= 1
            and np.shape(arrays["center"]) == (k,)
            and np.shape(arrays["scale"]) == (k,)
            and np.shape(arrays["row_numbers"]) == (rows.shape[0],)
        )
        if not shapes_ok:
            raise InputError(source, f"data-support arrays do not fit {k} control(s)")
        return cls(
            control_names=tuple(control_names),
            center=np.asarray(arrays["center"], dtype=np.float64),
            scale=np.asarray(arrays["scale"], dtype=np.float64),
            rows=rows,
            row_numbers=np.asarray(arrays["row_numbers"], dtype=np.int64),
            threshold=float(arrays["threshold"]),
            neighbours=int(arrays["neighbours"]),
            quantile=float(arrays["quantile"]),
        )


def fit_support(
    controls: np.ndarray,
    row_numbers: np.ndarray,
    control_names: tuple[str, ...],
    *,
    neighbours: int = NEIGHBOURS,
    quantile: float = INSIDE_QUANTILE,
    folds: int = FOLDS,
    max_rows: int = MAX_REFERENCE_ROWS,
    seed: int = 0,
) -> DataSupport:
    """Standardise the rows, keep at most ``max_rows``, calibrate the threshold.

    Deterministic for a given seed: a checkpoint's plant and its export get the same
    support, so advice is the same through either.
    """
    controls = np.asarray(controls, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if len(controls) > max_rows:
        keep = np.sort(rng.choice(len(controls), size=max_rows, replace=False))
        controls, row_numbers = controls[keep], np.asarray(row_numbers)[keep]
    center = controls.mean(axis=0)
    spread = controls.std(axis=0)
    scale = np.where(spread > 0.0, spread, 1.0)
    z = (controls - center) / scale
    neighbours = max(1, min(neighbours, len(z) - len(z) // folds - 1))
    held_out = _cross_validated_distances(z, neighbours, folds, rng)
    threshold = max(float(np.quantile(held_out, quantile)), MIN_THRESHOLD)
    return DataSupport(
        control_names=tuple(control_names),
        center=center,
        scale=scale,
        rows=z,
        row_numbers=np.asarray(row_numbers, dtype=np.int64),
        threshold=threshold,
        neighbours=neighbours,
        quantile=quantile,
    )


def fit_data_support(data: PlantData) -> DataSupport:
    """The support of a validated CSV: every complete row, with its CSV row number."""
    return fit_support(data.controls, data.row_numbers, data.spec.control_names)


def _cross_validated_distances(
    z: np.ndarray, neighbours: int, folds: int, rng: np.random.Generator
) -> np.ndarray:
    """Distance of every row to the rows of the other folds."""
    fold_of = rng.permutation(len(z)) % folds
    distances = np.empty(len(z))
    for fold in range(folds):
        held = fold_of == fold
        distances[held] = _knn_distance(z[held], z[~held], neighbours)[0]
    return distances


def _knn_distance(
    queries: np.ndarray, reference: np.ndarray, neighbours: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean distance to the ``neighbours`` nearest reference rows, and the nearest's index.

    Brute force in blocks: ``|q|^2 + |r|^2 - 2 q.r`` is one matrix product, fast for
    the few thousand rows kept and exact for any number of controls.
    """
    k = min(neighbours, len(reference))
    ref_sq = np.einsum("ij,ij->i", reference, reference)
    minus_two_ref_t = -2.0 * reference.T
    block = max(1, _CHUNK_ELEMENTS // max(1, len(reference)))
    mean = np.empty(len(queries))
    nearest = np.empty(len(queries), dtype=np.int64)
    # a reading far outside (say 1e300) overflows to an infinite distance, which is
    # the right answer (outside the data): no numpy warning on the user's screen
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, len(queries), block):
            q = queries[start : start + block]
            squared = q @ minus_two_ref_t  # in place from here: one block-sized array
            squared += ref_sq
            squared += np.einsum("ij,ij->i", q, q)[:, None]
            np.maximum(squared, 0.0, out=squared)
            # k passes of arg-min beat a partition for the few neighbours used here
            rows = np.arange(len(q))
            chosen = np.empty((len(q), k), dtype=np.int64)
            for rank in range(k):
                chosen[:, rank] = squared.argmin(axis=1)
                squared[rows, chosen[:, rank]] = np.inf
            # The expansion above loses digits for close rows (and its rounding depends on
            # the block's shape): the chosen rows' distances are computed exactly.
            exact = np.sqrt(((q[:, None, :] - reference[chosen]) ** 2).sum(axis=-1))
            mean[start : start + block] = exact.mean(axis=1)
            nearest[start : start + block] = chosen[rows, exact.argmin(axis=1)]
    return mean, nearest
