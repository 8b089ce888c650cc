"""The time column of a time-ordered log: stamps, their order, and segments.

A historian export is a time series, and a model of the plant's dynamics learns from
*consecutive* rows. So two rows may only be treated as neighbours when they are one
sample apart in time, with complete values. This module reads the time column and cuts
the log into **segments**: runs of complete rows, each one sample period after the last.
A segment ends

* at a gap: a step longer than ``max_gap`` sample periods (the sample period is the
  median step between time-stamped rows);
* at a row with a missing value (in the state, a control or the time stamp): that row
  is dropped, and the rows on either side are not neighbours.

Segments are never bridged: nothing is interpolated. Time stamps that repeat or go
backwards are refused (one line naming the data rows): the order of the rows *is* the
time order, and a log whose clock steps back (a daylight-saving change written in local
time, two exports pasted together) would otherwise teach the model transitions that
never happened. Sorting such a file silently would hide exactly that.

Time stamps may be dates and times (parsed by pandas; the format is inferred from the
first stamp and applied to all; zone offsets are honoured, stamps without one are
taken as they are) or plain numbers (sample numbers, seconds).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from env.errors import InputError
from env.table_format import TableFormat
from env.table_reader import to_numbers

_EPOCH = pd.Timestamp(0, tz="UTC")


@dataclass(frozen=True)
class TimeColumn:
    """A parsed time column: one value per data row (NaN where the cell is empty)."""

    values: np.ndarray
    """Shape (n,): seconds since the first stamp (dates), or the numbers as written."""
    kind: str
    """"datetime" or "number"."""
    first: str
    """The first stamp as written (for messages and notes)."""

    @property
    def unit(self) -> str:
        return "s" if self.kind == "datetime" else ""


@dataclass(frozen=True)
class Segments:
    """Which kept rows are consecutive samples: the log cut at gaps and missing values."""

    segment: np.ndarray
    """Shape (n_kept,): segment number of each kept row, increasing from 0."""
    sample_period: float
    gaps: int
    """Steps longer than ``max_gap`` sample periods."""
    missing_breaks: int
    """Places where dropped rows (missing values) cut the log."""

    @property
    def count(self) -> int:
        return int(self.segment[-1]) + 1 if len(self.segment) else 0


def _present(raw: pd.Series) -> np.ndarray:
    text = raw.astype(str).str.strip()
    return (raw.notna() & (text != "") & (text.str.lower() != "nat")).to_numpy()


def parse_time_column(path: Path, raw: pd.Series, fmt: TableFormat, name: str) -> TimeColumn:
    """Numbers if every present cell is a number, else dates; one-line error otherwise."""
    present = _present(raw)
    if not present.any():
        raise InputError(path, "time column has no values (every cell is empty)", name)
    first = str(raw[present].iloc[0]).strip()
    numbers = to_numbers(raw, fmt)
    if not np.isnan(numbers[present]).any():
        if np.isinf(numbers).any():
            row = int(np.flatnonzero(np.isinf(numbers))[0])
            raise InputError(path, f"infinite time value in data row {row + 1}", name)
        return TimeColumn(np.where(present, numbers, np.nan), "number", first)
    seconds = datetime_seconds(raw.where(present))
    bad = present & np.isnan(seconds)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(
            path,
            f"cannot read {str(raw.iloc[row]).strip()!r} in data row {row + 1} as a time "
            f"stamp (dates and times like {first!r}, or numbers) ({int(bad.sum())} such "
            "cell(s))",
            name,
        )
    return TimeColumn(seconds - seconds[present][0], "datetime", first)


def datetime_seconds(cells: pd.Series) -> np.ndarray:
    """Each cell read as a date and time, in seconds since 1970 (UTC); NaN where a cell
    is empty or not a time stamp. The one reading of stamps for the training log
    (:func:`parse_time_column`, which refuses unreadable cells) and for a file of
    readings to advise (``recommend --csv --time-ordered``, where they break the history)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format": NaT says it per cell
        stamps = pd.to_datetime(cells, errors="coerce", utc=True)
    return ((stamps - _EPOCH) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)


def _shown(raw: pd.Series, row: int) -> str:
    return str(raw.iloc[row]).strip()


def check_order(path: Path, time: TimeColumn, raw: pd.Series, name: str) -> None:
    """Refuse stamps that repeat or go backwards (between rows that have one)."""
    rows = np.flatnonzero(~np.isnan(time.values))
    steps = np.diff(time.values[rows])
    bad = np.flatnonzero(steps <= 0)
    if not len(bad):
        return
    before, after = int(rows[bad[0]]), int(rows[bad[0] + 1])
    where = f"data rows {before + 1} and {after + 1}"
    if steps[bad[0]] == 0:
        problem = (
            f"time stamp {_shown(raw, after)!r} repeats in {where}: every row must be a "
            "distinct sample"
        )
    else:
        problem = (
            f"time goes backwards from {_shown(raw, before)!r} to {_shown(raw, after)!r} in "
            f"{where}: rows must be in increasing time order (sort the file by time; a "
            "clock changed for daylight saving?)"
        )
    count = len(bad)
    if count > 1:
        problem += f" ({count} such places)"
    raise InputError(path, problem, name)


def segments_of(time: np.ndarray, kept: np.ndarray, max_gap: float) -> Segments:
    """Segments of the kept rows (see the module docstring).

    ``time``: every data row's time (NaN where empty); ``kept``: indices of the
    complete rows, increasing.
    """
    stamped = time[~np.isnan(time)]
    steps = np.diff(stamped)
    period = float(np.median(steps)) if len(steps) else 1.0
    kept = np.asarray(kept, dtype=np.intp)
    if len(kept) == 0:
        return Segments(np.zeros(0, np.int64), period, 0, 0)
    jumped = np.diff(kept) > 1  # a dropped row lies between: never neighbours
    gap = np.diff(time[kept]) > max_gap * period
    breaks = jumped | gap
    segment = np.concatenate([[0], np.cumsum(breaks)]).astype(np.int64)
    return Segments(segment, period, int((gap & ~jumped).sum()), int(jumped.sum()))


def position_in_segment(segment: np.ndarray) -> np.ndarray:
    """For each row, how many rows of its segment come before it."""
    n = len(segment)
    if n == 0:
        return np.zeros(0, np.int64)
    starts = np.concatenate([[True], segment[1:] != segment[:-1]])
    start_index = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    return np.arange(n) - start_index


def describe_period(period: float, kind: str) -> str:
    """'60 s' / '1.5 min' / '2 h' for dates; '1' (samples) for numbers."""
    if kind != "datetime":
        return f"{period:.3g}"
    for unit, size in (("h", 3600.0), ("min", 60.0)):
        if period >= size:
            return f"{period / size:.3g} {unit}"
    return f"{period:.3g} s"
