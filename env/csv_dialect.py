"""Detect how a text export is written: encoding, field separator, number format.

Each step uses the cheapest sure evidence first and a statistical guess last:

* encoding: a byte-order mark; UTF-16 without one (every other byte zero); strict
  UTF-8 validity (plain ASCII is UTF-8); then the ranked guesses of
  ``charset-normalizer`` followed by the commonest export encodings. A header is short,
  so statistics alone confuse GBK with the Korean cp949 or cp1252 with cp1250 (both
  seen on this project's sample header); the candidate under which the header holds
  the most of the column names the spec gives wins (the first of equals), because the
  spec says what the header must contain.
* separator: the one under which the header holds the most of the spec's columns, else
  ``csv.Sniffer`` restricted to ``, ; tab |``;
* decimal mark and thousands separator: votes of the numeric cells of the spec's
  columns ("1.234,5" says decimal ',' and thousands '.', "947,42" decimal ','); a cell
  like "1,234" is ambiguous and read as a decimal comma only when ';' separates fields,
  the European convention.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections import Counter
from collections.abc import Iterable, Sequence

from env.table_format import DECIMAL_MARKS, codec_name

SEPARATORS = (",", ";", "\t", "|")
SAMPLE_BYTES = 1 << 20
"""Bytes read for detection: enough lines for a vote, bounded for huge files."""
SAMPLE_LINES = 200
FALLBACK_ENCODINGS = ("gb18030", "cp1252", "cp932", "cp949", "big5", "cp1251", "cp1250")
"""Tried after charset-normalizer's guesses: the commonest non-UTF-8 exports."""
LAST_RESORT_ENCODING = "latin-1"
"""Decodes any bytes, so the column check can say what was read."""

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_NUMBER = re.compile(r"[+-]?\d[\d.,' \u00a0\u202f]*")
_EXPONENT = re.compile(r"[eE][+-]?\d+$")
_GROUP_MARKS = "' \u00a0\u202f"


def bom_encoding(sample: bytes) -> str | None:
    """The encoding a byte-order mark announces, if the sample starts with one."""
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name
    return None


_BOM_FAMILY = {"utf-8": "utf-8-sig", "utf-16-le": "utf-16", "utf-16-be": "utf-16"}
_BOM_FAMILY |= {"utf-32-le": "utf-32", "utf-32-be": "utf-32"}


def with_bom(encoding: str, sample: bytes) -> str:
    """``utf-8`` on a file with a UTF-8 BOM is read as ``utf-8-sig`` (same for UTF-16/32):
    otherwise the mark would stick to the first column name."""
    announced = bom_encoding(sample)
    if announced is not None and _BOM_FAMILY.get(encoding) == announced:
        return announced
    return encoding


def same_encoding(a: str, b: str) -> bool:
    """Equal up to the byte-order mark ('utf-8' and 'utf-8-sig' read a file alike)."""
    return _BOM_FAMILY.get(a, a) == _BOM_FAMILY.get(b, b)


def _utf16_without_bom(sample: bytes) -> str | None:
    head = sample[:4096]
    if len(head) < 8 or b"\x00" not in head:
        return None
    even, odd = head[0::2], head[1::2]
    zeros_even, zeros_odd = even.count(0) / len(even), odd.count(0) / len(odd)
    if zeros_odd > 0.3 and zeros_even < 0.05:
        return "utf-16-le"
    if zeros_even > 0.3 and zeros_odd < 0.05:
        return "utf-16-be"
    return None


def decode(sample: bytes, encoding: str, complete: bool) -> str:
    """Strict decode; a sample cut inside a multi-byte character is not an error."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    return decoder.decode(sample, final=complete)


def _decodes(sample: bytes, encoding: str, complete: bool) -> str | None:
    try:
        return decode(sample, encoding, complete)
    except (UnicodeDecodeError, LookupError):
        return None


def encoding_candidates(sample: bytes, complete: bool) -> list[str]:
    """Encodings to try in order; the sure ones (BOM, UTF-16, UTF-8) come alone."""
    sure = bom_encoding(sample) or _utf16_without_bom(sample)
    if sure is not None:
        return [sure]
    if _decodes(sample, "utf-8", complete) is not None:
        return ["utf-8"]
    from charset_normalizer import from_bytes  # imported only for non-UTF-8 files

    guesses = [match.encoding for match in from_bytes(sample[:65536])]
    names: dict[str, None] = {}
    for name in (*guesses, *FALLBACK_ENCODINGS, LAST_RESORT_ENCODING):
        try:
            names.setdefault(codec_name(name), None)
        except ValueError:
            continue
    return list(names)


def first_lines(text: str, complete: bool) -> list[str]:
    """Up to SAMPLE_LINES whole lines (a cut last line is dropped), blank ones skipped."""
    # only CR/LF end lines, as for pandas (str.splitlines also splits at \x85, \x1c...)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if not complete and lines:
        lines = lines[:-1]
    return [line for line in lines[: SAMPLE_LINES + 1] if line.strip()]


def split_line(line: str, sep: str) -> list[str]:
    """Fields of one line, quotes honoured, surrounding blanks removed."""
    try:
        return [field.strip() for field in next(csv.reader([line], delimiter=sep))]
    except (csv.Error, StopIteration):
        return [line.strip()]


def _found(line: str, sep: str, columns: Sequence[str]) -> int:
    """How many of the spec's columns the header line holds under ``sep``."""
    return len(set(columns) & set(split_line(line, sep)))


