"""The yardstick: every start row's fewest moves, computed once and saved as plain data.

"Moves" is the move from which the temperature is in the band and stays there (on a
plant without inertia: the first reading inside, since holding keeps it there; on a
lagging plant see :mod:`env.lagged_planner`). Each row also records its plan's
*actuations*, the moves that change a setting. With a dead time the rows start with the
logged settings in flight (:meth:`env.plant.Plant.start_pending`).

Trained policies are measured against the planner's move counts on the same rows.
Planning all rows takes seconds, so an experiment computes it once and everything
after (trials, evaluation, report, a resumed run) loads it. A saved yardstick is only
valid for the exact inputs it was planned on, so it carries a key:

* the CSV's sha256;
* a hash of everything that changes a plan: the band, each control's step and bounds,
  the environment settings that shape the dynamics (horizon, response rate, dead-band,
  ... every ``env`` setting except the reward weights, so a dynamics setting added
  later is covered without touching this file), the process model artifact, the action
  mode (discrete or continuous), the planner's search budget and this file's format.

:func:`load_yardstick` refuses a file whose key differs (one line, ``InputError``).
The file is JSON written atomically (:func:`env.files.write_json_atomic`); nothing is
pickled. Per row it holds the data row, the CSV row, the moves (``null``: the band is
not reachable within the horizon), whether that is proven minimal, how it was found,
and the plan's per-move changes, so a planner baseline can be replayed without
planning again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from env.errors import InputError
from env.files import write_json_atomic
from env.planner import DEFAULT_BUDGET, Plan, plan_rows
from env.plant import Plant

YARDSTICK_FORMAT = "planner-yardstick/2"
"""/2: moves count until the temperature stays in the band, plans may move after that
(lagging plants), and each row records its actuations."""
YARDSTICK_FILE = "yardstick.json"
"""File name of a saved yardstick (discrete moves) inside an experiment folder."""
REWARD_ONLY_SETTINGS = frozenset(
    {
        "in_band_reward",
        "out_of_band_penalty",
        "distance_weight",
        "distance_cap",
        "move_cost",
        "actuation_cost",
        "uncertainty_penalty",
        "progress_shaping",
    }
)
"""Env settings that change rewards but never a plan: left out of the key."""
PLANNING_MODES = ("discrete", "continuous")


def planning_mode(action_mode: str) -> str:
    """The planner's mode for an action mode: ``discrete`` and ``discrete_flat`` are
    the same decision (whole steps), ``continuous`` moves any fraction of a step."""
    return "continuous" if action_mode == "continuous" else "discrete"


def yardstick_filename(mode: str) -> str:
    """File name of the yardstick of planning ``mode`` in an experiment folder."""
    if mode not in PLANNING_MODES:
        raise ValueError(f"mode must be one of {PLANNING_MODES}, got {mode!r}")
    return YARDSTICK_FILE if mode == "discrete" else f"yardstick_{mode}.json"


@dataclass(frozen=True)
class YardstickKey:
    """What a saved yardstick is valid for."""

    csv_sha256: str
    settings_sha256: str

    def describe(self) -> str:
        return f"CSV {self.csv_sha256[:12]}..., planning settings {self.settings_sha256[:12]}..."


@dataclass(frozen=True)
class YardstickSummary:
    """The figures ``rllib-project plan`` prints (JSON keys are the field names)."""

    rows: int
    solvable: int
    exact: int
    """Rows whose move count (or unreachability) is proven minimal."""
    mean_moves: float | None
    """Over solvable rows; None when no row is solvable."""
    max_moves: int | None
    seconds: float
    mean_actuations: float | None = None
    """Moves that change a setting, over solvable rows; None when none is solvable."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Yardstick:
    """Planner results for a set of start rows (arrays aligned by row)."""

    key: YardstickKey
    mode: str
    rows: np.ndarray
    """Indices into the plant's data arrays."""
    csv_rows: np.ndarray
    """The same rows as 0-based CSV data rows (for people)."""
    moves: np.ndarray
    """Fewest moves, NaN where the band is not reachable within the horizon."""
    exact: np.ndarray
    methods: tuple[str, ...]
    deltas: tuple[np.ndarray, ...]
    """Per row (moves, k): the plan's change of every control at every move."""
    seconds: float
    """Wall time the planning took."""

    @property
    def solvable(self) -> np.ndarray:
        return ~np.isnan(self.moves)

    def select(self, rows: np.ndarray) -> Yardstick:
        """The results of ``rows`` (data-array indices), in that order.

        Trials evaluate on a seeded subset of the start rows, ``evaluate`` on all of
        them: both read their rows out of the one yardstick of the experiment. A row
        the yardstick does not hold is a ``KeyError`` (it was planned for other rows).
        """
        position = {int(row): i for i, row in enumerate(self.rows)}
        try:
            index = np.array([position[int(row)] for row in np.asarray(rows)], dtype=np.intp)
        except KeyError as exc:
            raise KeyError(f"row {exc.args[0]} is not in this yardstick") from None
        return dataclasses.replace(
            self,
            rows=self.rows[index],
            csv_rows=self.csv_rows[index],
            moves=self.moves[index],
            exact=self.exact[index],
            methods=tuple(self.methods[i] for i in index),
            deltas=tuple(self.deltas[i] for i in index),
        )

    @property
    def actuations(self) -> np.ndarray:
        """Per row, the plan's moves that change a setting."""
        return np.array([_actuations(d) for d in self.deltas], np.int64)

    def summary(self) -> YardstickSummary:
        solvable = self.solvable
        return YardstickSummary(
            rows=len(self.rows),
            solvable=int(solvable.sum()),
            exact=int(self.exact.sum()),
            mean_moves=float(self.moves[solvable].mean()) if solvable.any() else None,
            max_moves=int(self.moves[solvable].max()) if solvable.any() else None,
            seconds=float(self.seconds),
            mean_actuations=(float(self.actuations[solvable].mean()) if solvable.any() else None),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": YARDSTICK_FORMAT,
            "key": dataclasses.asdict(self.key),
            "mode": self.mode,
            "seconds": self.seconds,
            "summary": self.summary().to_dict(),
            "rows": [
                {
                    "row": int(row),
                    "csv_row": int(csv_row),
                    "moves": None if np.isnan(moves) else int(moves),
                    "exact": bool(exact),
                    "method": method,
                    "actuations": _actuations(deltas),
                    "deltas": deltas.tolist(),
                }
                for row, csv_row, moves, exact, method, deltas in zip(
                    self.rows,
                    self.csv_rows,
                    self.moves,
                    self.exact,
                    self.methods,
                    self.deltas,
                    strict=True,
                )
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path) -> Yardstick:
        if not isinstance(data, dict) or data.get("format") != YARDSTICK_FORMAT:
            raise InputError(source, f"not a planner yardstick (format {YARDSTICK_FORMAT})")
        try:
            entries = data["rows"]
            return cls(
                key=YardstickKey(**data["key"]),
                mode=str(data["mode"]),
                rows=np.array([e["row"] for e in entries], dtype=np.intp),
                csv_rows=np.array([e["csv_row"] for e in entries], dtype=np.intp),
                moves=np.array(
                    [np.nan if e["moves"] is None else e["moves"] for e in entries], np.float64
                ),
                exact=np.array([e["exact"] for e in entries], dtype=bool),
                methods=tuple(str(e["method"]) for e in entries),
                deltas=tuple(np.array(e["deltas"], dtype=np.float64) for e in entries),
                seconds=float(data["seconds"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(source, f"malformed planner yardstick ({exc})") from exc


def _actuations(deltas: np.ndarray) -> int:
    """Moves of a plan that change a setting (a plan of no moves has none)."""
    if deltas.size == 0:
        return 0
    return int(np.any(deltas.reshape(len(deltas), -1) != 0.0, axis=1).sum())


def _sha256_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def yardstick_key(plant: Plant, mode: str, budget: int = DEFAULT_BUDGET) -> YardstickKey:
    """The key of a yardstick planned on ``plant`` (see the module docstring)."""
    if mode not in PLANNING_MODES:
        raise ValueError(f"mode must be one of {PLANNING_MODES}, got {mode!r}")
    dynamics = {
        name: value
        for name, value in dataclasses.asdict(plant.settings).items()
        if name not in REWARD_ONLY_SETTINGS
    }
    settings = {
        "format": YARDSTICK_FORMAT,
        "mode": mode,
        "budget": int(budget),
        "band": list(plant.band),
        "steps": plant.steps.tolist(),
        "lower": plant.lower.tolist(),
        "upper": plant.upper.tolist(),
        "env": dynamics,
        "model": _sha256_json(plant.model.to_dict()),
    }
    return YardstickKey(plant.model.csv_sha256, _sha256_json(settings))


def compute_yardstick(
    plant: Plant,
    mode: str = "discrete",
    rows: np.ndarray | None = None,
    budget: int = DEFAULT_BUDGET,
) -> Yardstick:
    """Plan every start row (default: all valid start rows) and time it."""
    key = yardstick_key(plant, mode, budget)
    data = plant.rows
    index = plant.start_indices if rows is None else np.asarray(rows, dtype=np.intp)
    start = time.perf_counter()
    plans: list[Plan] = plan_rows(
        plant,
        data.state[index],
        plant.start_controls(index),
        mode,
        budget=budget,
        pending=plant.start_pending(index),
    )
    seconds = time.perf_counter() - start
    return Yardstick(
        key=key,
        mode=mode,
        rows=index.copy(),
        csv_rows=data.row_numbers[index].copy(),
        moves=np.array([np.nan if p.moves is None else p.moves for p in plans], np.float64),
        exact=np.array([p.exact for p in plans], dtype=bool),
        methods=tuple(p.method for p in plans),
        deltas=tuple(np.asarray(p.deltas, dtype=np.float64) for p in plans),
        seconds=seconds,
    )


def save_yardstick(yardstick: Yardstick, path: str | Path) -> Path:
    """Write atomically (temp file + rename): a crash never leaves half a yardstick."""
    return write_json_atomic(path, yardstick.to_dict())


def load_yardstick(path: str | Path, expected: YardstickKey | None = None) -> Yardstick:
    """Read a saved yardstick; refuse it if its key is not ``expected``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "planner yardstick not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read planner yardstick JSON ({exc})") from exc
    yardstick = Yardstick.from_dict(data, path)
    if expected is not None and yardstick.key != expected:
        raise InputError(
            path,
            f"planner yardstick was computed for other inputs ({yardstick.key.describe()}); "
            f"these inputs are {expected.describe()}: plan again",
        )
    return yardstick


def matching_yardstick(
    path: str | Path | None, plant: Plant, mode: str, budget: int = DEFAULT_BUDGET
) -> Yardstick | None:
    """The yardstick saved at ``path`` if it was planned on exactly this plant and mode;
    None if there is none, or it is stale or unreadable (the caller then plans)."""
    if path is None or not Path(path).is_file():
        return None
    try:
        return load_yardstick(path, yardstick_key(plant, mode, budget))
    except InputError:
        return None


def ensure_yardstick(
    path: str | Path,
    plant: Plant,
    mode: str = "discrete",
    rows: np.ndarray | None = None,
    budget: int = DEFAULT_BUDGET,
) -> tuple[Yardstick, bool]:
    """Load the yardstick at ``path`` if it matches ``plant``, else compute and save it.

    Returns the yardstick and whether it was computed (False: loaded). A file whose
    key or rows do not match is replaced, never trusted.
    """
    path = Path(path)
    key = yardstick_key(plant, mode, budget)
    wanted = plant.start_indices if rows is None else np.asarray(rows, dtype=np.intp)
    if path.is_file():
        try:
            saved = load_yardstick(path, key)
        except InputError:
            saved = None
        if saved is not None and np.array_equal(saved.rows, wanted):
            return saved, False
    yardstick = compute_yardstick(plant, mode, wanted, budget)
    save_yardstick(yardstick, path)
    return yardstick, True
