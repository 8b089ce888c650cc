"""Generate the bundled time-ordered log of a simulated lagging furnace.

How to run (from the repository root)::

    .venv/bin/python data/make_furnace_log.py        # rewrites data/furnace_log.csv

The furnace is *synthetic*, made by :mod:`env.synthetic` (the generator the tests and
benchmarks use) with :class:`env.synthetic_log.LogSettings`: three controls (fuel heats,
feed and coolant cool, with a saturating response and interactions), sampled once a
minute for 2,000 minutes. Its temperature closes 15% of the gap to its steady state per
sample (a time constant of about 6 minutes) after a dead time of 2 minutes, with a slow
drift and sensor noise. An operator changes one or more settings every ~20 minutes,
a third of the time aiming at the band. The log has three gaps (the historian lost a few
minutes) and five readings missing, which split it into segments. Seeded: rerunning the
script reproduces the files byte for byte. ``data/furnace_log_spec.yaml`` describes it;
``rllib-project fit data/furnace_log_spec.yaml`` should identify the rate and dead time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from env.synthetic import make_synthetic_plant
from env.synthetic_log import LogSettings

HERE = Path(__file__).resolve().parent
CSV = HERE / "furnace_log.csv"
SPEC = HERE / "furnace_log_spec.yaml"
LOG = LogSettings(
    rate=0.15,
    dead_time=2,
    samples=2000,
    drift_fraction=0.05,
    drift_time=400.0,
    hold_mean=20.0,
    band_share=0.35,
    gaps=3,
    missing_rows=5,
    time="timestamp",
    start="2026-03-02 06:00:00",
)
SETTINGS = dict(
    n_controls=3,
    names=("fuel_rate", "feed_rate", "coolant_flow"),
    units=("t/h", "t/h", "m3/h"),
    centres=(12.0, 80.0, 40.0),
    gain_signs=(1.0, -1.0, -1.0),
    state_unit="degC",
    base=950.0,
    mean_depth=3.0,
    noise_fraction=0.02,
    horizon=40,
    seed=11,
    log=LOG,
)
HEADER = """\
# Dataset spec for the bundled time-ordered log of a simulated lagging furnace
# (data/make_furnace_log.py made it; see data/README.md). With `time`, the rows are a
# time series: `rllib-project fit` identifies the lag and dead time from it.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    plant = make_synthetic_plant(**SETTINGS)
    plant.frame().to_csv(CSV, index=False)
    spec = plant.spec_dict()
    spec["csv"] = CSV.name
    spec["model"] = {"candidates": ["linear", "quadratic", "cubic", "rbf"], "seed": 0}
    SPEC.write_text(HEADER + yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    print(f"wrote {CSV} ({len(plant.log.written)} rows) and {SPEC}")


if __name__ == "__main__":
    main()
