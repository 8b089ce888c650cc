"""``rllib-project fit``: validate a dataset, fit its process model, save the artifact.

Validation runs completely (CSV, spec, model, band reachability) before anything is
written, and the artifact is written atomically, so a refused input leaves no file.

For a time-ordered log (a spec with ``time``) the table compares every family both
static and with identified dynamics (a lag and a dead time, :mod:`env.dynamics`), by
blocked cross-validation: the free-run error (readings predicted 1..H samples ahead
from each held-out reading) next to the one-step error. ``--json`` prints what was
chosen; its ``dynamics`` object has the keys ``kind``, ``rate``, ``dead_time``,
``cv_free_run_rmse`` and ``cv_one_step_rmse`` (rows without time order: ``static``,
rate 1, dead time 0, both errors the k-fold CV error of ``T = f(u)``); its
``observer`` object (null without identified lag) has ``active``, ``ratio``,
``prediction_rmse``, ``prediction_rmse_without`` and ``prediction_horizon``
(:mod:`env.observer`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from env.files import json_safe, refuse_to_overwrite_inputs
from env.model import FIRST_ORDER, Dynamics, ProcessModel
from env.observer import PREDICTION_HORIZON
from env.plant import Plant, load_plant
from env.spec import load_spec
from env.table_format import TableFormat
from env.time_log import describe_period


def default_model_path(spec_path: Path) -> Path:
    """``data/sample_spec.yaml`` -> ``data/sample_spec.model.json``."""
    return spec_path.with_name(spec_path.stem + ".model.json")


def format_read_as(fmt: TableFormat) -> str:
    """'read as GBK, ';' separated, decimal ',' (detected: ...)': what the user can check
    at a glance, and the spec keys that would change it."""
    line = f"read as {fmt.describe()}"
    if fmt.detected:
        keys = ", ".join(fmt.detected)
        line += f" (detected; spec keys: {keys})"
    return line


def _static_table(model: ProcessModel, folds: int) -> list[str]:
    lines = [
        f"{folds}-fold cross-validation of the candidate model families:",
        f"{'family':<10} {'features':>8} {'ridge':>8} {'CV RMSE':>9} {'CV R2':>7}",
    ]
    for score in model.cv_scores:
        marker = "  <- chosen" if score.family == model.family else ""
        lines.append(
            f"{score.family:<10} {score.n_features:>8d} {score.alpha:>8.0e} "
            f"{score.rmse:>9.3f} {score.r2:>7.3f}{marker}"
        )
    return lines


def _dynamics_table(model: ProcessModel, dynamics: Dynamics, folds: int) -> list[str]:
    h = dynamics.free_run_horizon
    lines = [
        f"blocked {folds}-fold cross-validation of the time-ordered log (contiguous blocks, "
        f"kept {h} samples apart from their training rows); each held-out reading predicts "
        f"the next {h} with the logged settings (free run):",
        f"{'dynamics':<12} {'family':<10} {'features':>8} {'ridge':>8} {'rate':>6} "
        f"{'dead time':>9} {'free-run RMSE':>13} {'one-step RMSE':>13}",
    ]
    for score in model.cv_scores:
        chosen = score.family == model.family and score.kind == dynamics.kind
        rate = "-" if score.kind != FIRST_ORDER else f"{score.rate:.3f}"
        dead = "-" if score.kind != FIRST_ORDER else str(score.dead_time)
        one = "-" if score.one_step_rmse is None else f"{score.one_step_rmse:.3f}"
        lines.append(
            f"{score.kind or '':<12} {score.family:<10} {score.n_features:>8d} "
            f"{score.alpha:>8.0e} {rate:>6} {dead:>9} {score.rmse:>13.3f} {one:>13}"
            + ("  <- chosen" if chosen else "")
        )
    return lines


def describe_dynamics(dynamics: Dynamics) -> str:
    """One line: what the plant does over time, in samples and in the log's time unit."""
    if dynamics.kind != FIRST_ORDER:
        line = "dynamics: static (each reading follows the settings in force, no lag)"
    else:
        kind = dynamics.time_kind
        period = dynamics.sample_period

        def span(samples: float) -> str:
            if period is None or kind != "datetime":
                return f"{samples:.3g} sample(s)"
            return f"{samples:.3g} sample(s) = {describe_period(samples * period, kind)}"

        tau = math.inf if dynamics.rate >= 1.0 else -1.0 / math.log(1.0 - dynamics.rate)
        line = (
            f"dynamics: first order, rate {dynamics.rate:.3f} (fraction of the gap to the "
            f"steady state closed per sample; time constant {span(tau)}), dead time "
            f"{span(dynamics.dead_time)}"
        )
    if dynamics.note:
        line += f"; {dynamics.note}"
    return line


