"""Generate the bundled sample dataset from a documented synthetic plant.

How to run (from the repository root)::

    .venv/bin/python data/make_sample_data.py            # rewrites data/sample_plant.csv
    .venv/bin/python data/make_sample_data.py --rows 1000000 --out /tmp/big.csv

The plant is *synthetic*: a furnace whose outlet temperature (degC) responds to four
controls. In normalised units ``z = (u - centre) / width`` the true steady state is::

    T = 953 + 16 tanh(0.8 z_fuel)              # fuel heats, saturating at high rates
            - 4 (z_air - 0.4)^2                # too little or too much air cools
            - 5 z_feed + 1.5 z_feed z_fuel     # cold feed cools, less so when firing hard
            - 3.5 z_coolant                    # coolant cools roughly linearly
            + N(0, 1.2^2)                      # sensor and process noise

Operating points are drawn around the normal regime (correlated fuel and feed, as an
operator firing harder when throughput rises) so that roughly a fifth of the rows sit in
the optimal band 952-958 and the rest are spread above and below it. The generator is
seeded, so the committed CSV can be reproduced byte for byte.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

CONTROLS = {
    # name: (centre, width, decimals)
    "fuel_rate": (12.0, 2.0, 3),
    "air_fuel_ratio": (1.15, 0.05, 4),
    "feed_rate": (80.0, 8.0, 2),
    "coolant_flow": (40.0, 5.0, 2),
}
NOISE_STD = 1.2


def true_temperature(z: np.ndarray) -> np.ndarray:
    """Noise-free steady-state temperature for normalised controls ``z`` (n, 4)."""
    fuel, air, feed, coolant = z.T
    return (
        953.0
        + 16.0 * np.tanh(0.8 * fuel)
        - 4.0 * (air - 0.4) ** 2
        - 5.0 * feed
        + 1.5 * feed * fuel
        - 3.5 * coolant
    )


def generate(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    covariance = np.array(
        [
            [1.0, 0.1, 0.5, 0.0],
            [0.1, 1.0, 0.0, 0.0],
            [0.5, 0.0, 1.0, 0.2],
            [0.0, 0.0, 0.2, 1.0],
        ]
    )
    z = rng.multivariate_normal(np.zeros(4), 0.7 * covariance, size=rows)
    z = np.clip(z, -2.2, 2.2)
    temperature = true_temperature(z) + rng.normal(0.0, NOISE_STD, size=rows)
    frame = pd.DataFrame({"temperature": np.round(temperature, 2)})
    for i, (name, (centre, width, decimals)) in enumerate(CONTROLS.items()):
        frame[name] = np.round(centre + width * z[:, i], decimals)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("sample_plant.csv"))
    args = parser.parse_args()
    frame = generate(args.rows, args.seed)
    frame.to_csv(args.out, index=False)
    in_band = frame["temperature"].between(952, 958).mean()
    print(f"wrote {len(frame)} rows to {args.out} ({in_band:.0%} in band 952-958)")


if __name__ == "__main__":
    main()
