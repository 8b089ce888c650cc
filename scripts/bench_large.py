"""Benchmark: fit the model and build the environment from a 1,000,000-row CSV.

How to run::

    .venv/bin/python scripts/bench_large.py [--rows 1000000]

Writes a CSV of the synthetic furnace with ``--rows`` rows into a temporary folder,
then times, in this process: reading and validating it, fitting the process model
(cross-validation on a 20,000-row sample, bootstrap ensemble on every row, streamed in
chunks), building ``TemperatureControl-v0`` on it and stepping it. Prints each time and
the peak resident memory, against the same steps on the 500-row sample as baseline.
Then reads the same rows written as a European Excel export (';' separated, decimal
commas, detected) against the plain CSV as baseline.

Results to expect: well under a minute and a few hundred MB on a 2-core machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import shutil
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import yaml

import env

REPO = Path(__file__).resolve().parent.parent


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_large_dataset(folder: Path, rows: int) -> Path:
    """The sample spec, pointed at a CSV of ``rows`` rows from the same plant."""
    spec_path = importlib.util.spec_from_file_location(
        "make_sample_data", REPO / "data" / "make_sample_data.py"
    )
    generator = importlib.util.module_from_spec(spec_path)
    spec_path.loader.exec_module(generator)  # type: ignore[union-attr]
    frame = generator.generate(rows, seed=11)
    frame.to_csv(folder / "large.csv", index=False)
    frame.to_csv(folder / "large_eu.csv", index=False, sep=";", decimal=",")
    spec = yaml.safe_load((REPO / "data" / "sample_spec.yaml").read_text())
    for name in ("large", "large_eu"):
        spec["csv"] = f"{name}.csv"
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    return folder / "large.yaml"


def timed_read(spec_path: Path) -> tuple[float, str]:
    """Seconds to read + validate (no fit), and how the file was read."""
    start = time.perf_counter()
    data = env.load_plant_data(env.load_spec(spec_path))
    return time.perf_counter() - start, data.table_format.describe()


def timed_build(spec_path: Path) -> dict[str, float]:
    """Seconds to validate + fit, to build the env, and to take 10,000 steps."""
    start = time.perf_counter()
    plant = env.load_plant(spec_path)
    fitted = time.perf_counter()
    environment = gym.make(env.ENV_ID, spec_path=str(spec_path))
    built = time.perf_counter()
    environment.reset(seed=0)
    keep = environment.unwrapped.codec.keep()
    for _ in range(10_000):
        if environment.step(keep)[3]:
            environment.reset()
    stepped = time.perf_counter()
    return {
        "rows": plant.data.n_rows,
        "load+fit s": fitted - start,
        "env build s": built - fitted,
        "10k steps s": stepped - built,
        "model": plant.model.family,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    baseline = timed_build(env.DEFAULT_SPEC_PATH)
    baseline_rss = peak_rss_mb()
    folder = Path(tempfile.mkdtemp())
    try:
        start = time.perf_counter()
        spec = make_large_dataset(folder, args.rows)
        written = time.perf_counter() - start
        size_mb = (folder / "large.csv").stat().st_size / 1e6
        large = timed_build(spec)
        plain_read, plain_as = timed_read(spec)
        eu_read, eu_as = timed_read(folder / "large_eu.yaml")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"wrote {args.rows:,} rows ({size_mb:.0f} MB) in {written:.1f} s")
    print(f"{'':<14} {'rows':>10} {'load+fit s':>11} {'env build s':>12} {'10k steps s':>12} model")
    for name, r in (("sample (base)", baseline), ("large", large)):
        print(
            f"{name:<14} {r['rows']:>10,} {r['load+fit s']:>11.2f} {r['env build s']:>12.3f} "
            f"{r['10k steps s']:>12.3f} {r['model']}"
        )
    print(
        f"load+fit ratio large/sample: {large['load+fit s'] / baseline['load+fit s']:.1f}x; "
        f"peak RSS {peak_rss_mb():.0f} MB (after the sample alone: {baseline_rss:.0f} MB)"
    )
    print(
        f"read + validate: plain CSV (base; {plain_as}) {plain_read:.2f} s; European export "
        f"({eu_as}) {eu_read:.2f} s: ratio {eu_read / plain_read:.2f}"
    )


if __name__ == "__main__":
    main()
