"""``rllib-project recommend --csv READINGS --out ADVICE``: advice for a file of readings.

A historian export or a day of DCS readings becomes one advice row per reading. The
file is streamed in chunks of a few thousand rows, each chunk advised at once
(:func:`rllib_project.recommendation.advise`), so memory stays flat for any file size.

The output keeps every input column as it was (time stamps, tags) and adds:

* ``data_row``: the reading's 0-based data row (header excluded, blank lines skipped,
  as ``recommend --row`` counts);
* per control ``<name>_direction`` (increase / decrease / keep), ``<name>_amount`` and
  ``<name>_new``;
* ``in_band``, ``moves_to_band`` and ``predicted_path`` (the predicted temperatures,
  ``;``-separated; empty with ``--no-path``, which skips the roll-outs);
* ``support_distance``, ``outside_data`` and ``warning`` (see :mod:`env.support`),
  ``notes``;
* ``error``: empty for advised rows; for a bad row (missing, non-numeric or non-finite
  value, wrong number of fields) a one-line message naming the column, and no advice.

``--time-ordered`` (a plant with lag only): the file is one log, a reading per sample
period, oldest first, each with the settings in force when it was read (as a bridge
sends readings; not the training log's convention, where a row's settings are the
decision taken after its reading: for the spec's own log use ``recommend --row``).
Each reading is advised
with what the readings before it say, as the server does with a request's
``history`` (:meth:`env.plant.Plant.stream_estimates`): the settings still in flight
and the disturbance observer's estimate, added as a last column ``disturbance``. A bad
row breaks the history: the next good reading starts afresh. So does a gap, where the
file has the spec's ``time`` column: a step longer than ``max_gap`` sample periods of
the log the model was fitted on, a stamp that does not move forward, or one that is
missing or unreadable (at the reading or the one before it; the summary counts the
readings without one). Without that column the rows are taken as consecutive samples
(said in a progress line).

A problem with the file as a whole (not found, no header, a needed column missing)
stops the command before anything is written. The output goes to a temporary file next
to ``--out`` and is renamed into place at the end: a failure or Ctrl-C halfway leaves
no half-written advice file (and an existing one untouched).
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from env.errors import InputError
from env.files import staged_file
from env.plant import STREAM_START, StreamState
from env.time_log import datetime_seconds
from rllib_project.recommendation import DIRECTION_NAMES, AdviceBatch, Advisor

CHUNK_ROWS = 4096
"""Readings advised together: large enough for vectorised roll-outs, small in memory."""
PROGRESS_EVERY_S = 5.0
DISTURBANCE_COLUMN = "disturbance"
"""With ``--time-ordered``: the observer's estimate the advice used."""
_TAIL_COLUMNS = (
    "in_band",
    "moves_to_band",
    "predicted_path",
    "support_distance",
    "outside_data",
    "warning",
    "notes",
    "error",
)


