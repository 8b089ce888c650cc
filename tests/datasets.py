"""Small synthetic datasets written to a temporary folder, for tests.

Any number of controls and any column names: the code under test must take all of
that from the spec, never assume the sample data's four columns.

* :func:`write_synthetic`: a plant from :mod:`env.synthetic` (the generator the
  benchmarks use), for tests about plant *shape*: k controls, how many moves rows need.
* :func:`write_dataset`: a simple plant with everything explicit (names, band, steps,
  spec entries), for tests about spec and CSV handling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from env.synthetic import make_synthetic_plant


def write_synthetic(
    folder: Path, n_controls: int, *, mean_depth: float = 5.0, rows: int = 150, **settings: Any
) -> Path:
    """A generated plant (``env.synthetic``) with test-sized defaults; the spec path."""
    settings.setdefault("ensemble_size", 2)
    return make_synthetic_plant(
        n_controls=n_controls, mean_depth=mean_depth, rows=rows, **settings
    ).write(folder)


def plant_temperature(z: np.ndarray) -> np.ndarray:
    """A smooth non-linear plant: each control heats or cools, with one interaction."""
    k = z.shape[1]
    signs = np.where(np.arange(k) % 2 == 0, 1.0, -1.0)
    weights = signs * (6.0 - 3.0 * np.arange(k) / max(k - 1, 1))
    value = 500.0 + z @ weights + 2.0 * np.tanh(z[:, 0]) ** 2
    if k >= 2:
        value = value + 0.8 * z[:, 0] * z[:, 1]
    return value


def write_dataset(
    folder: Path,
    n_controls: int = 2,
    *,
    names: list[str] | None = None,
    state: str = "temp",
    rows: int = 200,
    band: tuple[float, float] = (498.0, 502.0),
    steps: list[float] | None = None,
    noise: float = 0.3,
    seed: int = 0,
    spec_extra: dict[str, Any] | None = None,
    controls_extra: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Write ``plant.csv`` and ``spec.yaml`` into ``folder``; return the spec path."""
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"c{i}" for i in range(n_controls)]
    rng = np.random.default_rng(seed)
    z = rng.uniform(-1.5, 1.5, size=(rows, n_controls))
    frame = pd.DataFrame({state: plant_temperature(z) + rng.normal(0, noise, rows)})
    for i, name in enumerate(names):
        frame[name] = 10.0 * (i + 1) + 2.0 * z[:, i]
    frame.to_csv(folder / "plant.csv", index=False)
    steps = steps or [0.4] * n_controls
    controls = []
    for name, step in zip(names, steps, strict=True):
        entry: dict[str, Any] = {"name": name, "step": step}
        entry.update((controls_extra or {}).get(name, {}))
        controls.append(entry)
    spec: dict[str, Any] = {
        "csv": "plant.csv",
        "state": state,
        "band": list(band),
        "controls": controls,
        "env": {"horizon": 20},
        "model": {"ensemble_size": 4},
    }
    for key, value in (spec_extra or {}).items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
