"""Writing results so that they are whole or absent, never half-written.

A crash, a full disk or Ctrl-C in the middle of a write must not leave a truncated
``best.json`` or a report folder with half its plots: files go through a temporary
file in the same folder and ``os.replace``; folders are assembled aside and renamed
into place.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from env.errors import InputError

RESULT_FILE_MODE = 0o644
"""Results are read by colleagues and services: ``mkstemp``'s private 0600 is undone."""


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder.

    Raises:
        InputError: ``path`` cannot be written (a folder, a missing or read-only
            folder): the user chose it, so it is one line, not a traceback.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "cannot write here (is a folder)")
    with _cannot_write(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, RESULT_FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def rebased(value: Any, old_root: Path, new_root: Path) -> Any:
    """``value`` (JSON-like data) with every path string at or under ``old_root`` moved
    to the same place under ``new_root``; other values unchanged.

    Result files record absolute paths (a checkpoint, the model a trial shared); when
    their folder is moved or copied as a whole, what lay inside it is read from the
    new place rather than from where it was written."""
    if isinstance(value, dict):
        return {key: rebased(item, old_root, new_root) for key, item in value.items()}
    if isinstance(value, list):
        return [rebased(item, old_root, new_root) for item in value]
    if isinstance(value, str) and os.path.isabs(value):
        path = Path(value)
        if path == old_root or old_root in path.parents:
            return str(new_root / path.relative_to(old_root))
    return value


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write JSON to ``path`` atomically; NaN and infinity are refused (not JSON)."""
    return write_text_atomic(path, json.dumps(data, indent=1, allow_nan=False))


def json_safe(value: Any) -> Any:
    """A copy that JSON can write: numpy scalars as Python numbers, NaN/inf as null,
    tuples as lists, anything else unknown as its text."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


@contextlib.contextmanager
def staged_file(path: str | Path, newline: str = "") -> Iterator[TextIO]:
    """Yield a text handle on a temporary file next to ``path``; on success it replaces
    ``path``, on any exception (Ctrl-C included) it is removed and ``path`` is untouched.
    For results written bit by bit (streamed), where the atomic JSON write cannot help."""
    path = Path(path)
    with _cannot_write(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, RESULT_FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staged_folder(target: Path, *, project_owned: bool = False) -> Iterator[Path]:
    """Yield an empty folder next to ``target``; on success it replaces ``target``.

    On any exception the staging folder is removed and ``target`` is left as it was.
    Only a folder of the same kind of result is replaced: an existing ``target`` must
    hold nothing but files the new result also writes (an older export, report or
    backtest), and must not be the working folder or one of its parents. Anything else
    (a user's folder, an experiment) is refused with an :class:`InputError` before a
    file is touched. ``project_owned``: the target is a folder no user chose (the
    report inside an experiment), replaced whatever an older version of it holds.
    """
    target = Path(os.path.abspath(target))
    check_output_folder(target)
    with _cannot_write(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        staging.chmod(0o755)  # mkdtemp makes it private
        if target.exists():
            if not project_owned:
                _check_replaceable(target, produced={p.name for p in staging.iterdir()})
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def check_output_folder(target: Path, produces: Iterable[str] | None = None) -> None:
    """Refuse, before any work, an output folder :func:`staged_folder` would refuse
    whatever the result: a file, or the working folder (or one of its parents); with
    ``produces`` (the file names the result will write), also a folder holding others."""
    _check_replaceable(target, produced=None if produces is None else set(produces))


def _check_replaceable(target: Path, produced: set[str] | None) -> None:
    """Refuse to replace what is not an older result of the same kind (see
    :func:`staged_folder`); ``produced`` is None before the new result exists."""
    if not target.exists():
        return
    if not target.is_dir():
        raise InputError(target, "exists and is not a folder: choose another output folder")
    if Path.cwd().resolve().is_relative_to(target.resolve()):
        raise InputError(target, "is the working folder (or holds it): choose a new folder")
    if produced is None:
        return
    foreign = sorted(p.name for p in target.iterdir() if p.name not in produced)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise InputError(
            target,
            f"holds files this result does not write ({shown}); it is not replaced: "
            "choose a new folder",
        )


@contextlib.contextmanager
def _cannot_write(path: Path) -> Iterator[None]:
    """An operating-system refusal to write ``path`` as the one-line user error."""
    try:
        yield
    except OSError as exc:
        where = exc.filename if exc.filename is not None else path
        raise InputError(where, f"cannot write here ({exc.strerror or exc})") from exc


def refuse_to_overwrite_inputs(target: str | Path, *inputs: str | Path) -> None:
    """An output path that names one of the command's own inputs (the CSV, the spec)
    would destroy it: refused with one line before anything is computed."""
    target = Path(target)
    if not target.exists():
        return
    for source in map(Path, inputs):
        if source.exists() and target.resolve() == source.resolve():
            raise InputError(
                target, f"is an input of this command ({source.name}): choose another output"
            )