@dataclass(frozen=True)
class BatchSummary:
    """What a batch run wrote."""

    target: Path
    rows: int
    errors: int
    outside: int
    seconds: float
    with_path: bool
    unstamped: int = 0
    """``--time-ordered`` with a time column: good readings without a readable stamp
    (each started its history afresh, without settings in flight or a disturbance)."""

    def describe(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else float("inf")
        paths = "with predicted paths" if self.with_path else "without predicted paths"
        unstamped = (
            f"; {self.unstamped:,} without a readable time stamp, each advised without its history"
            if self.unstamped
            else ""
        )
        return (
            f"wrote {self.target}: {self.rows:,} reading(s) advised {paths}, "
            f"{self.errors:,} with errors, {self.outside:,} outside the data "
            f"({self.seconds:.1f} s, {rate:,.0f} readings/s){unstamped}"
        )


@dataclass(frozen=True)
class _Layout:
    """Where the state and controls sit in the input, and the output header."""

    width: int
    value_columns: tuple[int, ...]
    """Input column of the state, then of each control (spec order)."""
    value_names: tuple[str, ...]
    output_header: tuple[str, ...]
    time_ordered: bool = False
    time_column: int | None = None
    """With ``time_ordered``: the input column of the spec's ``time``, if present."""

    @classmethod
    def from_header(
        cls, header: list[str], advisor: Advisor, source: Path, time_ordered: bool = False
    ) -> _Layout:
        spec = advisor.plant.spec
        names = [name.strip() for name in header]
        duplicates = sorted({n for n in names if n and names.count(n) > 1})
        if duplicates:
            raise InputError(source, "duplicate column in header", ", ".join(duplicates))
        wanted = (spec.state, *spec.control_names)
        for name in wanted:
            if name not in names:
                raise InputError(source, f"column missing (columns: {', '.join(names)})", name)
        added = ["data_row"]
        for control in spec.control_names:
            added += [f"{control}_direction", f"{control}_amount", f"{control}_new"]
        added += list(_TAIL_COLUMNS)
        if time_ordered:
            added.append(DISTURBANCE_COLUMN)
        clashes = [name for name in added if name in names]
        if clashes:
            raise InputError(
                source, "input column(s) named like advice columns: rename them", clashes[0]
            )
        return cls(
            width=len(names),
            value_columns=tuple(names.index(name) for name in wanted),
            value_names=wanted,
            output_header=(added[0], *header, *added[1:]),
            time_ordered=time_ordered,
            time_column=(names.index(spec.time) if time_ordered and spec.time in names else None),
        )


def _parse_row(fields: list[str], layout: _Layout) -> tuple[list[float], str]:
    """Values of the state and controls, or an error naming the column."""
    if len(fields) != layout.width:
        return [], f"expected {layout.width} fields, found {len(fields)}"
    values = []
    for column, name in zip(layout.value_columns, layout.value_names, strict=True):
        raw = fields[column].strip()
        if not raw:
            return [], f"{name}: missing value"
        try:
            value = float(raw)
        except ValueError:
            return [], f"{name}: {raw!r} is not a number"
        if not math.isfinite(value):
            return [], f"{name}: value must be finite, got {raw!r}"
        values.append(value)
    return values, ""


def _chunks(reader: Iterator[list[str]], size: int) -> Iterator[list[list[str]]]:
    chunk: list[list[str]] = []
    for fields in reader:
        if not fields:  # a blank line is not a reading
            continue
        chunk.append(fields)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _advice_columns(advice: AdviceBatch) -> list[list[str]]:
    """The added columns (after ``data_row`` and the input) of every advised reading,
    built column by column: per-row Python work is what limits a file's speed."""
    columns: list[list[str]] = []
    for direction, amount, new in zip(
        advice.direction.T.tolist(), advice.amount.T.tolist(), advice.new.T.tolist(), strict=True
    ):
        columns += [
            [DIRECTION_NAMES[d + 1] for d in direction],
            list(map(repr, amount)),
            list(map(repr, new)),
        ]
    path = advice.path
    moves = path.moves_to_band.tolist()
    if path.rolled_out:
        lengths = path.length.tolist()
        shown = [
            ";".join(map(repr, temps[:length]))
            for temps, length in zip(path.temperature.tolist(), lengths, strict=True)
        ]
    else:
        shown = [""] * len(advice)
    inside = advice.support.inside.tolist()
    noted = advice.out_of_bounds.any(axis=1) | advice.disagrees | advice.on_its_way
    if path.rolled_out:
        noted |= ~advice.in_band & (path.moves_to_band < 0)
    columns += [
        ["true" if x else "false" for x in advice.in_band.tolist()],
        ["" if m < 0 else str(m) for m in moves],
        shown,
        list(map(repr, advice.support.distance.tolist())),
        ["false" if x else "true" for x in inside],
        ["" if x else advice.support.at(i).warning() or "" for i, x in enumerate(inside)],
        ["; ".join(advice.notes(i)) if x else "" for i, x in enumerate(noted.tolist())],
        [""] * len(advice),
    ]
    return columns


@dataclass(frozen=True)
class _Stream:
    """Where a time-ordered file stands between chunks."""

    state: StreamState = STREAM_START
    time: float = math.nan
    """The last good reading's time stamp (NaN: none, or the file has no time column)."""


def _times(chunk: list[list[str]], layout: _Layout, advisor: Advisor) -> np.ndarray | None:
    """Each row's time stamp in the unit of the log's sample period (NaN if missing or
    unreadable); None when the file has no time column."""
    column = layout.time_column
    if column is None:
        return None
    cells = pd.Series([f[column].strip() if column < len(f) else "" for f in chunk])
    dynamics = advisor.plant.model.dynamics
    if dynamics is not None and dynamics.time_kind == "number":
        return pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64)
    return datetime_seconds(cells.where(cells != ""))


def _breaks(times: np.ndarray, previous: float, advisor: Advisor) -> np.ndarray:
    """Where the history breaks between consecutive good rows by their time stamps: a
    step beyond ``max_gap`` sample periods, none forward, or a stamp missing (at the
    row or the one before it)."""
    dynamics = advisor.plant.model.dynamics
    period = None if dynamics is None else dynamics.sample_period
    if period is None:
        return np.zeros(len(times), dtype=bool)
    steps = np.diff(np.concatenate([[previous], times]))
    limit = advisor.plant.spec.max_gap * period
    with np.errstate(invalid="ignore"):
        return ~((steps > 0) & (steps <= limit))


