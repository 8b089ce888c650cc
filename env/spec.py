"""The dataset spec: everything that is particular to one plant, read from YAML.

Nothing about a dataset is hard-coded anywhere else: the state column, the control
columns, the optimal band, the step per control (the "specific amount" a control may
be moved by in one move), the control bounds, the environment's dynamics and reward
weights and how the process model is chosen all come from here.

A spec file looks like this (paths are relative to the spec file)::

    csv: sample_plant.csv
    state: temperature
    state_unit: degC
    band: [952.0, 958.0]
    controls:
      - {name: fuel_rate, step: 0.2, unit: t/h}          # bounds default to observed
      - {name: coolant_flow, step: 0.5, bounds: [30, 50]}
    env: {horizon: 30}          # optional, see EnvSettings
    model: {folds: 5}           # optional, see ModelSettings
    encoding: gbk               # optional, and so are sep, decimal, thousands and
    sep: ";"                    # sheet (Excel): without them they are detected
    decimal: ","
    time: timestamp             # optional: the log is a time series (see below)
    max_gap: 1.5                # optional: a longer gap (in sample periods) splits it
    dynamics: auto              # optional: auto | static | first_order

With ``time``, the rows are a time-ordered log (a historian export): the plant's
dynamics (a first-order lag and a dead time) can be identified from it
(:mod:`env.dynamics`). Without it, every row is an independent steady state.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from env.table_format import ReadOptions, table_kind
from env.typed_config import build_dataclass, read_yaml_mapping

MAX_OBSERVER_RATIO = 1_000_000
"""Largest ``env.observer_ratio``: a cap far past where the gains saturate at the rates
logs show (at rate 0.2 the temperature gain is 0.99998 there: the reading trusted whole);
near the float limit (1e308) the filter's recursion gives NaN gains."""

ModelFamily = Literal["linear", "quadratic", "cubic", "rbf"]
DynamicsChoice = Literal["auto", "static", "first_order"]
"""``static``: each reading depends on the settings of its own row only; ``first_order``:
the temperature follows the settings with a lag and a dead time (identified from the
log); ``auto``: whichever of the two predicts the log better (blocked cross-validation)."""


def _require(condition: bool, message: str) -> None:
    """Raise ValueError (turned into a one-line InputError by the loader)."""
    if not condition:
        raise ValueError(message)


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


@dataclass(frozen=True)
class ControlSpec:
    """One manipulated variable."""

    name: str
    """Column name in the CSV."""
    step: float
    """The amount one move changes this control by (physical units, > 0)."""
    bounds: tuple[float, float] | None = None
    """Allowed range; default: the observed min/max, so agents stay in the data's support."""
    unit: str = ""
    """Unit shown in recommendations."""

    def __post_init__(self) -> None:
        _require(bool(self.name.strip()), "control name is empty")
        _require(
            _finite(self.step) and self.step > 0,
            f"control {self.name!r}: step must be a positive number, got {self.step}",
        )
        if self.bounds is not None:
            low, high = self.bounds
            _require(_finite(low, high), f"control {self.name!r}: bounds must be finite")
            _require(
                low < high,
                f"control {self.name!r}: bounds are inverted or empty ({low} >= {high})",
            )