def format_fit_report(plant: Plant) -> str:
    """The cross-validation table and what the data check noted."""
    model, data = plant.model, plant.rows
    folds = plant.spec.model.folds
    dynamics = model.dynamics
    lines = [
        f"dataset: {data.spec.csv_path} ({data.n_rows} rows, sha256 {data.csv_sha256[:12]}...)",
        format_read_as(data.table_format),
        *(f"note: {note}" for note in data.notes),
        *(
            _static_table(model, folds)
            if dynamics is None
            else [*_dynamics_table(model, dynamics, folds), describe_dynamics(dynamics)]
        ),
    ]
    observer = describe_observer(plant)
    if observer:
        lines.append(observer)
    low, high = plant.model_range()
    lines.append(
        f"model: {model.family}, {len(model.coef_members)}-member bootstrap ensemble; "
        f"{plant.spec.state} over the control bounds: {low:.1f} to {high:.1f}; "
        f"band {plant.band[0]:g} to {plant.band[1]:g}"
    )
    return "\n".join(line for line in lines if line)


def describe_observer(plant: Plant) -> str:
    """One line on the disturbance observer of a lagging plant (:mod:`env.observer`)."""
    fit = plant.observer_fit
    if fit is None:
        return ""
    h = PREDICTION_HORIZON
    without = fit.scores[0.0]
    if not fit.observer.active:
        return (
            f"disturbance observer: off (the readings predict {h} samples ahead no better "
            f"with a disturbance estimate; error {without:.3g} without)"
        )
    chosen = "" if plant.settings.observer_ratio is None else ", set by env.observer_ratio"
    line = (
        f"disturbance observer: on (q/r {fit.observer.ratio:g}{chosen}): readings {h} samples "
        f"ahead predicted with error {fit.scores[fit.observer.ratio]:.3g} against "
        f"{without:.3g} by the model alone"
    )
    if plant.starts_with_offsets:
        line += "; training episodes start with its estimate at their row"
    return line


def observer_summary(plant: Plant) -> dict[str, Any] | None:
    """``fit --json``'s ``observer`` (None for a plant without identified lag)."""
    fit = plant.observer_fit
    if fit is None:
        return None
    return {
        "active": fit.observer.active,
        "ratio": fit.observer.ratio,
        "prediction_rmse": fit.scores[fit.observer.ratio],
        "prediction_rmse_without": fit.scores[0.0],
        "prediction_horizon": PREDICTION_HORIZON,
    }


def dynamics_summary(model: ProcessModel) -> dict[str, Any]:
    """``fit --json``'s ``dynamics``: identified, or static for rows without time order."""
    if model.dynamics is not None:
        return model.dynamics.summary()
    best = min(model.cv_scores, key=lambda s: s.rmse)
    return Dynamics(STATIC_KIND, 1.0, 0, best.rmse, best.rmse).summary()


STATIC_KIND = "static"


def fit_summary(plant: Plant, target: Path) -> dict[str, Any]:
    """What ``fit --json`` prints."""
    model, data = plant.model, plant.rows
    return json_safe(
        {
            "model": str(target),
            "dataset": str(data.spec.csv_path),
            "rows": data.n_rows,
            "segments": None if data.segment is None else int(data.segment[-1]) + 1,
            "family": model.family,
            "dynamics": dynamics_summary(model),
            "observer": observer_summary(plant),
            "candidates": [
                {k: v for k, v in score.__dict__.items() if v is not None}
                for score in model.cv_scores
            ],
            "notes": list(data.notes),
        }
    )


def fit_command(spec_path: Path, out: Path | None, as_json: bool = False) -> int:
    target = out if out is not None else default_model_path(spec_path)
    if target.exists() and spec_path.is_file():  # else load_plant says what is wrong
        refuse_to_overwrite_inputs(target, spec_path, load_spec(spec_path).csv_path)
    plant = load_plant(spec_path)  # validates everything; raises InputError
    if not as_json:
        print(format_fit_report(plant))
    plant.model.save(target)
    if as_json:
        print(json.dumps(fit_summary(plant, target), indent=1, allow_nan=False, ensure_ascii=False))
    else:
        print(f"wrote {target}")
    return 0
