"""Load a plant table and check it against its dataset spec.

Historian exports are messy: a column renamed, a cell with "n/a", a stuck sensor
reporting one value all day. Each such problem is refused here with one line naming the
file, the column and the problem, before any model is fitted. Rows with missing values
are dropped, and the count is reported in :attr:`PlantData.notes` rather than silently.
How the file is written (encoding, separator, decimal mark, Excel sheet) is settled by
:mod:`env.table_reader`; this module checks what it reads.

With a ``time`` column the rows are a time-ordered log: the stamps are checked (no
repeats, never backwards) and the kept rows are cut into segments of consecutive samples
at gaps and at dropped rows (:mod:`env.time_log`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from env.errors import InputError
from env.spec import DatasetSpec
from env.table_format import RecordedRead, TableFormat
from env.table_reader import missing_column_problem, open_table, read_columns, to_numbers
from env.time_log import (
    TimeColumn,
    check_order,
    describe_period,
    parse_time_column,
    position_in_segment,
    segments_of,
)

ROWS_PER_PARAMETER = 10
"""Minimum rows per linear-model parameter: fewer cannot support a cross-validated fit."""


def min_rows_for(n_controls: int, folds: int) -> int:
    """Fewest rows the fit accepts: enough for every CV fold to fit a linear model."""
    return max(ROWS_PER_PARAMETER * (n_controls + 1), 3 * folds)


@dataclass(frozen=True)
class PlantData:
    """Validated plant observations, as float64 arrays in the spec's control order."""

    spec: DatasetSpec
    state: np.ndarray
    """Shape (n,): measured temperature per row."""
    controls: np.ndarray
    """Shape (n, k): control settings per row."""
    lower: np.ndarray
    """Shape (k,): lower control bounds (spec bounds or observed minimum)."""
    upper: np.ndarray
    """Shape (k,): upper control bounds (spec bounds or observed maximum)."""
    csv_sha256: str
    row_numbers: np.ndarray
    """Shape (n,): the CSV data-row index (0-based, header excluded) of each kept row."""
    table_format: TableFormat
    """How the file was read (recorded in the model artifact)."""
    notes: tuple[str, ...] = field(default=())
    """What was dropped or adjusted, for the user to read."""
    time: np.ndarray | None = None
    """Shape (n,): time of each kept row (seconds since the first stamp for dates, the
    numbers as written otherwise); None when the spec names no time column."""
    segment: np.ndarray | None = None
    """Shape (n,): segment of each kept row (runs of consecutive samples, see
    :mod:`env.time_log`); None without a time column."""
    sample_period: float | None = None
    """The median step between time stamps (None without a time column)."""
    time_kind: str = ""
    """"datetime" or "number" with a time column."""

    @property
    def n_rows(self) -> int:
        return int(self.state.shape[0])

    @property
    def is_time_series(self) -> bool:
        return self.segment is not None

    def position_in_segment(self) -> np.ndarray:
        """For each row, how many rows of its segment precede it (0 without time)."""
        if self.segment is None:
            return np.zeros(self.n_rows, np.int64)
        return position_in_segment(self.segment)

    def start_row_mask(self) -> np.ndarray:
        """Rows whose controls lie inside the bounds: those are valid start states."""
        inside = (self.controls >= self.lower) & (self.controls <= self.upper)
        return np.asarray(inside.all(axis=1))


