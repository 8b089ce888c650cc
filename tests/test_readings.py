"""Request checks of the advice service, without a server: every bad request has its
status and a one-line message naming the field; the ingress settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import env
from env.errors import InputError
from rllib_project.ingress import haproxy_environment, prepare_ingress
from rllib_project.readings import (
    BATCH_LIMIT,
    HISTORY_LIMIT,
    RequestError,
    parse_batch,
    parse_reading,
)
from tests.datasets import write_dataset


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> env.DatasetSpec:
    """Names unlike the sample's: nothing may assume them."""
    folder = tmp_path_factory.mktemp("odd")
    names = ["Zone 1 fuel [t/h]", "damper_%", "steam.flow"]
    return env.load_plant(write_dataset(folder, 3, names=names, state="T-exit")).spec


def _good(spec: env.DatasetSpec) -> dict[str, float]:
    return {spec.state: 500.5, **{name: float(i) for i, name in enumerate(spec.control_names)}}


def test_a_good_reading_in_spec_order(spec: env.DatasetSpec) -> None:
    reading = dict(reversed(list(_good(spec).items())))  # order in the JSON does not matter
    reading[spec.control_names[1]] = 7  # integers are numbers
    parsed = parse_reading(json.dumps(reading).encode(), spec)
    assert parsed.temperature == 500.5 and parsed.history is None
    np.testing.assert_array_equal(parsed.controls, [0.0, 7.0, 2.0])


def _error(body: bytes, spec: env.DatasetSpec, batch: bool = False) -> RequestError:
    with pytest.raises(RequestError) as caught:
        (parse_batch if batch else parse_reading)(body, spec)
    assert "\n" not in caught.value.message
    return caught.value


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"extra": 1.0}, 422, "extra: unknown name (expected T-exit, Zone 1 fuel [t/h]"),
        ({"damper_%": "3"}, 422, "damper_%: expected a number, got a string"),
        ({"damper_%": False}, 422, "damper_%: expected a number, got false"),
        ({"damper_%": [1]}, 422, "damper_%: expected a number, got a list"),
        ({"damper_%": {"v": 1}}, 422, "damper_%: expected a number, got an object"),
        ({"T-exit": 10**400}, 422, "T-exit: must be finite, got a number beyond float range"),
        ({"T-exit": float("inf")}, 422, "T-exit: must be finite, got inf"),
        ({"T-exit": float("nan")}, 422, "T-exit: must be finite, got nan"),
    ],
)
def test_bad_values_name_their_field(
    spec: env.DatasetSpec, change: dict, status: int, message: str
) -> None:
    reading = {**_good(spec), **change}
    error = _error(json.dumps(reading).encode(), spec)
    assert error.status == status and error.message.startswith(message), error.message


def test_missing_and_malformed_bodies(spec: env.DatasetSpec) -> None:
    reading = _good(spec)
    del reading["steam.flow"]
    assert _error(json.dumps(reading).encode(), spec).message == "steam.flow: missing"
    for body, start in [
        (b"", "request body: empty"),
        (b"  \n", "request body: empty"),
        (b'{"T-exit": 1', "request body: not valid JSON"),
        (b"\xc3\x28", "request body: not UTF-8"),
        (b"1" * 5000, "request body: not usable JSON"),
        (b"[" * 100_000, "request body:"),
        (b'"text"', "request body: expected a JSON object {name: value}, got a string"),
        (b"null", "request body: expected a JSON object {name: value}, got null"),
    ]:
        error = _error(body, spec)
        assert error.status in (400, 422) and error.message.startswith(start), error.message


def test_batches(spec: env.DatasetSpec) -> None:
    good = _good(spec)
    batch = parse_batch(json.dumps([good, good]).encode(), spec)
    assert batch.temperatures.shape == (2,) and batch.controls.shape == (2, 3)
    assert batch.histories == [None, None]
    assert _error(b"[]", spec, batch=True).message == "readings: empty list"
    too_many = json.dumps([good] * (BATCH_LIMIT + 1)).encode()
    error = _error(too_many, spec, batch=True)
    assert error.status == 413 and str(BATCH_LIMIT) in error.message
    second_bad = json.dumps([good, {**good, "damper_%": None}]).encode()
    assert _error(second_bad, spec, batch=True).message.startswith(
        "readings[1].damper_%: expected a number, got null"
    )
    assert _error(b"[1]", spec, batch=True).message.startswith("readings[0]: expected a JSON")
    assert _error(json.dumps(good).encode(), spec, batch=True).message.startswith(
        "request body: expected a JSON list"
    )


def test_haproxy_ingress_gets_private_files_and_distinct_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = haproxy_environment(tmp_path)
    ports = [v for k, v in settings.items() if k.endswith("_PORT")]
    assert len(ports) == 4 and len(set(ports)) == 4
    paths = [v for k, v in settings.items() if k.endswith(("_LOC", "_PATH", "_FILE", "_BASE"))]
    assert paths and all(Path(p).is_relative_to(tmp_path) for p in paths)
    for name in [*settings, "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD"]:
        monkeypatch.setenv(name, "")  # recorded, so that the test leaves no trace
        monkeypatch.delenv(name)
    prepare_ingress("proxy", None, tmp_path)
    assert "RAY_SERVE_ENABLE_HA_PROXY" not in os.environ
    with pytest.raises(InputError, match="on a cluster set RAY_SERVE_ENABLE_HA_PROXY"):
        prepare_ingress("haproxy", "127.0.0.1:6379", tmp_path)
    with pytest.raises(InputError, match="must be one of proxy, haproxy"):
        prepare_ingress("nginx", None, tmp_path)
    prepare_ingress("haproxy", None, tmp_path)
    assert os.environ["RAY_SERVE_ENABLE_HA_PROXY"] == "1"


def test_a_reading_may_carry_its_history(spec: env.DatasetSpec) -> None:
    """``history``: earlier readings of the same names, oldest first, checked like the
    reading itself; the errors name the entry."""
    good = _good(spec)
    earlier = [{**good, spec.state: 490.0}, {**good, spec.state: 495.0}]
    parsed = parse_reading(json.dumps({**good, "history": earlier}).encode(), spec)
    assert parsed.temperature == 500.5
    assert parsed.history is not None and parsed.history.shape == (2, 4)
    np.testing.assert_array_equal(parsed.history[:, 0], [490.0, 495.0])
    empty = parse_reading(json.dumps({**good, "history": []}).encode(), spec)
    assert empty.history is None
    batch = parse_batch(json.dumps([good, {**good, "history": earlier}]).encode(), spec)
    assert batch.histories[0] is None and batch.histories[1] is not None

    not_a_list = json.dumps({**good, "history": good}).encode()
    assert _error(not_a_list, spec).message == (
        "history: expected a JSON list of earlier readings, oldest first, got an object"
    )
    bad_entry = json.dumps({**good, "history": [good, {**good, "damper_%": "x"}]}).encode()
    assert _error(bad_entry, spec).message == "history[1].damper_%: expected a number, got a string"
    nested = json.dumps({**good, "history": [{**good, "history": []}]}).encode()
    assert _error(nested, spec).message.startswith("history[0].history: unknown name")
    too_long = json.dumps({**good, "history": [good] * (HISTORY_LIMIT + 1)}).encode()
    error = _error(too_long, spec)
    assert error.status == 413 and error.message.startswith("history: ")
    in_batch = json.dumps([good, {**good, "history": [{**good, spec.state: None}]}]).encode()
    assert _error(in_batch, spec, batch=True).message == (
        f"readings[1].history[0].{spec.state}: expected a number, got null"
    )
