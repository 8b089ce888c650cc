"""Benchmark: advice over HTTP (``rllib-project serve``) and from a CSV file.

How to run::

    .venv/bin/python scripts/bench_serve.py [POLICY] [--requests 2000] [--rows 100000]
        [--ingress proxy haproxy] [--replicas 1] [--no-batch-file]

POLICY is an export folder, a checkpoint, an experiment folder or ``best`` (default:
the newest experiment under ``results/``); anything but an export is exported into a
temporary folder first. Then:

1. **Baseline, in this process**: ``load_policy(...).recommend(reading)`` called one
   reading after another (no HTTP, no batching): readings per second.
2. **Served**: starts ``rllib-project serve`` as a subprocess on a free port of
   127.0.0.1 (its own Ray instance), waits for ``/health``, then sends ``--requests``
   ``POST /recommend`` requests from 1, 8 and 32 concurrent clients (aiohttp, one
   connection per client) and prints requests/s, p50 and p99 latency, and the
   throughput as a ratio to the baseline. The server is stopped with SIGINT. Once
   per ``--ingress`` mode: Serve's proxy (the default) and Ray's HAProxy ingress
   (see :mod:`rllib_project.ingress`), with ``--replicas`` replicas.
   **Floor**, right after each served run: ``scripts/serve_floor.py``, the same Serve
   set-up (ingress, replicas, settings, client, bodies) whose handler reads nothing
   and answers a constant; its figures and ours as ratios (requests/s ours / floor,
   p99 ours / floor). Where the floor misses a target, Serve on this machine does.
3. **Batch file**: writes ``--rows`` readings (the sample rows with noise) to a CSV and
   runs the code behind ``recommend --csv --out`` on it, without and with predicted
   paths: readings per second.

Every reading is a row of the policy's own data with its temperature shifted by up to
+/-15 degrees, so most need moves and a predicted path, as in operation.

Targets (2 cores): p99 <= 50 ms at 32 clients and >= 300 requests/s; batch file
>= 10,000 readings/s without paths and >= 1,000/s with them. The clients run on the
same two cores as the server, so the served figures include the cost of the load
generator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rllib_project.ingress import INGRESS_KINDS

REPO = Path(__file__).resolve().parent.parent
CONCURRENCY = (1, 8, 32)
WARMUP_REQUESTS = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def export_folder(source: str) -> Iterator[Path]:
    """The policy as an export folder (exported to a temporary folder if needed)."""
    from rllib_project.advisors import is_export

    if is_export(source):
        yield Path(source)
        return
    from rllib_project.checkpoints import POLICY_METADATA, load_best_policy
    from rllib_project.export import export_checkpoint

    path = Path(source)
    checkpoint = path if (path / POLICY_METADATA).exists() else load_best_policy(source).source
    folder = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        print(f"exporting {checkpoint} ...", flush=True)
        yield export_checkpoint(checkpoint, folder / "export")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def readings(policy, count: int, seed: int = 0) -> list[dict[str, float]]:
    """Readings near the data: sample rows (from the support's kept rows) with noise."""
    support, spec = policy.support, policy.plant.spec
    rng = np.random.default_rng(seed)
    rows = support.rows[rng.integers(0, len(support.rows), count)] * support.scale + support.center
    low, high = policy.plant.band
    temps = rng.uniform(low - 15.0, high + 15.0, count)
    names = spec.control_names
    return [
        {spec.state: float(t), **dict(zip(names, map(float, r), strict=True))}
        for t, r in zip(temps, rows, strict=True)
    ]


def baseline_rate(policy, sample: list[dict[str, float]]) -> float:
    """In-process ``recommend`` calls per second (one reading at a time)."""
    for reading in sample[:50]:
        policy.recommend(reading)
    start = time.perf_counter()
    for reading in sample:
        policy.recommend(reading)
    return len(sample) / (time.perf_counter() - start)


def server_command(export: Path | None) -> list[str]:
    """``rllib-project serve EXPORT``, or the floor (``None``: ``serve_floor.py``)."""
    if export is None:
        return [sys.executable, str(REPO / "scripts" / "serve_floor.py")]
    return [sys.executable, "-m", "rllib_project", "serve", str(export)]


@contextlib.contextmanager
def running_server(command: list[str], port: int, ingress: str, replicas: int) -> Iterator[str]:
    """A server command in a subprocess with its own Ray temp dir; stopped after."""
    temp_dir = tempfile.mkdtemp(prefix="rtb", dir="/tmp")
    env = dict(os.environ, RAY_TMPDIR=temp_dir, RAY_AUTH_MODE="token")
    env.pop("RAY_ADDRESS", None)
    log = open(Path(temp_dir) / "serve.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [*command, "--port", str(port), "--ingress", ingress, "--replicas", str(replicas)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process, Path(temp_dir) / "serve.log")
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def wait_for_health(url: str, process: subprocess.Popen, log: Path) -> None:
    import urllib.request

    print("starting the server ...", flush=True)
    while process.poll() is None:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/health", timeout=5) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")


async def load(url: str, bodies: list[bytes], clients: int) -> tuple[float, np.ndarray]:
    """Send every body once from ``clients`` concurrent clients; wall time, latencies."""
    import aiohttp

    latencies = np.empty(len(bodies))
    queue = iter(range(len(bodies)))
    headers = {"Content-Type": "application/json"}

    async def client(session: aiohttp.ClientSession) -> None:
        for i in queue:
            start = time.perf_counter()
            async with session.post(f"{url}/recommend", data=bodies[i], headers=headers) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}: {await r.text()}")
            latencies[i] = time.perf_counter() - start

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return time.perf_counter() - start, latencies


