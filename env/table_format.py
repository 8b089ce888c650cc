"""How a plant table file is written: encoding, separator, decimal mark, sheet.

Plant data reaches engineers as historian or Excel exports in their locale's
conventions: GBK from a Chinese Windows, ``;`` with decimal commas from a European
Excel, UTF-16 "Unicode text", ``.xlsx`` workbooks. :class:`ReadOptions` is what the
dataset spec says about it (each key optional), :class:`TableFormat` is how the file
was actually read (spec keys, else detected). The model artifact records the
:class:`TableFormat`, so every later command (tune, the env workers, recommend) reads
the file exactly as ``fit`` did instead of detecting again.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from env.errors import InputError

TableKind = Literal["text", "excel"]
TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
DECIMAL_MARKS = (".", ",")
READ_KEYS = ("encoding", "sep", "decimal", "thousands", "sheet")
"""The spec keys that say how to read the file (all optional)."""

_CHARACTER_NAMES = {"\t": "tab", " ": "space", "\u00a0": "no-break space", "\u202f": "thin space"}
_ENCODING_NAMES = {"utf-8-sig": "UTF-8 with BOM"}


def table_kind(csv: str | Path) -> TableKind:
    """Text or Excel, from the file name; anything else is refused (one line)."""
    suffix = Path(csv).suffix.lower()
    if suffix in EXCEL_SUFFIXES:
        return "excel"
    if suffix in TEXT_SUFFIXES:
        return "text"
    accepted = ", ".join((*TEXT_SUFFIXES, *EXCEL_SUFFIXES))
    raise ValueError(f"csv: unsupported file type {suffix or '(none)'!r} (accepted: {accepted})")


def codec_name(encoding: str) -> str:
    """Python's canonical name of an encoding ('GBK' and 'cp936' -> 'gbk')."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(
            f"encoding: unknown encoding {encoding!r} (Python codec names, such as "
            "utf-8, gbk, gb18030, cp1252, utf-16)"
        ) from None


def show_character(char: str) -> str:
    """A separator or mark as a user reads it: ';' or tab."""
    return _CHARACTER_NAMES.get(char, f"'{char}'")


def show_encoding(name: str) -> str:
    return _ENCODING_NAMES.get(name, name.upper())


def _single_character(key: str, value: str | None) -> None:
    if value is not None and (len(value) != 1 or value.isalnum() or value in '"\r\n'):
        raise ValueError(f"{key}: must be one character that is not a letter, digit or quote")


@dataclass(frozen=True)
class ReadOptions:
    """What a dataset spec says about reading its file; ``None`` = detect it."""

    encoding: str | None = None
    sep: str | None = None
    decimal: str | None = None
    thousands: str | None = None
    sheet: str | int | None = None
    """Excel only: sheet name, or position counting from 1."""

    def check(self, kind: TableKind) -> None:
        """Refuse values that cannot work, before any file is opened."""
        if self.encoding is not None:
            codec_name(self.encoding)
        _single_character("sep", self.sep)
        _single_character("thousands", self.thousands)
        if self.decimal is not None and self.decimal not in DECIMAL_MARKS:
            raise ValueError(f"decimal: must be '.' or ',', got {self.decimal!r}")
        marks = {"sep": self.sep, "decimal": self.decimal, "thousands": self.thousands}
        given = [(k, v) for k, v in marks.items() if v is not None]
        for i, (key, value) in enumerate(given):
            for other, other_value in given[i + 1 :]:
                if value == other_value:
                    raise ValueError(f"{key} and {other} are the same character {value!r}")
        if kind == "excel":
            for key in ("encoding", "sep"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key}: applies to text files, not to Excel workbooks")
        elif self.sheet is not None:
            raise ValueError("sheet: applies to Excel workbooks (.xlsx) only")
        if isinstance(self.sheet, int) and self.sheet < 1:
            raise ValueError(f"sheet: positions count from 1, got {self.sheet}")

    def given(self) -> dict[str, Any]:
        """The keys the spec sets, with their values."""
        return {k: getattr(self, k) for k in READ_KEYS if getattr(self, k) is not None}


@dataclass(frozen=True)
class TableFormat:
    """How a plant table was read: recorded with the model, shown by ``fit``."""

    kind: TableKind
    encoding: str | None = None
    """Text files: Python codec name (``utf-8``, ``gbk``, ``utf-16``...)."""
    sep: str | None = None
    """Text files: the field separator."""
    decimal: str = "."
    thousands: str | None = None
    sheet: str | None = None
    """Excel files: the sheet name."""
    detected: tuple[str, ...] = field(default=(), compare=False)
    """Which keys were detected rather than given (not recorded: only for messages)."""

    def describe(self) -> str:
        """'GBK, ';' separated, decimal ','' - the words ``fit`` prints."""
        if self.kind == "excel":
            parts = [f"Excel sheet {self.sheet!r}"]
        else:
            separated = f"{show_character(self.sep or ',')} separated"
            parts = [show_encoding(self.encoding or "?"), separated]
        parts.append(f"decimal {show_character(self.decimal)}")
        if self.thousands is not None:
            parts.append(f"thousands {show_character(self.thousands)}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "encoding": self.encoding,
            "sep": self.sep,
            "decimal": self.decimal,
            "thousands": self.thousands,
            "sheet": self.sheet,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str | Path) -> TableFormat:
        try:
            fmt = cls(**data)
        except TypeError as exc:
            raise InputError(source, f"malformed 'read_as' record ({exc})") from exc
        if fmt.kind not in ("text", "excel") or fmt.decimal not in DECIMAL_MARKS:
            raise InputError(source, "malformed 'read_as' record")
        return fmt


@dataclass(frozen=True)
class RecordedRead:
    """How a fitted model read its file; reused only for that very file (same sha256)."""

    table_format: TableFormat
    sha256: str
    source: str
    """The model artifact, named in messages."""