@dataclass(frozen=True)
class EnvSettings:
    """Dynamics and reward of the environment (defaults argued in the env docstring)."""

    horizon: int = 30
    """Moves per episode before truncation."""
    response_rate: float = 1.0
    """A hand-set first-order lag for plants whose dynamics are not identified (rows
    without time order): fraction of the gap to the model's steady state closed per
    move (1.0 = the move's full effect is seen at the next reading). When the model
    carries dynamics identified from a time-ordered log, those are the plant's, and a
    response_rate other than 1 is refused rather than silently combined with them."""
    noise_std: float = 0.0
    """Standard deviation of measurement/process noise added to each reading."""
    drift_std: float = 0.0
    """Per-move standard deviation of a slow random-walk disturbance on the temperature."""
    in_band_reward: float = 1.0
    """Reward for a reading inside the band."""
    centre_weight: float | None = None
    """Inside the band the reward is ``in_band_reward - centre_weight * x**2``, ``x`` the
    distance from the band's middle in half-widths (0 middle, 1 edge): > 0 teaches a
    policy to settle near the middle rather than anywhere inside, a margin for what
    the model does not know. Default (None): ``DRIFT_CENTRE_WEIGHT`` (0.5) where the
    log's disturbance observer is active (the plant drifts away from the model), 0
    elsewhere (:attr:`env.plant.Plant.centre_weight`). Measured on the furnace log
    (compare_dynamic, seed 0, 150k env steps, 2026-11-28), 0 / 0.5, on the model and on
    the generating furnace with the observer: PPO 97.1% / 100%, 93.2% / 96.8%; SAC
    100% / 100%, 96.7% / 96.5%; DQN 83.2% / 83.6%, 76.8% / 77.5%."""
    hold_margin: float | None = None
    """The advice's "inside the band, hold" needs the temperature to settle at least
    this fraction of the half-width away from the band's edges (0: anywhere inside).
    On a plant with sensor noise and drift, settings that settle at the edge leave the
    band with the next gust; with a margin the policy is asked there and may move
    toward the middle. Used wherever the rule is (advice, serving, scoring). Default
    (None): where the log's disturbance observer is active, one standard deviation of
    what a settled reading can differ from the observer's settling temperature (its
    estimate's error and the sensor noise, both from the log), in half-widths, at
    most 0.5 (furnace log: 0.44); 0 elsewhere (:attr:`env.plant.Plant.hold_margin`).
    Measured there with the PPO and SAC of ``centre_weight`` 0.5, on the generating
    furnace with the observer (noise seed 0), margin 0 / 0.28 / 0.4 / 0.5: PPO 93.9% /
    97.6% / 98.0% / 98.0% success, 0.93 / 1.01 / 1.06 / 1.11 setting changes per
    planner move; SAC 94.0% / 98.0% / 98.9% / 99.0%, 1.02 / 1.08 / 1.14 / 1.21."""
    out_of_band_penalty: float = 1.0
    """Fixed penalty for a reading outside the band (makes every extra move cost)."""
    distance_weight: float = 0.1
    """Extra penalty per band-width of distance outside the band."""
    distance_cap: float = 10.0
    """Distance (in band widths) beyond which the penalty stops growing."""
    move_cost: float = 0.1
    """Cost per move, times the mean |delta| in steps: makes "keep" win inside the band."""
    actuation_cost: float | None = None
    """Cost of a move that changes any setting (an operator's intervention), on top of
    ``move_cost``. Default (None): ``LAGGING_ACTUATION_COST`` (0.5) on a lagging plant,
    0 otherwise. Why: without lag every move shows at the next reading, so the fewest
    moves to the band already means the fewest interventions; with lag an extra push
    shows only samples later, and a per-reading reward cannot tell "keep, it is on its
    way" from "push again" until then: policies learn to saw at the valves. 0.5 is
    below what one more reading out of the band costs (at least 2: the penalty of 1
    plus the in-band reward of 1 forgone), so it never buys fewer actuations with a
    later arrival (the planner's order: moves to band first, then actuations), but it
    makes every needless setting change visible in the return at once."""
    end_on_hold: bool | None = None
    """End an episode (terminated) once the reading holds in the band: inside it and
    staying there when nothing is touched (:meth:`env.plant.Plant.holds`; on a lagging
    plant a reading passing through does not hold). Default (None): on for a plant
    without lag, off for a lagging one (:attr:`env.plant.Plant.ends_on_hold`).
    From there the advice keeps every setting whatever the policy says, and policies
    are scored that way (:mod:`rllib_project.scoring`), so steps after it teach nothing
    that is used; ending there fills the replay buffers and batches with the approach
    instead (on the sample, 2.1 moves of a 30-move horizon). Measured as served, one
    trainable alone per run (2026-11-28; ``k2d2``: the generated 2-control plant of
    ``scripts/bench_shapes.py`` whose steps overshoot the band, mean depth 2.2):
    DQN (branching) after ~100k env steps, seeds 0 / 1 / 2: sample 99.0% 1.09x,
    99.8% 1.04x, 100% 1.05x moves/opt against 100% 1.06x, 100% 1.16x, 99.0% 1.20x
    without it; k2d2 success 78.2% / 46.6% / 43.6% against 36.8% / 37.8% / 36.2%.
    PPO after ~41k env steps, seed 1: k2d2 100%, 1.11x against 79.2%, 1.31x; sample
    100%, 1.02x against 100%, 1.03x. ``false``: episodes run to the horizon.
    The last reward adds the held reading's in-band reward for every reading left to
    the horizon (what keeping would earn there), so a return is the same as if the
    episode ran on (and as the evaluation's roll-outs, which run to the horizon under
    the advice's rule). On the sample it changes nothing beyond the seeds' spread: DQN
    (one trainable alone, ~102k env steps, all 500 rows) with / without it, seeds 0 /
    1 / 2: 99.4% 1.08x / 98.8% 1.19x, 99.0% 1.06x / 100% 1.02x, 99.8% 1.07x / 99.8% 1.05x.
    Why off on a lagging plant: on the bundled furnace log (compare_dynamic, seed 0,
    150k env steps each, 2026-11-28), success on the model / on the generating furnace
    and setting changes per start there, on without the end's payment, on with it, off:
    DQN 50.3% / 39.5% / 3.0, 46.4% / 37.7% / 3.4, 89.2% / 64.2% / 2.5; PPO 97.2% /
    84.7% / 20.7, 98.5% / 87.1% / 10.3, 96.9% / 90.2% / 6.5; SAC 96.0% / 89.6% / 12.2,
    100% / 88.8% / 10.9, 100% / 94.5% / 9.8. There a hold is rare and needs the lag to
    have settled: episodes that end at it leave the agent few transitions near the band
    and none of what follows, and every algorithm did worse."""
    land_in_one_move: bool = True
    """The advice's "land" rule, beside its "inside the band, hold": on a plant without
    lag, where the reading is outside the band, the policy's move does not bring it in
    (on the model) and one move of whole steps does, that move is advised instead (of
    those, the one landing nearest the band's middle; :meth:`env.plant.Plant.land`).
    It never takes more moves than the policy on the model: the landing move reaches
    the band now, and the hold rule keeps it there. Why: a policy learns the approach
    well and the landing coarsely where one step moves the temperature by more than the
    band is wide (it stops just outside, or swings across). Used in the advice
    (``recommend``, the batch file, the server; ``evaluate``'s ``(advised)`` row), not
    in training and not in the score that chooses checkpoints and stops trials, which
    would then judge the look-ahead instead of the policy (:mod:`rllib_project.scoring`).
    Measured 2026-11-29 on the generated 2- and 4-control plants of
    ``scripts/bench_shapes.py`` (mean depth 2, DQN alone for 120 s, all 500 rows as
    served): 99.8% / 1.47x -> 100% / 1.04x and 99.4% / 1.24x -> 100% / 1.00x.
    Candidates: every move for up to ``LANDING_ALL_MOVES_MAX_CONTROLS`` (4) controls,
    moves changing at most two controls beyond (``3**k`` grows too fast to try on
    every reading). ``false``: the policy's own moves. On a lagging plant a move's effect
    arrives over samples ("keep - already on its way" covers it): not used there; the
    "centre" rule (``centre_settling``) is its counterpart."""
    centre_settling: bool = True
    """The advice's "centre" rule, on a lagging plant only: where the policy's new
    settings would settle in the band on the model (with the observer's estimate), or
    it keeps settings that settle in the band's margin (``hold_margin``), the move of
    whole steps (or keeping) whose settings settle nearest the band's middle is advised,
    when nearer (:meth:`env.plant.Plant.centre`). Why: the policies land the settling
    temperature anywhere in the band, and the sensor's noise then carries readings of a
    temperature held near an edge outside it. Measured 2026-11-29 on the bundled
    furnace log (``scripts/bench_dynamics.py closed_loop``, the policies of
    ``compare_dynamic.yaml``, with the observer, noise seed 0, success on the readings
    and setting changes per planner move), without -> with: PPO 97.3% / 1.01 -> 98.9%
    / 0.98, SAC 98.8% / 1.21 -> 99.1% / 1.00, DQN 96.7% / 1.20 -> 98.8% / 0.90.
    Candidates as for ``land_in_one_move``; it chooses among moves of one actuation,
    so it adds setting changes only where kept settings settle in the margin. Like the
    land rule, used in the advice and ``evaluate``'s ``(advised)`` row, not in training
    or the score. ``false``: the policy's own moves."""
    observer_ratio: float | None = None
    """The disturbance observer's ratio q / r on a lagging plant (:mod:`env.observer`).
    Default (None): chosen on the log, among ``env.observer.RATIOS``, by how well the
    readings are predicted 10 samples ahead; 0 turns the observer off. An export
    records the number chosen (it carries no rows to choose on), so that advice served
    from it estimates the disturbance from a reading's history as ``recommend --row``
    does from the log. At most ``MAX_OBSERVER_RATIO`` (1000000)."""
    observed_offsets: bool = False
    """Start each training episode from a logged row with the disturbance the log's
    observer estimated there (:mod:`env.observer`: how far the plant's steady state lay
    from the model's at that time), held through the episode, instead of none; only
    where the observer is active. In use the observation's settling temperature
    carries the observer's estimate, and trained without offsets it is always the
    model's own, so a policy might read it off the settings and ignore it. Measured
    on the furnace log (compare_dynamic, seed 0, 150k env steps each, 2026-11-28), on
    the generating furnace with the observer, without / with offsets in training:
    DQN 78.0% / 76.8%, PPO 93.6% / 93.2%, SAC 96.4% / 96.7% success: the policies use
    the settling temperature either way, so off by default."""
    continuous_deadband: float = 0.1
    """Continuous actions smaller than this fraction of a step count as "keep"."""
    uncertainty_penalty: float = 0.0
    """Penalty per unit of the model ensemble's standard deviation, in band widths;
    > 0 keeps agents where the data supports the model."""
    progress_shaping: float | None = None
    """Weight of the training reward's progress term: each step adds
    ``Phi(s') - Phi(s)`` with ``Phi(s) = -progress_shaping * d / reach``, ``d`` the
    distance to the band of the reading, or on a lagging plant of the settling
    temperature of the settings made (those in flight included), and ``reach`` the
    temperature one move of whole steps typically changes
    (:attr:`env.plant.Plant.move_reach`): potential-based shaping (Ng, Harada and
    Russell, 1999), so the fewest-moves policy stays the best one (with a discount
    gamma < 1 the difference is a distance penalty of ``(1 - gamma) * Phi``, alongside
    ``distance_weight``'s), while each move is paid at once for what it brings rather
    than only through the value of the readings after it; on a lagging plant, when it is
    made rather than when its effect arrives, and a push past the band costs at once.
    Default (None): ``in_band_reward + out_of_band_penalty`` (2: what one more reading
    out of the band costs, so ``Phi`` approximates the return still to lose); 0 turns it
    off. Only the environment's training reward: the evaluation's returns and the score
    leave it out. Measured on the generated 6-control plant of mean depth 19.5
    (``scripts/bench_shapes.py``, three trials on 2 CPUs, 240 s each, 2026-11-29), the
    policies' success without / with: PPO 70.4% / 100%, SAC 40.6% / 100%, DQN 56.0% /
    98.8%; with it every k <= 6 shape of the benchmark met >= 98% at <= 1.10x the
    planner's moves with PPO and SAC (README). On the furnace log (150k env steps, on
    the generating furnace with the observer, noise seeds 0 / 1 / 2), without / with:
    PPO 96.8, 96.4, 96.1% at 1.33-1.34 setting changes per planner move / 98.2, 97.4,
    97.5% at 1.04-1.05; SAC 98.8, 98.6, 98.2% at 1.21 / 99.0, 98.4, 98.4% at 1.08; DQN
    96.7, 97.0, 96.8% at 1.20-1.22 / 98.7, 97.5, 97.7% at 1.20-1.21."""

    def __post_init__(self) -> None:
        _require(self.horizon >= 1, f"env.horizon must be >= 1, got {self.horizon}")
        _require(
            0.0 < self.response_rate <= 1.0,
            f"env.response_rate must be in (0, 1], got {self.response_rate}",
        )
        for name in (
            "noise_std",
            "drift_std",
            "distance_weight",
            "distance_cap",
            "move_cost",
            "uncertainty_penalty",
            "out_of_band_penalty",
        ):
            value = getattr(self, name)
            _require(_finite(value) and value >= 0, f"env.{name} must be >= 0, got {value}")
        _require(
            self.actuation_cost is None
            or (_finite(self.actuation_cost) and self.actuation_cost >= 0),
            f"env.actuation_cost must be >= 0 (or omitted), got {self.actuation_cost}",
        )
        _require(
            0.0 <= self.continuous_deadband < 1.0,
            f"env.continuous_deadband must be in [0, 1), got {self.continuous_deadband}",
        )
        _require(
            self.centre_weight is None or (_finite(self.centre_weight) and self.centre_weight >= 0),
            f"env.centre_weight must be >= 0 (or omitted), got {self.centre_weight}",
        )
        _require(
            self.hold_margin is None or 0.0 <= self.hold_margin < 1.0,
            f"env.hold_margin must be in [0, 1) (or omitted), got {self.hold_margin}",
        )
        _require(
            self.observer_ratio is None
            or (_finite(self.observer_ratio) and 0 <= self.observer_ratio <= MAX_OBSERVER_RATIO),
            f"env.observer_ratio must be in [0, {MAX_OBSERVER_RATIO}] (or omitted), "
            f"got {self.observer_ratio}",
        )
        _require(
            self.progress_shaping is None
            or (_finite(self.progress_shaping) and self.progress_shaping >= 0),
            f"env.progress_shaping must be >= 0 (or omitted), got {self.progress_shaping}",
        )
        _require(_finite(self.in_band_reward), "env.in_band_reward must be finite")