def _advise_chunk(
    advisor: Advisor,
    chunk: list[list[str]],
    parsed: list[tuple[list[float], str]],
    layout: _Layout,
    with_path: bool,
    stream: _Stream | None,
) -> tuple[AdviceBatch, _Stream | None, int]:
    """Advice for the chunk's good rows; with a ``stream`` (``--time-ordered``) each
    with what the rows before it say, a bad row or a gap restarting the history. Also
    the number of good rows without a readable time stamp (where the file has a column)."""
    table = np.array([values for values, error in parsed if not error], dtype=np.float64)
    if stream is None:
        return advisor.advise(table[:, 0], table[:, 1:], with_path=with_path), None, 0
    errors = [bool(error) for _, error in parsed]
    good = [i for i, bad in enumerate(errors) if not bad]
    # a good row restarts where a bad one came before it (since the previous good one)
    after_bad = np.array([i > 0 and errors[i - 1] for i in good], dtype=bool)
    times = _times([chunk[i] for i in good], layout, advisor)
    restart = after_bad if times is None else after_bad | _breaks(times, stream.time, advisor)
    disturbance, pending, state = advisor.plant.stream_estimates(
        table[:, 0], table[:, 1:], restart, stream.state
    )
    last_time = math.nan if times is None else float(times[-1])
    stream = _Stream() if errors[-1] else _Stream(state, last_time)
    advice = advisor.advise(
        table[:, 0], table[:, 1:], with_path=with_path, pending=pending, disturbance=disturbance
    )
    unstamped = 0 if times is None else int(np.isnan(times).sum())
    return advice, stream, unstamped


def _write_chunk(
    writer: Any,
    chunk: list[list[str]],
    first_row: int,
    layout: _Layout,
    advisor: Advisor,
    with_path: bool,
    stream: _Stream | None = None,
) -> tuple[int, int, int, _Stream | None]:
    """Advise one chunk and write it; returns (rows with errors, rows outside the data,
    good rows without a readable time stamp, the time-ordered stream's state after it)."""
    parsed = [_parse_row(fields, layout) for fields in chunk]
    added: Iterator[tuple[str, ...]] = iter(())
    outside = unstamped = 0
    if any(not error for _, error in parsed):
        advice, stream, unstamped = _advise_chunk(advisor, chunk, parsed, layout, with_path, stream)
        columns = _advice_columns(advice)
        if layout.time_ordered:
            columns.append(list(map(repr, advice.disturbance.tolist())))
        added = zip(*columns, strict=True)
        outside = int((~advice.support.inside).sum())
    elif stream is not None:
        stream = _Stream()
    tail = [""] if layout.time_ordered else []
    blank_advice = [""] * (len(layout.output_header) - layout.width - 2 - len(tail))
    rows = []
    errors = 0
    for offset, (fields, (_, error)) in enumerate(zip(chunk, parsed, strict=True)):
        if len(fields) != layout.width:
            fields = (fields + [""] * layout.width)[: layout.width]
        if error:
            rows.append([first_row + offset, *fields, *blank_advice, error, *tail])
            errors += 1
        else:
            rows.append([first_row + offset, *fields, *next(added)])
    writer.writerows(rows)
    return errors, outside, unstamped, stream


def _check_request(advisor: Advisor, source: Path, target: Path, time_ordered: bool) -> None:
    """Refuse, before anything is read or written, what cannot work."""
    if time_ordered and not advisor.plant.lagging:
        raise InputError(
            "--time-ordered", "the plant has no lag: each reading is advised on its own"
        )
    if not source.is_file():
        raise InputError(source, "readings CSV not found")
    if target.exists() and target.resolve() == source.resolve():
        raise InputError(target, "is the readings file itself: choose another --out")
    if target.is_dir():
        raise InputError(target, "is a folder: --out names the CSV file to write")
    if not target.parent.is_dir():
        raise InputError(target.parent, "folder of --out does not exist")


def advise_csv(
    advisor: Advisor,
    source: Path,
    target: Path,
    *,
    with_path: bool = True,
    time_ordered: bool = False,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[str], None] | None = None,
) -> BatchSummary:
    """Advise every reading of ``source`` into ``target`` (see module docstring)."""
    _check_request(advisor, source, target, time_ordered)
    if progress is None:

        def progress(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

    started = time.monotonic()
    rows = errors = outside = unstamped = 0
    try:
        with (
            source.open(newline="", encoding="utf-8-sig") as handle,
            staged_file(target) as out,
        ):
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                raise InputError(source, "no header line (empty file?)")
            layout = _Layout.from_header(header, advisor, source, time_ordered)
            stream = _Stream() if time_ordered else None
            if time_ordered and layout.time_column is None:
                progress(
                    f"--time-ordered: no {advisor.plant.spec.time or 'time'!r} column in "
                    f"{source.name}: its rows are taken as consecutive samples"
                )
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(layout.output_header)
            last_report = started
            for chunk in _chunks(reader, chunk_rows):
                bad, far, stampless, stream = _write_chunk(
                    writer, chunk, rows, layout, advisor, with_path, stream
                )
                rows, errors, outside = rows + len(chunk), errors + bad, outside + far
                unstamped += stampless
                if time.monotonic() - last_report >= PROGRESS_EVERY_S:
                    last_report = time.monotonic()
                    rate = rows / (last_report - started)
                    progress(f"advised {rows:,} readings ({rate:,.0f}/s), {errors:,} with errors")
    except csv.Error as exc:
        raise InputError(source, f"unreadable CSV near line {reader.line_num} ({exc})") from None
    except UnicodeDecodeError as exc:
        raise InputError(source, f"not UTF-8 text ({exc.reason})") from None
    seconds = time.monotonic() - started
    return BatchSummary(target, rows, errors, outside, seconds, with_path, unstamped)
