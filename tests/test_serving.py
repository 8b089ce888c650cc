"""``rllib-project serve``: a real server (Ray Serve) on 127.0.0.1, real HTTP requests.

One server is started for the module, from the export of a real (tiny) Tune run's PPO
checkpoint, with a bearer token; the last test stops it with Ctrl-C (SIGINT) and checks
that everything it started is gone.
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import env
from env.support import OUTSIDE_WARNING
from tests.conftest import REPO
from tests.experiments import best_by_algorithm
from tests.ray_cluster import find_processes, free_port, private_ray_tmpdir
from tests.test_advice import assert_same_advice
from tests.test_fit_cli import run_cli

pytestmark = pytest.mark.slow

STARTUP_LIMIT_S = 600.0
"""Only a guard against a hung start: the tests wait for /health, not for a time."""


@dataclass
class Server:
    url: str
    token: str
    process: subprocess.Popen
    log: Path
    temp_dir: str

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = "default"
    ) -> tuple[int, Any]:
        """(status, parsed JSON body); ``body`` bytes are sent as they are."""
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        token = self.token if token == "default" else token
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def export(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    checkpoint = best_by_algorithm(tiny_run)["PPO"]["checkpoint"]
    folder = tmp_path_factory.mktemp("served") / "ppo"
    result = run_cli("export", checkpoint, folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def _wait_for_health(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while process.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"server not healthy (exit {process.poll()}):\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def server(export: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("server")
    token = secrets.token_hex(16)
    (folder / "token").write_text(token + "\n")
    port = free_port()
    log = folder / "serve.log"
    with private_ray_tmpdir() as environment, log.open("w") as handle:
        environment["RAY_AUTH_MODE"] = "token"
        command = [sys.executable, "-m", "rllib_project", "serve", str(export)]
        command += ["--port", str(port), "--token-file", str(folder / "token")]
        process = subprocess.Popen(
            command, cwd=REPO, env=environment, stdout=handle, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_for_health(url, process, log)
            yield Server(url, token, process, log, environment["RAY_TMPDIR"])
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=180)
                except subprocess.TimeoutExpired:
                    process.kill()


def _reading(plant: env.Plant, index: int, temperature: float | None = None) -> dict[str, float]:
    values = plant.rows.controls[index]
    state = float(plant.rows.state[index]) if temperature is None else temperature
    return {
        plant.spec.state: state,
        **dict(zip(plant.spec.control_names, values.tolist(), strict=True)),
    }


def _state_text(reading: dict[str, float]) -> str:
    return ",".join(f"{name}={value!r}" for name, value in reading.items())


def test_health_is_open_and_policy_describes_the_export(
    server: Server, sample_plant: env.Plant
) -> None:
    assert server.call("GET", "/health", token=None) == (
        200,
        {"status": "ok", "policy": "PPO (exported)"},
    )
    status, _ = server.call("GET", "/policy", token=None)
    assert status == 401
    status, info = server.call("GET", "/policy")
    assert status == 200
    assert info["algorithm"] == "PPO" and info["action_mode"] == "discrete"
    assert info["export_format"] == "plant-policy/2"
    assert info["dataset_sha256"] == sample_plant.rows.csv_sha256
    assert info["control_names"] == list(sample_plant.spec.control_names)
    assert info["band"] == list(sample_plant.band)
    assert info["support"]["threshold"] > 0
    # no lag: a reading's history is checked and changes nothing
    assert info["history"] == {
        "used": False,
        "dead_time": 0,
        "disturbance_observer": False,
        "limit": 500,
    }


def test_token_is_required_and_checked(server: Server, sample_plant: env.Plant) -> None:
    reading = _reading(sample_plant, 0)
    assert server.call("POST", "/recommend", reading, token=None) == (
        401,
        {"error": "authorization: bearer token required"},
    )
    assert server.call("POST", "/recommend", reading, token="not-the-token") == (
        401,
        {"error": "authorization: token not accepted"},
    )
    status, advice = server.call("POST", "/recommend", reading)
    assert status == 200 and advice["temperature"] == reading[sample_plant.spec.state]


def test_served_advice_equals_recommend_json(
    server: Server, export: Path, sample_plant: env.Plant
) -> None:
    """The same reading, through HTTP and through ``recommend --json``: the same advice.
    (Requests one after another: each is advised alone, as the command line does.)"""
    plant = sample_plant
    readings = [
        _reading(plant, int(plant.start_indices[0]), plant.band_mid),
        _reading(plant, int(plant.start_indices[1]), plant.band[0] - 7.0),
        {**_reading(plant, 2, plant.band[1] + 6.0), plant.spec.control_names[0]: 1e3},
    ]
    for reading in readings:
        status, served = server.call("POST", "/recommend", reading)
        assert status == 200, served
        cli = run_cli("recommend", "--policy", export, "--state", _state_text(reading), "--json")
        assert cli.returncode == 0, cli.stderr[-2000:]
        assert served == json.loads(cli.stdout)
    status, batch = server.call("POST", "/recommend/batch", readings)
    assert status == 200 and len(batch) == len(readings)
    for reading, advice in zip(readings, batch, strict=True):
        assert_same_advice(server.call("POST", "/recommend", reading)[1], advice)
    # on a plant without lag a reading's history changes nothing
    with_history = {**readings[1], "history": [readings[0], readings[2]]}
    alone = server.call("POST", "/recommend", readings[1])
    assert server.call("POST", "/recommend", with_history) == alone


def test_outside_the_data_warns_and_a_data_row_does_not(
    server: Server, export: Path, sample_plant: env.Plant
) -> None:
    plant = sample_plant
    status, inside = server.call("POST", "/recommend", _reading(plant, 10))
    assert status == 200
    assert inside["support"]["inside"] and inside["warning"] is None
    assert inside["support"]["nearest_row"] == int(plant.rows.row_numbers[10])
    far = {plant.spec.state: plant.band[0] - 5.0}
    far.update(zip(plant.spec.control_names, (plant.upper + plant.lower / 2).tolist(), strict=True))
    status, outside = server.call("POST", "/recommend", far)
    assert status == 200 and not outside["support"]["inside"]
    assert outside["warning"].startswith(OUTSIDE_WARNING)
    assert outside["support"]["distance"] > outside["support"]["threshold"]
    assert outside["controls"]  # still advised
    text = run_cli("recommend", "--policy", export, "--state", _state_text(far))
    assert text.returncode == 0 and f"WARNING: {OUTSIDE_WARNING}" in text.stdout


def _good(plant: env.Plant) -> dict[str, float]:
    return _reading(plant, 0)


BAD_REQUESTS = [
    ("/recommend", b'{"temperature": 950', 400, "request body: not valid JSON"),
    ("/recommend", b"", 400, "request body: empty"),
    ("/recommend", b"\xc3\x28", 400, "request body: not UTF-8"),
    ("/recommend", b"[1, 2]", 422, "request body: expected a JSON object"),
    ("/recommend", {"pressure": 1.0}, 422, "pressure: unknown name"),
    ("/recommend", {"drop": "coolant_flow"}, 422, "coolant_flow: missing"),
    ("/recommend", {"fuel_rate": "11.6"}, 422, "fuel_rate: expected a number, got a string"),
    ("/recommend", {"fuel_rate": True}, 422, "fuel_rate: expected a number, got true"),
    ("/recommend", {"feed_rate": None}, 422, "feed_rate: expected a number, got null"),
    ("/recommend", {"feed_rate": "NaN"}, 422, "feed_rate: must be finite"),
    ("/recommend", {"temperature": "1e999"}, 422, "temperature: must be finite"),
    ("/recommend", {"history": 5}, 422, "history: expected a JSON list of earlier readings"),
    ("/recommend", {"history": [{"temperature": 1.0}]}, 422, "history[0].fuel_rate: missing"),
    ("/recommend/batch", b"[]", 422, "readings: empty list"),
    ("/recommend/batch", {"batch": 1001}, 413, "readings: 1001 readings exceed the limit"),
    ("/recommend/batch", {"second": "x"}, 422, "readings[1].temperature: expected a number"),
    ("/recommend/batch", b'{"a": 1}', 422, "request body: expected a JSON list"),
]


def _bad_body(plant: env.Plant, spec: Any) -> bytes:
    """The request body for one of BAD_REQUESTS' shorthand entries."""
    if isinstance(spec, bytes):
        return spec
    good = _good(plant)
    if "drop" in spec:
        del good[spec["drop"]]
    elif "batch" in spec:
        return json.dumps([good] * spec["batch"]).encode()
    elif "second" in spec:
        return json.dumps([good, {**good, plant.spec.state: spec["second"]}]).encode()
    else:
        name, value = next(iter(spec.items()))
        if isinstance(value, str) and value in ("NaN", "1e999"):  # raw JSON literals
            text = json.dumps({**good, name: 0.0}).replace(": 0.0", f": {value}")
            return text.encode()
        good[name] = value
    return json.dumps(good).encode()