@dataclass(frozen=True)
class ModelSettings:
    """How the process model temperature = f(controls) is chosen and fitted."""

    candidates: tuple[ModelFamily, ...] = ("linear", "quadratic", "cubic", "rbf")
    """Model families compared by k-fold cross-validation."""
    folds: int = 5
    """Folds of the cross-validation."""
    ridge_alphas: tuple[float, ...] = (1e-6, 1e-3, 1e-1, 3.0)
    """Ridge penalties tried per family (on standardised features)."""
    ensemble_size: int = 8
    """Bootstrap members of the chosen family; their spread is the model's uncertainty."""
    rbf_centers: int = 48
    """Gaussian RBF centres (k-means++ picks on the rows) for the ``rbf`` family."""
    max_selection_rows: int = 20000
    """Cross-validation uses at most this many rows (a random subset); the final fit
    uses every row."""
    seed: int = 0
    """Seed for folds, bootstrap and centre picks: the fit is reproducible."""
    free_run_horizon: int = 10
    """Time-ordered logs: candidate dynamics are scored by predicting this many samples
    ahead from each held-out reading, with the logged settings (free run)."""
    max_dead_time: int = 3
    """Time-ordered logs: dead times 0..max_dead_time samples are tried."""

    def __post_init__(self) -> None:
        _require(
            self.free_run_horizon >= 1,
            f"model.free_run_horizon must be >= 1, got {self.free_run_horizon}",
        )
        _require(
            0 <= self.max_dead_time <= 10,
            f"model.max_dead_time must be in 0..10, got {self.max_dead_time}",
        )
        _require(len(self.candidates) >= 1, "model.candidates must name at least one family")
        _require(self.folds >= 2, f"model.folds must be >= 2, got {self.folds}")
        _require(self.ensemble_size >= 2, "model.ensemble_size must be >= 2")
        _require(len(self.ridge_alphas) >= 1, "model.ridge_alphas must not be empty")
        _require(
            all(_finite(a) and a >= 0 for a in self.ridge_alphas),
            "model.ridge_alphas must be >= 0",
        )
        _require(self.rbf_centers >= 2, "model.rbf_centers must be >= 2")
        _require(self.max_selection_rows >= 10, "model.max_selection_rows must be >= 10")


