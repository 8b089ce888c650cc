"""``rllib-project fit``: validate a dataset, fit its process model, save the artifact.

Validation runs completely (CSV, spec, model, band reachability) before anything is
written, and the artifact is written atomically, so a refused input leaves no file.
"""

from __future__ import annotations

from pathlib import Path

from env.plant import Plant, load_plant
from env.table_format import TableFormat


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


def format_fit_report(plant: Plant) -> str:
    """The cross-validation table and what the data check noted."""
    model, data = plant.model, plant.rows
    lines = [
        f"dataset: {data.spec.csv_path} ({data.n_rows} rows, sha256 {data.csv_sha256[:12]}...)",
        format_read_as(data.table_format),
        *(f"note: {note}" for note in data.notes),
        f"{plant.spec.model.folds}-fold cross-validation of the candidate model families:",
        f"{'family':<10} {'features':>8} {'ridge':>8} {'CV RMSE':>9} {'CV R2':>7}",
    ]
    for score in model.cv_scores:
        marker = "  <- chosen" if score.family == model.family else ""
        lines.append(
            f"{score.family:<10} {score.n_features:>8d} {score.alpha:>8.0e} "
            f"{score.rmse:>9.3f} {score.r2:>7.3f}{marker}"
        )
    low, high = plant.model_range()
    lines.append(
        f"model: {model.family}, {len(model.coef_members)}-member bootstrap ensemble; "
        f"{plant.spec.state} over the control bounds: {low:.1f} to {high:.1f}; "
        f"band {plant.band[0]:g} to {plant.band[1]:g}"
    )
    return "\n".join(line for line in lines if line)


def fit_command(spec_path: Path, out: Path | None) -> int:
    plant = load_plant(spec_path)  # validates everything; raises InputError
    target = out if out is not None else default_model_path(spec_path)
    print(format_fit_report(plant))
    plant.model.save(target)
    print(f"wrote {target}")
    return 0