@pytest.mark.parametrize(("path", "body", "status", "message"), BAD_REQUESTS)
def test_bad_requests_get_a_4xx_naming_the_field_and_the_server_keeps_answering(
    server: Server, sample_plant: env.Plant, path: str, body: Any, status: int, message: str
) -> None:
    got_status, answer = server.call("POST", path, _bad_body(sample_plant, body))
    assert got_status == status, answer
    assert answer["error"].startswith(message), answer
    assert "\n" not in answer["error"]
    good_status, _ = server.call("POST", "/recommend", _good(sample_plant))
    assert good_status == 200


def test_recommend_csv_with_the_export_matches_the_server(
    server: Server, export: Path, sample_plant: env.Plant, tmp_path: Path
) -> None:
    plant = sample_plant
    names = [plant.spec.state, *plant.spec.control_names]
    lines = [",".join(names)]
    lines += [",".join(repr(float(v)) for v in _reading(plant, i).values()) for i in range(20)]
    lines.insert(5, "950,abc,1.1,80,40")
    (tmp_path / "readings.csv").write_text("\n".join(lines) + "\n")
    result = run_cli(
        "recommend",
        "--policy",
        export,
        "--csv",
        tmp_path / "readings.csv",
        "--out",
        tmp_path / "advice.csv",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "21 reading(s) advised" in result.stdout and "1 with errors" in result.stdout
    import csv

    rows = list(csv.DictReader((tmp_path / "advice.csv").open()))
    assert len(rows) == 21
    assert rows[4]["error"] == "fuel_rate: 'abc' is not a number"
    status, served = server.call("POST", "/recommend", _reading(plant, 7))
    assert status == 200
    row = rows[8]  # data row 7 of the sample moved down by the inserted bad line
    for control in served["controls"]:
        assert row[f"{control['name']}_direction"] == control["direction"]
        assert float(row[f"{control['name']}_new"]) == control["new"]
    path = [float(t) for t in row["predicted_path"].split(";")]
    assert path == [p["temperature"] for p in served["path"]]


def test_serve_refuses_bad_arguments_in_one_line(export: Path, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = run_cli("serve", export, "--port", port)
    assert taken.returncode == 2 and "cannot listen on 127.0.0.1" in taken.stderr
    no_token = run_cli("serve", export, "--token-file", tmp_path / "missing")
    assert no_token.returncode == 2 and "token file not found" in no_token.stderr
    no_export = run_cli("serve", tmp_path / "nothing-here")
    assert no_export.returncode == 2
    for result in (taken, no_token, no_export):
        assert result.stderr.strip().count("\n") == 0, result.stderr


def test_serving_a_checkpoint_exports_it_to_a_temporary_folder(tiny_run: Path) -> None:
    from rllib_project.cli import _served_export
    from rllib_project.policy import load_policy

    checkpoint = best_by_algorithm(tiny_run)["DQN"]["checkpoint"]
    with _served_export(checkpoint, None) as folder:
        assert load_policy(folder).algorithm == "DQN"
        assert folder.parent.name.startswith("plant-policy-export-")
    assert not folder.parent.exists()


def test_ctrl_c_stops_the_server_and_everything_it_started(server: Server) -> None:
    """Runs last in this module: SIGINT ends the command with exit 0 and leaves no Ray
    process of its own behind (found by its private temp dir)."""
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(timeout=180) == 0, server.log.read_text()[-3000:]
    assert "\nstopped\n" in server.log.read_text()
    deadline = time.monotonic() + 120
    while find_processes(set(), (server.temp_dir,)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert find_processes(set(), (server.temp_dir,)) == []