def file_sha256(path: Path) -> str:
    """sha256 of a file, streamed so that a large CSV is never held twice in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_columns(path: Path, header: list[str], spec: DatasetSpec, fmt: TableFormat) -> None:
    duplicates = sorted({name for name in header if header.count(name) > 1 and name})
    if duplicates:
        raise InputError(path, "duplicate column in header", ", ".join(duplicates))
    columns = (spec.state, *spec.control_names)
    for name in (*columns, *([spec.time] if spec.time is not None else [])):
        if name not in header:
            raise InputError(path, missing_column_problem(header, fmt, columns), name)


def _numeric_column(path: Path, frame: pd.DataFrame, name: str, fmt: TableFormat) -> np.ndarray:
    raw = frame[name]
    array = to_numbers(raw, fmt)
    bad = np.isnan(array) & raw.notna().to_numpy() & (raw.astype(str).str.strip() != "").to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        cell = str(raw.iloc[first])
        hint = ""
        if fmt.decimal == "." and "," in cell:
            hint = ": if the file writes decimal commas, set `decimal: ','` in the spec"
        raise InputError(
            path,
            f"non-numeric value {cell!r} in data row {first + 1}"
            f" ({int(bad.sum())} such cell(s), read as {fmt.describe()}){hint}",
            name,
        )
    if np.isinf(array).any():
        first = int(np.flatnonzero(np.isinf(array))[0])
        raise InputError(path, f"infinite value in data row {first + 1}", name)
    if np.isnan(array).all():
        raise InputError(path, "column has no values (every cell is empty)", name)
    return array


def _resolve_bounds(
    path: Path, spec: DatasetSpec, controls: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    lower = controls.min(axis=0)
    upper = controls.max(axis=0)
    for i, control in enumerate(spec.controls):
        if control.bounds is None:
            continue
        low, high = control.bounds
        if low > upper[i] or high < lower[i]:
            raise InputError(
                spec.source or path,
                f"bounds [{low:g}, {high:g}] exclude every row "
                f"(observed {lower[i]:g} to {upper[i]:g})",
                f"controls.{control.name}.bounds",
            )
        lower[i], upper[i] = low, high
    return lower, upper


def _read_time(
    path: Path, frame: pd.DataFrame, spec: DatasetSpec, fmt: TableFormat
) -> TimeColumn | None:
    """The time column, parsed and checked for order (None without one)."""
    if spec.time is None:
        return None
    time = parse_time_column(path, frame[spec.time], fmt, spec.time)
    check_order(path, time, frame[spec.time], spec.time)
    return time


def _time_series(
    time: TimeColumn | None, kept: np.ndarray, max_gap: float, notes: list[str]
) -> dict:
    """PlantData's time fields for the kept rows (empty without a time column)."""
    if time is None:
        return {}
    segments = segments_of(time.values, kept, max_gap)
    period = describe_period(segments.sample_period, time.kind)
    cuts = []
    if segments.gaps:
        cuts.append(f"{segments.gaps} gap(s) longer than {max_gap:g} sample periods")
    if segments.missing_breaks:
        cuts.append(f"{segments.missing_breaks} place(s) with dropped rows")
    split = f", split at {' and '.join(cuts)}" if cuts else ""
    notes.append(
        f"time-ordered log from {time.first}: sample period {period}, "
        f"{segments.count} segment(s) of consecutive samples{split}"
    )
    return {
        "time": time.values[kept],
        "segment": segments.segment,
        "sample_period": segments.sample_period,
        "time_kind": time.kind,
    }


def load_plant_data(spec: DatasetSpec, recorded: RecordedRead | None = None) -> PlantData:
    """Read ``spec.csv_path`` and validate it; raises :class:`InputError` on bad input.

    ``recorded``: how a fitted model read the file, reused when the file is unchanged
    so that every command reads it the same way.
    """
    path = spec.csv_path
    if not path.exists():
        raise InputError(path, "CSV file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, expected a CSV file")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    columns = [spec.state, *spec.control_names]
    sha256 = file_sha256(path)
    # the time column is not used to detect the file's format: stamps like 25.11.2026
    # would vote on the decimal mark
    fmt, header = open_table(path, columns, spec.read_options, recorded, sha256)
    _check_columns(path, header, spec, fmt)
    frame = read_columns(path, fmt, columns + ([spec.time] if spec.time is not None else []))
    if len(frame) == 0:
        raise InputError(path, "no data rows (header only)")

    time = _read_time(path, frame, spec, fmt)
    table = np.column_stack([_numeric_column(path, frame, name, fmt) for name in columns])
    del frame
    complete = ~np.isnan(table).any(axis=1)
    if time is not None:
        complete &= ~np.isnan(time.values)
    notes = []
    n_dropped = int((~complete).sum())
    if n_dropped:
        notes.append(f"dropped {n_dropped} of {len(table)} rows with missing values")
    row_numbers = np.flatnonzero(complete)
    table = table[complete]
    series = _time_series(time, row_numbers, spec.max_gap, notes)

    needed = min_rows_for(len(spec.controls), spec.model.folds)
    if len(table) < needed:
        raise InputError(
            path,
            f"too few complete rows to fit a model: {len(table)} (need at least {needed} "
            f"for {len(spec.controls)} control(s))",
        )
    state, controls = table[:, 0].copy(), table[:, 1:].copy()
    del table
    for i, name in enumerate(spec.control_names):
        if np.ptp(controls[:, i]) == 0.0:
            raise InputError(
                path, f"control is constant ({controls[0, i]:g}): its effect cannot be fitted", name
            )
    if np.ptp(state) == 0.0:
        raise InputError(path, f"state is constant ({state[0]:g}): nothing to model", spec.state)

    lower, upper = _resolve_bounds(path, spec, controls)
    data = PlantData(
        spec=spec,
        state=state,
        controls=controls,
        lower=lower,
        upper=upper,
        csv_sha256=sha256,
        row_numbers=row_numbers,
        table_format=fmt,
        notes=tuple(notes),
        **series,
    )
    n_outside = int((~data.start_row_mask()).sum())
    if n_outside:
        notes.append(f"{n_outside} row(s) lie outside the control bounds: not used as starts")
        data = PlantData(**{**data.__dict__, "notes": tuple(notes)})
    return data