def measure_server(
    command: list[str], bodies: list[bytes], ingress: str, replicas: int
) -> dict[int, tuple[float, float, float]]:
    """Per client count: requests/s, p50 and p99 latency (ms) of one server."""
    figures = {}
    with running_server(command, free_port(), ingress, replicas) as url:
        asyncio.run(load(url, bodies[:WARMUP_REQUESTS], 8))
        print(f"  measuring (load average {os.getloadavg()[0]:.2f}) ...", flush=True)
        for clients in CONCURRENCY:
            wall, latencies = asyncio.run(load(url, bodies, clients))
            p50, p99 = np.percentile(latencies, [50, 99]) * 1e3
            figures[clients] = (len(bodies) / wall, p50, p99)
    return figures


def bench_served(
    export: Path, sample: list[dict[str, float]], baseline: float, ingress: str, replicas: int
) -> None:
    """Our service, then the floor (the same set-up answering a constant), same bodies."""
    bodies = [json.dumps(r).encode() for r in sample]
    ours = measure_server(server_command(export), bodies, ingress, replicas)
    floor = measure_server(server_command(None), bodies, ingress, replicas)
    print(
        f"\nserved ({ingress} ingress, {replicas} replica(s)): {len(bodies)} POST /recommend "
        "per row, over HTTP on 127.0.0.1; floor: serve_floor.py, a constant answer"
    )
    print(
        f"{'clients':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs baseline':>12}"
        f" | {'floor req/s':>11} {'p50 ms':>8} {'p99 ms':>8} | {'req/s ratio':>11} {'p99 ratio':>9}"
    )
    for clients in CONCURRENCY:
        (rate, p50, p99), (floor_rate, floor_p50, floor_p99) = ours[clients], floor[clients]
        print(
            f"{clients:>8} {rate:>8.0f} {p50:>8.1f} {p99:>8.1f} {rate / baseline:>11.2f}x"
            f" | {floor_rate:>11.0f} {floor_p50:>8.1f} {floor_p99:>8.1f}"
            f" | {rate / floor_rate:>11.2f} {p99 / floor_p99:>9.2f}"
        )


def write_readings_csv(path: Path, sample: list[dict[str, float]], rows: int) -> None:
    names = list(sample[0])
    table = np.array([[r[n] for n in names] for r in sample])
    repeats = table[np.arange(rows) % len(table)]
    with path.open("w") as handle:
        handle.write(",".join(names) + "\n")
        np.savetxt(handle, repeats, delimiter=",", fmt="%.6g")


def bench_batch(policy, sample: list[dict[str, float]], rows: int, baseline: float) -> None:
    import torch

    from rllib_project.batch_advice import advise_csv

    torch.set_num_threads(1)  # as ``recommend --csv`` does
    folder = Path(tempfile.mkdtemp(prefix="bench-csv-"))
    try:
        source = folder / "readings.csv"
        write_readings_csv(source, sample, rows)
        print(f"\nbatch file: {rows:,} readings (recommend --csv --out)")
        for with_path in (False, True):
            summary = advise_csv(policy.advisor, source, folder / "advice.csv", with_path=with_path)
            rate = summary.rows / summary.seconds
            label = "with paths" if with_path else "without paths (--no-path)"
            print(f"  {label:<27} {rate:>9,.0f} readings/s  ({rate / baseline:.1f}x baseline)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", nargs="?", default="best", help="export, checkpoint, experiment")
    parser.add_argument("--requests", type=int, default=2000, help="requests per client count")
    parser.add_argument("--rows", type=int, default=100_000, help="readings in the batch file")
    parser.add_argument(
        "--ingress",
        nargs="+",
        default=list(INGRESS_KINDS),
        choices=INGRESS_KINDS,
        help="serve --ingress modes to measure",
    )
    parser.add_argument("--replicas", type=int, default=1, help="serve --replicas")
    parser.add_argument("--no-batch-file", action="store_true", help="skip the batch file")
    args = parser.parse_args()

    from rllib_project.tuning import prepare_ray_environment

    prepare_ray_environment(None)
    from rllib_project.policy import load_policy

    with export_folder(args.policy) as export:
        policy = load_policy(export)
        sample = readings(policy, args.requests)
        import torch

        torch.set_num_threads(1)
        baseline = baseline_rate(policy, sample[: min(len(sample), 1000)])
        print(f"policy: {policy.name} ({policy.action_mode}) from {export}")
        print(f"baseline: in-process recommend(), one reading at a time: {baseline:,.0f}/s")
        for ingress in args.ingress:
            bench_served(export, sample, baseline, ingress, args.replicas)
        if not args.no_batch_file:
            bench_batch(policy, sample, args.rows, baseline)


if __name__ == "__main__":
    main()