def separator_for(lines: list[str], columns: Sequence[str]) -> str:
    """The separator under which the header holds most of the spec's columns (all of
    them, normally; most, when one is misspelt), else the one ``csv.Sniffer`` finds."""
    if not lines:
        return ","
    found = {sep: _found(lines[0], sep, columns) for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda sep: found[sep])  # the first of equals
    if found[best]:
        return best
    try:
        return csv.Sniffer().sniff("\n".join(lines[:50]), delimiters="".join(SEPARATORS)).delimiter
    except csv.Error:
        return ","


def choose_encoding(
    sample: bytes, complete: bool, columns: Sequence[str], sep: str | None
) -> tuple[str, str, str]:
    """(encoding, separator, decoded sample) of the first candidate under which the
    header holds the most of the spec's columns (``sep``: the spec's separator, if it
    gives one); ties go to the earlier candidate.

    With no column found at all, the first candidate that decodes is taken, and the
    missing-column message shows what it read.
    """
    best: tuple[tuple[int, int], str, str, str] | None = None
    for encoding in encoding_candidates(sample, complete):
        text = _decodes(sample, encoding, complete)
        if text is None:
            continue
        lines = first_lines(text, complete)
        detected = separator_for(lines, columns)
        chosen = sep or detected
        header = lines[0] if lines else ""
        score = (_found(header, chosen, columns), _found(header, detected, columns))
        if best is None or score > best[0]:
            best = (score, encoding, chosen, text)
        if score[0] == len(set(columns)):
            break
    assert best is not None  # latin-1, the last resort, decodes anything
    _, encoding, chosen, text = best
    return _gbk_if_enough(encoding, sample, complete), chosen, text


def _gbk_if_enough(encoding: str, sample: bytes, complete: bool) -> str:
    """GB18030 extends GBK; name the file GBK (what Chinese Excel writes) when that
    reads it, so that the name matches what its user knows."""
    if encoding == "gb18030" and _decodes(sample, "gbk", complete) is not None:
        return "gbk"
    return encoding


def column_cells(lines: list[str], sep: str, columns: Sequence[str]) -> list[str]:
    """The data cells of the spec's columns (of every column if the header lacks them)."""
    header = split_line(lines[0], sep) if lines else []
    wanted = [i for i, name in enumerate(header) if name in set(columns)] or None
    cells: list[str] = []
    for line in lines[1:]:
        fields = split_line(line, sep)
        cells.extend(fields if wanted is None else (fields[i] for i in wanted if i < len(fields)))
    return cells


def _vote(cell: str, votes: dict[str, Counter]) -> None:
    """Add one cell's evidence to ``votes`` (decimal, grouping, ambiguous, not_grouping)."""
    body = _EXPONENT.sub("", cell.strip())
    if not _NUMBER.fullmatch(body):
        return
    marks = [(i, ch) for i, ch in enumerate(body) if not ch.isdigit() and ch not in "+-"]
    if not marks:
        return
    last_index, last = marks[-1]
    others = {ch for _, ch in marks[:-1]}
    after_last = len(body) - last_index - 1
    ends = [i for i, _ in marks[1:]] + [len(body)]
    for (start, ch), end in zip(marks, ends, strict=True):
        if end - start - 1 != 3:  # "947,42": here ',' does not group digits
            votes["not_grouping"][ch] += 1
    if last in _GROUP_MARKS:  # "1 234": the only mark groups digits
        votes["grouping"][last] += 1
    elif others - {last}:  # "1.234,5": the last mark is the decimal one
        votes["decimal"][last] += 1
        votes["grouping"].update(others - {last})
    elif others:  # "1,234,567": a repeated mark groups digits
        votes["grouping"][last] += 1
    elif after_last != 3:  # "947,42"
        votes["decimal"][last] += 1
    else:  # "1,234": thousands or three decimals
        votes["ambiguous"][last] += 1


def number_format(
    cells: Iterable[str], sep: str | None, decimal_mark: str | None = None
) -> tuple[str, str | None]:
    """(decimal mark, thousands separator or None) voted by numeric cells;
    ``decimal_mark``: the spec's, if it gives one."""
    votes: dict[str, Counter] = {
        kind: Counter() for kind in ("decimal", "grouping", "ambiguous", "not_grouping")
    }
    for cell in cells:
        _vote(cell, votes)
    decimal, ambiguous = votes["decimal"], votes["ambiguous"]
    if decimal_mark is not None:
        mark = decimal_mark
    elif decimal["."] or decimal[","]:
        mark = "," if decimal[","] > decimal["."] else "."
    else:
        mark = "," if sep == ";" and ambiguous[","] else "."
    grouping = votes["grouping"] + Counter({m: ambiguous[m] for m in DECIMAL_MARKS if m != mark})
    candidates = [
        (count, ch)
        for ch, count in grouping.items()
        if ch != mark and count > 0 and not votes["not_grouping"][ch]
    ]
    thousands = max(candidates)[1] if candidates else None
    return mark, thousands
