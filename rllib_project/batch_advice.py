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

from env.errors import InputError
from env.files import staged_file
from rllib_project.recommendation import DIRECTION_NAMES, AdviceBatch, Advisor

CHUNK_ROWS = 4096
"""Readings advised together: large enough for vectorised roll-outs, small in memory."""
PROGRESS_EVERY_S = 5.0
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

    def describe(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else float("inf")
        paths = "with predicted paths" if self.with_path else "without predicted paths"
        return (
            f"wrote {self.target}: {self.rows:,} reading(s) advised {paths}, "
            f"{self.errors:,} with errors, {self.outside:,} outside the data "
            f"({self.seconds:.1f} s, {rate:,.0f} readings/s)"
        )


@dataclass(frozen=True)
class _Layout:
    """Where the state and controls sit in the input, and the output header."""

    width: int
    value_columns: tuple[int, ...]
    """Input column of the state, then of each control (spec order)."""
    value_names: tuple[str, ...]
    output_header: tuple[str, ...]

    @classmethod
    def from_header(cls, header: list[str], advisor: Advisor, source: Path) -> _Layout:
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


def _write_chunk(
    writer: Any,
    chunk: list[list[str]],
    first_row: int,
    layout: _Layout,
    advisor: Advisor,
    with_path: bool,
) -> tuple[int, int]:
    """Advise one chunk and write it; returns (rows with errors, rows outside the data)."""
    parsed = [_parse_row(fields, layout) for fields in chunk]
    good = [values for values, error in parsed if not error]
    added: Iterator[tuple[str, ...]] = iter(())
    outside = 0
    if good:
        table = np.array(good, dtype=np.float64)
        advice = advisor.advise(table[:, 0], table[:, 1:], with_path=with_path)
        added = zip(*_advice_columns(advice), strict=True)
        outside = int((~advice.support.inside).sum())
    blank_advice = [""] * (len(layout.output_header) - layout.width - 2)
    rows = []
    errors = 0
    for offset, (fields, (_, error)) in enumerate(zip(chunk, parsed, strict=True)):
        if len(fields) != layout.width:
            fields = (fields + [""] * layout.width)[: layout.width]
        if error:
            rows.append([first_row + offset, *fields, *blank_advice, error])
            errors += 1
        else:
            rows.append([first_row + offset, *fields, *next(added)])
    writer.writerows(rows)
    return errors, outside


def advise_csv(
    advisor: Advisor,
    source: Path,
    target: Path,
    *,
    with_path: bool = True,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[str], None] | None = None,
) -> BatchSummary:
    """Advise every reading of ``source`` into ``target`` (see module docstring)."""
    if progress is None:

        def progress(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

    if not source.is_file():
        raise InputError(source, "readings CSV not found")
    if target.exists() and target.resolve() == source.resolve():
        raise InputError(target, "is the readings file itself: choose another --out")
    if target.is_dir():
        raise InputError(target, "is a folder: --out names the CSV file to write")
    if not target.parent.is_dir():
        raise InputError(target.parent, "folder of --out does not exist")
    started = time.monotonic()
    rows = errors = outside = 0
    try:
        with (
            source.open(newline="", encoding="utf-8-sig") as handle,
            staged_file(target) as out,
        ):
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                raise InputError(source, "no header line (empty file?)")
            layout = _Layout.from_header(header, advisor, source)
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(layout.output_header)
            last_report = started
            for chunk in _chunks(reader, chunk_rows):
                bad, far = _write_chunk(writer, chunk, rows, layout, advisor, with_path)
                rows, errors, outside = rows + len(chunk), errors + bad, outside + far
                if time.monotonic() - last_report >= PROGRESS_EVERY_S:
                    last_report = time.monotonic()
                    rate = rows / (last_report - started)
                    progress(f"advised {rows:,} readings ({rate:,.0f}/s), {errors:,} with errors")
    except csv.Error as exc:
        raise InputError(source, f"unreadable CSV near line {reader.line_num} ({exc})") from None
    except UnicodeDecodeError as exc:
        raise InputError(source, f"not UTF-8 text ({exc.reason})") from None
    return BatchSummary(target, rows, errors, outside, time.monotonic() - started, with_path)