@dataclass(frozen=True)
class DatasetSpec:
    """A plant dataset and what "good" means for it."""

    csv: str
    """Path of the data file, .csv/.tsv/.txt or .xlsx (relative to the spec file)."""
    state: str
    """Name of the state column (the temperature)."""
    band: tuple[float, float]
    """Optimal band [low, high] for the state, in its physical units."""
    controls: tuple[ControlSpec, ...]
    """The control columns, each with its step and bounds."""
    state_unit: str = ""
    """Unit of the state, shown in recommendations."""
    env: EnvSettings = field(default_factory=EnvSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    encoding: str | None = None
    """Text encoding of the file (Python codec name: utf-8, gbk, cp1252, utf-16...);
    default: detected."""
    sep: str | None = None
    """Field separator (one character; a tab is written "\\t"); default: detected."""
    decimal: str | None = None
    """Decimal mark of the numbers, '.' or ','; default: detected."""
    thousands: str | None = None
    """Thousands separator inside numbers ('.', ',', ' ', "'"...); default: detected."""
    sheet: str | int | None = None
    """Excel workbooks: the sheet's name, or its position counting from 1; default: the
    first sheet that holds the spec's columns."""
    time: str | None = None
    """Column of time stamps (dates and times, or sample numbers / seconds): the rows are
    a time-ordered log. They must be in increasing time order (a duplicate or a step
    back is refused); gaps and rows with missing values split the log into segments,
    which are never bridged."""
    max_gap: float = 1.5
    """With ``time``: a step between rows longer than this many sample periods (the
    median step) is a gap that starts a new segment. 1.5 splits wherever one sample is
    missing, while tolerating the jitter of a historian's clock."""
    dynamics: DynamicsChoice | None = None
    """``auto``, ``static`` or ``first_order``; default ``auto`` with ``time``, else
    ``static`` (rows without time order say nothing about dynamics)."""
    source: str = field(default="", metadata={"yaml": False})
    """The spec file this came from (set by :func:`load_spec`, not written in YAML)."""

    def __post_init__(self) -> None:
        _require(bool(self.state.strip()), "state column name is empty")
        _require(len(self.controls) >= 1, "controls must list at least one control")
        low, high = self.band
        _require(_finite(low, high), f"band must be finite, got [{low}, {high}]")
        _require(low < high, f"band is inverted or empty: low {low} >= high {high}")
        names = [c.name for c in self.controls]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        _require(not duplicates, f"control(s) listed twice: {', '.join(duplicates)}")
        _require(
            self.state not in names, f"state column {self.state!r} is also listed as a control"
        )
        self.read_options.check(table_kind(self.csv))
        if self.time is not None:
            _require(bool(self.time.strip()), "time column name is empty")
            _require(
                self.time != self.state and self.time not in names,
                f"time column {self.time!r} is also the state or a control",
            )
        _require(
            _finite(self.max_gap) and self.max_gap > 1.0,
            f"max_gap must be a number of sample periods > 1, got {self.max_gap}",
        )
        _require(
            self.time is not None or self.dynamics in (None, "static"),
            f"dynamics: {self.dynamics} needs a time column (`time:`): without time order "
            "the rows say nothing about dynamics",
        )

    @property
    def dynamics_choice(self) -> DynamicsChoice:
        """What the fit does: the spec's ``dynamics``, or its default (see the field)."""
        if self.dynamics is not None:
            return self.dynamics
        return "auto" if self.time is not None else "static"

    @property
    def control_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.controls)

    @property
    def read_options(self) -> ReadOptions:
        """What the spec says about how to read its file (None where detected)."""
        return ReadOptions(self.encoding, self.sep, self.decimal, self.thousands, self.sheet)

    @property
    def csv_path(self) -> Path:
        path = Path(self.csv)
        if not path.is_absolute() and self.source:
            path = Path(self.source).parent / path
        return path


def load_spec(path: str | Path) -> DatasetSpec:
    """Read and validate a dataset spec; raises :class:`InputError` on any problem."""
    path = Path(path)
    data = read_yaml_mapping(path)
    spec = build_dataclass(DatasetSpec, data, path)
    return dataclasses.replace(spec, source=str(path.resolve()))


def spec_to_dict(spec: DatasetSpec) -> dict:
    """Plain-data form of a spec (for manifests and exported policies)."""
    data = dataclasses.asdict(spec)
    data.pop("source", None)
    data["csv"] = str(spec.csv_path)
    return data
