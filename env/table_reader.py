"""Open a plant table (CSV/TSV/TXT or Excel) as the spec and the file say.

:func:`open_table` settles the :class:`~env.table_format.TableFormat` (what the model
artifact recorded for this very file, which the spec's keys must agree with; else the
spec's keys, and detection for the keys it leaves out, see :mod:`env.csv_dialect`) and
returns the header; :func:`read_columns` reads the spec's
columns as text cells; :func:`to_numbers` turns cells into floats with the file's
decimal mark and thousands separator. Validation of the values stays in
:mod:`env.data`. A plain comma CSV with decimal points is read exactly as a plain
``pandas.read_csv`` would: no cell is rewritten.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from env import csv_dialect
from env.errors import InputError
from env.table_format import (
    DECIMAL_MARKS,
    ReadOptions,
    RecordedRead,
    TableFormat,
    codec_name,
    show_character,
    show_encoding,
    table_kind,
)

_SHOWN_FIELDS = 8
_SHOWN_CHARS = 40


def open_table(
    path: Path,
    columns: Sequence[str],
    options: ReadOptions,
    recorded: RecordedRead | None = None,
    sha256: str = "",
) -> tuple[TableFormat, list[str]]:
    """How to read ``path`` and its header; raises :class:`InputError` on bad input.

    ``recorded`` (from a model artifact) is used only if ``sha256`` says the file is
    the one it was recorded for; a spec key that contradicts it is refused, since the
    model was fitted on the file read the recorded way.
    """
    kind = table_kind(path)
    prior = None
    if recorded is not None and recorded.sha256 == sha256 and recorded.table_format.kind == kind:
        prior = recorded.table_format
        _check_agrees(prior, options, recorded.source)
    if kind == "excel":
        return _open_workbook(path, columns, options, prior)
    return _open_text(path, columns, options, prior)


def _check_agrees(prior: TableFormat, options: ReadOptions, source: str) -> None:
    for key, value in options.given().items():
        recorded = getattr(prior, key)
        if key == "encoding":
            same = csv_dialect.same_encoding(codec_name(value), recorded or "")
        elif key == "sheet" and isinstance(value, int):
            same = True  # a position: compared once the workbook is open
        else:
            same = value == recorded
        if not same:
            raise InputError(
                source,
                f"the model was fitted on the file read as {prior.describe()}, but the spec "
                f"now sets {key}: {value!r}: refit with 'rllib-project fit'",
            )


# --------------------------------------------------------------------------- text


def _read_sample(path: Path) -> tuple[bytes, bool]:
    with path.open("rb") as handle:
        sample = handle.read(csv_dialect.SAMPLE_BYTES + 1)
    complete = len(sample) <= csv_dialect.SAMPLE_BYTES
    return sample[: csv_dialect.SAMPLE_BYTES], complete


def _open_text(
    path: Path, columns: Sequence[str], options: ReadOptions, prior: TableFormat | None
) -> tuple[TableFormat, list[str]]:
    sample, complete = _read_sample(path)
    detected: list[str] = []
    sep: str | None
    if prior is not None:
        encoding, sep = prior.encoding or "utf-8", prior.sep or ","
        text = _decode_or_explain(path, sample, encoding, complete, columns, "model")
    elif options.encoding is not None:
        encoding = csv_dialect.with_bom(codec_name(options.encoding), sample)
        text = _decode_or_explain(path, sample, encoding, complete, columns, "spec")
        sep = options.sep
    else:
        encoding, sep, text = csv_dialect.choose_encoding(sample, complete, columns, options.sep)
        detected.append("encoding")
    lines = csv_dialect.first_lines(text, complete)
    if not lines:
        raise InputError(path, "file is empty (no header line)")
    if sep is None:
        sep = csv_dialect.separator_for(lines, columns)
    if prior is None and options.sep is None:
        detected.append("sep")
    if prior is not None:
        decimal, thousands = prior.decimal, prior.thousands
    else:
        cells = csv_dialect.column_cells(lines, sep, columns)
        decimal, thousands = _number_format(cells, sep, options, detected)
    fmt = TableFormat("text", encoding, sep, decimal, thousands, None, tuple(detected))
    return fmt, csv_dialect.split_line(lines[0], sep)


def _decode_or_explain(
    path: Path, sample: bytes, encoding: str, complete: bool, columns: Sequence[str], origin: str
) -> str:
    try:
        return csv_dialect.decode(sample, encoding, complete)
    except UnicodeDecodeError as exc:
        guess = csv_dialect.choose_encoding(sample, complete, columns, None)[0]
        where = "the spec's `encoding`" if origin == "spec" else "the model's recorded encoding"
        raise InputError(
            path,
            f"cannot decode the file as {show_encoding(encoding)} ({where}): byte "
            f"0x{sample[exc.start]:02x} at position {exc.start} is invalid; the file looks like "
            f"{show_encoding(guess)}: set `encoding` in the spec to the file's encoding, "
            "or remove it to detect",
        ) from exc


def _number_format(
    cells: list[str], sep: str | None, options: ReadOptions, detected: list[str]
) -> tuple[str, str | None]:
    """Spec keys where given, votes of the cells for the rest."""
    decimal, thousands = csv_dialect.number_format(cells, sep, options.decimal)
    if options.decimal is None:
        if options.thousands is not None and decimal == options.thousands:
            decimal = next(mark for mark in DECIMAL_MARKS if mark != options.thousands)
        detected.append("decimal")
    if options.thousands is not None:
        return decimal, options.thousands
    detected.append("thousands")
    return decimal, thousands


# --------------------------------------------------------------------------- Excel


def _workbook(path: Path) -> pd.ExcelFile:
    try:
        return pd.ExcelFile(path, engine="openpyxl")
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise InputError(path, f"cannot read Excel workbook ({_first_line(exc)})") from exc


def _sheet_header(book: pd.ExcelFile, sheet: str) -> list[str]:
    top = pd.read_excel(book, sheet_name=sheet, header=None, nrows=1, dtype=object)
    if top.empty:
        return []
    return ["" if pd.isna(value) else str(value).strip() for value in top.iloc[0]]


def _choose_sheet(
    path: Path, book: pd.ExcelFile, columns: Sequence[str], wanted: str | int | None
) -> str:
    names = [str(name) for name in book.sheet_names]
    listed = ", ".join(repr(name) for name in names)
    if isinstance(wanted, int):
        if wanted > len(names):
            raise InputError(path, f"no sheet number {wanted} (sheets: {listed})", "sheet")
        return names[wanted - 1]
    if wanted is not None:
        if wanted not in names:
            raise InputError(path, f"no sheet {wanted!r} (sheets: {listed})", "sheet")
        return wanted
    found = {name: len(set(columns) & set(_sheet_header(book, name))) for name in names}
    return max(names, key=lambda name: found[name])  # the first of equals


def _open_workbook(
    path: Path, columns: Sequence[str], options: ReadOptions, prior: TableFormat | None
) -> tuple[TableFormat, list[str]]:
    book = _workbook(path)
    with book:
        wanted = prior.sheet if prior is not None else options.sheet
        sheet = _choose_sheet(path, book, columns, wanted)
        if prior is not None and isinstance(options.sheet, int):
            position = _choose_sheet(path, book, columns, options.sheet)
            if position != sheet:
                raise InputError(
                    path,
                    f"the spec's sheet {options.sheet} is {position!r}, but the model was "
                    f"fitted on sheet {sheet!r}: refit with 'rllib-project fit'",
                    "sheet",
                )
        header = _sheet_header(book, sheet)
        if not header:
            raise InputError(path, f"sheet {sheet!r} is empty")
        detected = [] if wanted is not None else ["sheet"]
        if prior is not None:
            decimal, thousands = prior.decimal, prior.thousands
        else:
            top = pd.read_excel(
                book, sheet_name=sheet, nrows=csv_dialect.SAMPLE_LINES, dtype=object
            )
            present = [c for c in top.columns if str(c).strip() in set(columns)]
            text_cells = [v for v in top[present].to_numpy().ravel() if isinstance(v, str)]
            decimal, thousands = _number_format(text_cells, None, options, detected)
    fmt = TableFormat("excel", None, None, decimal, thousands, sheet, tuple(detected))
    return fmt, header


# --------------------------------------------------------------------------- columns


def read_columns(path: Path, fmt: TableFormat, columns: Sequence[str]) -> pd.DataFrame:
    """The spec's columns, in the spec's order, as raw cells (text, or numbers from
    Excel). Header names are matched after removing surrounding blanks."""
    wanted = set(columns)

    def keep(name: Any) -> bool:
        return str(name).strip() in wanted

    try:
        if fmt.kind == "excel":
            with _workbook(path) as book:
                frame = pd.read_excel(book, sheet_name=fmt.sheet, usecols=keep, dtype=object)
        else:
            frame = pd.read_csv(
                path,
                usecols=keep,
                dtype=str,
                skipinitialspace=True,
                sep=fmt.sep,
                encoding=fmt.encoding,
            )
    except UnicodeDecodeError as exc:
        raise InputError(
            path,
            f"cannot decode the file as {show_encoding(fmt.encoding or '?')} beyond its first "
            f"lines ({exc.reason}): set `encoding` in the spec to the file's encoding",
        ) from exc
    except (pd.errors.ParserError, ValueError) as exc:
        kind = "CSV" if fmt.kind == "text" else "Excel sheet"
        raise InputError(path, f"cannot parse {kind} ({_first_line(exc)})") from exc
    frame.columns = [str(name).strip() for name in frame.columns]
    return frame[list(columns)]


def to_numbers(raw: pd.Series, fmt: TableFormat) -> np.ndarray:
    """Cells as float64 (NaN where empty or not a number), with the file's decimal
    mark and thousands separator; untouched when those are '.' and none."""
    cells = raw
    if fmt.decimal != "." or fmt.thousands is not None:
        if fmt.kind == "text":  # every cell is text (or missing)
            cells = _normalise(raw, fmt)
        else:  # Excel: only cells stored as text carry the marks
            is_text = raw.map(lambda value: isinstance(value, str)).to_numpy(dtype=bool)
            cells = raw.astype(object).copy()
            if is_text.any():
                cells[is_text] = _normalise(raw[is_text].astype(str), fmt)
    return pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64)


def _normalise(text: pd.Series, fmt: TableFormat) -> pd.Series:
    """'1.234,5' -> '1234.5' for decimal ',' and thousands '.'."""
    if fmt.thousands is not None:
        text = text.str.replace(fmt.thousands, "", regex=False)
    return text.str.replace(fmt.decimal, ".", regex=False)


# --------------------------------------------------------------------------- messages


def missing_column_problem(header: list[str], fmt: TableFormat, columns: Sequence[str]) -> str:
    """Say what was read and which spec key would change it (one line)."""
    shown = " | ".join(_shorten(name) for name in header[:_SHOWN_FIELDS])
    if len(header) > _SHOWN_FIELDS:
        shown += f" | ... ({len(header)} fields)"
    place = "CSV" if fmt.kind == "text" else "Excel sheet"
    return (
        f"column missing from {place} (read as {fmt.describe()}; header fields: {shown}): "
        f"{_hint(header, fmt, columns)}"
    )


def _hint(header: list[str], fmt: TableFormat, columns: Sequence[str]) -> str:
    if set(columns) & set(header):  # the file is read right; a name differs
        return "check the column names in the spec (state, controls)"
    if fmt.kind == "excel":
        return "set `sheet` in the spec, or check the column names (state, controls)"
    others = [s for s in csv_dialect.SEPARATORS if s != fmt.sep and s in "".join(header)]
    if len(header) == 1 and others:
        return f"the header is one field: set `sep` in the spec (e.g. {show_character(others[0])})"
    if any(not name.isascii() for name in header):
        return "if the names look garbled, set `encoding` in the spec to the file's encoding"
    return "check the column names in the spec (state, controls), or set `encoding`/`sep`"


def _shorten(name: str) -> str:
    return name if len(name) <= _SHOWN_CHARS else name[: _SHOWN_CHARS - 1] + "…"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
