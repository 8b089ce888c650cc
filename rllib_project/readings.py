"""Readings sent over HTTP: JSON in, checked arrays out, one-line errors naming the field.

A bridge from a historian or a DCS sends whatever it has; a request the service cannot
use must come back as a 4xx with a message that says which field is wrong, never a
500 and never a crashed replica. Everything is checked here, before any advice is
computed, so that one bad reading cannot spoil a batch of good ones:

=====================================================  ======  ==========================
request                                                status  message starts with
=====================================================  ======  ==========================
body is not JSON (or not UTF-8)                        400     ``request body:``
not an object (single) / not a list of objects (batch) 422     ``request body:`` / ``readings[i]:``
a name the policy does not know                        422     ``<name>: unknown name``
a state or control missing                             422     ``<name>: missing``
a value that is not a number (string, bool, null)      422     ``<name>: expected a number``
NaN, Infinity, or a number beyond float range          422     ``<name>: must be finite``
an empty batch / more than the limit                   422 /   ``readings:``
                                                       413
``history`` not a list / longer than its limit         422 /   ``history:``
                                                       413
=====================================================  ======  ==========================

A reading may carry ``"history"``: the plant's earlier readings, oldest first, one
sample period apart, the last one the sample just before this reading, each an object
of the same names (the state and every control, the settings then in force). Where
the plant has a dead time or an active disturbance observer
(:attr:`env.plant.Plant.history_informs`) the advice takes the settings in flight and
the observer's estimate from it (:meth:`env.plant.Plant.from_history`), as
``recommend --row`` takes them from the log; elsewhere it is checked and not used.

Batch messages prefix the field with the reading's position: ``readings[3].fuel_rate``,
``readings[3].history[0].fuel_rate``.
No Ray here: the same checks run in tests without a server.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from env.spec import DatasetSpec

BATCH_LIMIT = 1000
"""Readings per ``/recommend/batch`` request: larger files go through ``--csv``."""
HISTORY_KEY = "history"
"""A reading's optional list of earlier readings (see the module docstring)."""
HISTORY_LIMIT = 500
"""Earlier readings per reading: the observer forgets within a few time constants."""
TOTAL_HISTORY_LIMIT = 20_000
"""Earlier readings per request, all readings of a batch together (parsing them runs on
the replica's event loop: a bound on how long one request can hold it)."""


@dataclass(frozen=True)
class Reading:
    """One reading of a request, checked."""

    temperature: float
    controls: np.ndarray
    """(k,) in spec order."""
    history: np.ndarray | None = None
    """(m, 1 + k) earlier readings, oldest first (state, then controls); None if none."""


@dataclass(frozen=True)
class ReadingBatch:
    """The readings of a batch request, checked."""

    temperatures: np.ndarray
    """(n,)"""
    controls: np.ndarray
    """(n, k)"""
    histories: list[np.ndarray | None]
    """Each reading's :attr:`Reading.history`."""


class RequestError(Exception):
    """A request the service cannot use: an HTTP status and a one-line message."""

    def __init__(self, status: int, field: str, problem: str) -> None:
        self.status = status
        self.field = field
        self.message = " ".join(f"{field}: {problem}".split())
        super().__init__(self.message)


def _json(body: bytes) -> Any:
    if not body.strip():
        raise RequestError(400, "request body", "empty: send a JSON object of readings")
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise RequestError(400, "request body", "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise RequestError(
            400,
            "request body",
            f"not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})",
        ) from None
    except ValueError as exc:  # e.g. an integer literal of more than 4300 digits
        raise RequestError(400, "request body", f"not usable JSON ({exc})") from None
    except RecursionError:
        raise RequestError(400, "request body", "JSON nested too deeply") from None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    names: dict[type, str] = {str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _values(reading: Any, spec: DatasetSpec, where: str) -> list[float]:
    """The state, then each control (spec order), from one JSON object."""
    prefix = f"{where}." if where else ""
    if not isinstance(reading, dict):
        raise RequestError(
            422,
            where or "request body",
            f"expected a JSON object {{name: value}}, got {_kind(reading)}",
        )
    names = (spec.state, *spec.control_names)
    for name in reading:
        if name not in names:
            raise RequestError(
                422, f"{prefix}{name}", f"unknown name (expected {', '.join(names)})"
            )
    values = []
    for name in names:
        if name not in reading:
            raise RequestError(422, f"{prefix}{name}", "missing")
        value = reading[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RequestError(422, f"{prefix}{name}", f"expected a number, got {_kind(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer literal beyond float range
            raise RequestError(
                422, f"{prefix}{name}", "must be finite, got a number beyond float range"
            ) from None
        if not math.isfinite(number):
            raise RequestError(422, f"{prefix}{name}", f"must be finite, got {value}")
        values.append(number)
    return values


def _history(raw: Any, spec: DatasetSpec, where: str) -> np.ndarray | None:
    """A reading's ``history`` -> (m, 1 + k) table, or None when empty."""
    if not isinstance(raw, list):
        raise RequestError(
            422, where, f"expected a JSON list of earlier readings, oldest first, got {_kind(raw)}"
        )
    if len(raw) > HISTORY_LIMIT:
        raise RequestError(
            413, where, f"{len(raw)} earlier readings exceed the limit of {HISTORY_LIMIT}"
        )
    if not raw:
        return None
    return np.array([_values(r, spec, f"{where}[{i}]") for i, r in enumerate(raw)])


def _reading(raw: Any, spec: DatasetSpec, where: str) -> Reading:
    """One reading object, with its optional history."""
    history = None
    if isinstance(raw, dict) and HISTORY_KEY in raw:
        raw = dict(raw)
        prefix = f"{where}." if where else ""
        history = _history(raw.pop(HISTORY_KEY), spec, f"{prefix}{HISTORY_KEY}")
    values = _values(raw, spec, where)
    return Reading(values[0], np.array(values[1:], dtype=np.float64), history)


def parse_reading(body: bytes, spec: DatasetSpec) -> Reading:
    """``{"<state>": 947.1, "<control>": ..., ..., ["history": [...]]}`` -> a reading."""
    return _reading(_json(body), spec, "")


def parse_batch(body: bytes, spec: DatasetSpec, limit: int = BATCH_LIMIT) -> ReadingBatch:
    """A JSON list of readings (each as :func:`parse_reading` takes it) -> a batch."""
    readings = _json(body)
    if not isinstance(readings, list):
        raise RequestError(
            422, "request body", f"expected a JSON list of readings, got {_kind(readings)}"
        )
    if not readings:
        raise RequestError(422, "readings", "empty list")
    if len(readings) > limit:
        raise RequestError(
            413, "readings", f"{len(readings)} readings exceed the limit of {limit} per request"
        )
    total = sum(
        len(r[HISTORY_KEY])
        for r in readings
        if isinstance(r, dict) and isinstance(r.get(HISTORY_KEY), list)
    )
    if total > TOTAL_HISTORY_LIMIT:
        raise RequestError(
            413,
            "readings",
            f"{total} earlier readings in all exceed the limit of {TOTAL_HISTORY_LIMIT}",
        )
    parsed = [_reading(r, spec, f"readings[{i}]") for i, r in enumerate(readings)]
    return ReadingBatch(
        np.array([r.temperature for r in parsed], dtype=np.float64),
        np.stack([r.controls for r in parsed]),
        [r.history for r in parsed],
    )
