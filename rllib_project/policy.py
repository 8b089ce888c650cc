"""Exported policies: a trained policy that runs where Ray is not installed.

An export folder (written by ``rllib-project export``) holds only data, never code:

* ``weights.npz``: the policy network's weight arrays, read with
  ``numpy.load(allow_pickle=False)``: nothing is unpickled;
* ``policy.json``: the layer sequence, how the network's output becomes an action,
  the action mapping (mode, steps, dead-band), the observation normalisation (band,
  bounds, scale), the control names and the dataset's sha256;
* ``process_model.json``: the fitted process model (for predicted paths);
* ``support.npz``: the training rows' standardised controls (at most a few thousand,
  a seeded subset) and the calibrated distance threshold, so that advice can say when
  a reading lies outside the data (see :mod:`env.support`);
* ``checksums.json``: sha256 of the four files above.

:func:`load_policy` checks every file against ``checksums.json`` before reading it and
refuses a folder whose weights or metadata were changed. (A checksum detects changes
to the files, not an attacker who also rewrites ``checksums.json``: keep exports where
only trusted people can write.) This module needs numpy and torch, never Ray::

    from rllib_project.policy import load_policy

    policy = load_policy("exported/ppo")
    advice = policy.recommend({"temperature": 947.1, "fuel_rate": 11.6, ...})
    for control in advice.controls:
        print(control.name, control.direction, control.amount, control.new)
    print(advice.support.inside, advice.warning)

Plants with inertia (a lag and dead time identified from a time-ordered log, or a
hand-set lag) have a longer observation: the settling temperature and the settings in
flight (:meth:`env.plant.Plant.observe`). ``policy.json`` records the observation's
layout and dynamics, and loading checks that the plant rebuilt from the export builds
exactly that observation and that the network takes it: a policy trained with the lag
never runs without it. To :meth:`ExportedPolicy.recommend` on a plant with a dead time,
pass the settings in flight (``pending``), or nothing in flight is assumed.

Format history: ``plant-policy/1`` had no ``support.npz``; such folders are refused
with a request to export again (the checkpoint is unchanged, only the export is new).
``plant-policy/3`` was written for lagging plants (``/2`` otherwise, unchanged), so that
a version of this code that does not know the longer observation refuses the export
instead of dropping the lag. ``plant-policy/4`` (lagging plants) adds the disturbance
observer's ratio (``env.observer_ratio``) to the settings, so that a version without
the observer refuses it by its format rather than by an unknown key; a ``/3`` export
still loads and advises without an observer, as it did when it was written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from env.actions import ActionCodec
from env.errors import InputError
from env.model import PROCESS_MODEL_FILE, ProcessModel
from env.plant import Plant
from env.spec import DatasetSpec, EnvSettings
from env.support import DataSupport
from env.typed_config import build_dataclass
from rllib_project.recommendation import Advisor, Recommendation, state_from_mapping

EXPORT_FORMAT = "plant-policy/2"
LAGGING_EXPORT_FORMAT = "plant-policy/4"
"""Exports of lagging plants (their observation is longer and they record the
observer's ratio, see the module docstring)."""
READABLE_FORMATS = (EXPORT_FORMAT, "plant-policy/3", LAGGING_EXPORT_FORMAT)
OBSERVATION_KEY = "observation"
POLICY_FILE = "policy.json"
WEIGHTS_FILE = "weights.npz"
SUPPORT_FILE = "support.npz"
CHECKSUM_FILE = "checksums.json"
HASHED_FILES = (POLICY_FILE, WEIGHTS_FILE, PROCESS_MODEL_FILE, SUPPORT_FILE)
ACTIVATIONS = ("tanh", "relu", "silu", "elu", "sigmoid", "layernorm")
OUTPUT_KINDS = (
    "categorical",
    "multi_categorical",
    "gaussian",
    "squashed_gaussian",
    "q_dueling",
    "q_branching",
)


def export_format(plant: Plant) -> str:
    """The format an export of ``plant`` is written in."""
    return LAGGING_EXPORT_FORMAT if plant.lagging else EXPORT_FORMAT


def observation_layout(plant: Plant) -> dict[str, Any]:
    """What ``policy.json`` records about the observation (checked when loading)."""
    return {
        "size": plant.observation_size,
        "rate": plant.rate,
        "dead_time": plant.dead_time,
        "in_flight_entries": plant.in_flight_features,
    }


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_checksums(folder: Path) -> None:
    """Refuse an export whose files differ from what ``checksums.json`` records."""
    listing = folder / CHECKSUM_FILE
    if not listing.exists():
        raise InputError(folder, f"not an exported policy ({CHECKSUM_FILE} missing)")
    try:
        recorded = json.loads(listing.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(listing, f"unreadable ({exc})") from exc
    if not isinstance(recorded, dict):
        raise InputError(listing, "must map file names to their sha256")
    for name in HASHED_FILES:
        path = folder / name
        if not path.exists():
            raise InputError(folder, f"{name} is missing")
        if recorded.get(name) != sha256_file(path):
            raise InputError(path, "sha256 differs from checksums.json: the export was modified")


class PolicyNetwork:
    """The policy MLP rebuilt in torch from plain arrays, plus its output decoding."""

    def __init__(
        self,
        layers: list[dict[str, Any]],
        weights: Mapping[str, np.ndarray],
        output: dict[str, Any],
    ) -> None:
        import torch

        self.torch = torch
        self.layers: list[tuple[Any, ...]] = []
        for layer in layers:
            kind = layer["type"]
            if kind == "linear":
                self.layers.append(
                    (
                        "linear",
                        torch.from_numpy(weights[layer["weight"]]),
                        torch.from_numpy(weights[layer["bias"]]),
                    )
                )
            elif kind == "layernorm":
                self.layers.append(
                    (
                        "layernorm",
                        torch.from_numpy(weights[layer["weight"]]),
                        torch.from_numpy(weights[layer["bias"]]),
                        float(layer["eps"]),
                    )
                )
            elif kind in ACTIVATIONS:
                self.layers.append((kind,))
            else:
                raise ValueError(f"unsupported layer type {kind!r}")
        if output["kind"] not in OUTPUT_KINDS:
            raise ValueError(f"unsupported output kind {output['kind']!r}")
        self.output = output

    def forward(self, obs: np.ndarray) -> Any:
        functional = self.torch.nn.functional
        x = self.torch.as_tensor(np.asarray(obs, dtype=np.float32))
        with self.torch.no_grad():
            for layer in self.layers:
                kind = layer[0]
                if kind == "linear":
                    x = functional.linear(x, layer[1], layer[2])
                elif kind == "layernorm":
                    x = functional.layer_norm(x, (x.shape[-1],), layer[1], layer[2], layer[3])
                else:
                    x = getattr(functional, kind)(x) if kind != "tanh" else self.torch.tanh(x)
        return x

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions for a batch of observations."""
        out = self.forward(obs)
        kind = self.output["kind"]
        if kind in ("categorical", "q_dueling"):  # dueling: argmax Q = argmax advantage
            return out.argmax(dim=-1).numpy().astype(np.int64)
        if kind in ("multi_categorical", "q_branching"):
            # branching dueling Q: argmax of each control's Q = argmax of its advantages
            # in numpy on the whole output: torch's split and one argmax per control cost
            # more than the network itself on the server's small batches (same floats,
            # same first-maximum rule, so the same actions)
            sizes = self.output["sizes"]
            values = out.numpy()
            if len(set(sizes)) == 1:
                per_control = values.reshape(*values.shape[:-1], len(sizes), sizes[0])
                return per_control.argmax(axis=-1).astype(np.int64)
            parts = np.split(values, np.cumsum(sizes)[:-1], axis=-1)
            return np.stack([p.argmax(axis=-1) for p in parts], axis=-1).astype(np.int64)
        k = self.output["n_actions"]
        mean = out[..., :k]
        if kind == "squashed_gaussian":
            low, high = self.output["low"], self.output["high"]
            mean = low + (self.torch.tanh(mean) + 1.0) * (high - low) / 2.0
        return np.clip(mean.numpy(), -1.0, 1.0).astype(np.float32)


@dataclass
class ExportedPolicy:
    """A loaded export: network, plant (model + bounds + band) and action mapping."""

    name: str
    algorithm: str
    action_mode: str
    plant: Plant
    codec: ActionCodec
    network: PolicyNetwork
    support: DataSupport
    metadata: dict[str, Any]

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.network.act(obs)

    @property
    def advisor(self) -> Advisor:
        return Advisor(self.name, self.plant, self.codec, self.act, self.support)

    def recommend(
        self,
        state: Mapping[str, float],
        pending: np.ndarray | None = None,
        history: Sequence[Mapping[str, float]] | None = None,
    ) -> Recommendation:
        """What to do with each control, from ``{column name: value}`` of one reading
        (``pending``: with a dead time, the settings in flight, (dead_time, k), oldest
        first; default: nothing in flight). ``history``: the earlier readings, oldest
        first, one sample period apart, as mappings of the same names; on a lagging
        plant they give the settings in flight and the disturbance estimate instead
        (:meth:`rllib_project.recommendation.Advisor.advise_with_histories`)."""
        if history and pending is not None:
            raise ValueError("give pending or history, not both (a history gives the pending)")
        if history:
            temperature, controls = state_from_mapping(state, self.plant)
            earlier = [
                state_from_mapping(h, self.plant, f"history[{i}]") for i, h in enumerate(history)
            ]
            table = np.array([[t, *u] for t, u in earlier], dtype=np.float64)
            return self.advisor.advise_with_histories(
                np.array([temperature]), controls[None], [table]
            ).recommendation(0)
        if pending is None:
            return self.advisor.recommend_state(state)
        temperature, controls = state_from_mapping(state, self.plant)
        return self.advisor.advise(
            np.array([temperature]), controls[None], pending=np.asarray(pending)[None]
        ).recommendation(0)


def _read_policy_json(folder: Path) -> dict[str, Any]:
    path = folder / POLICY_FILE
    if not path.exists():
        raise InputError(folder, f"not an exported policy ({POLICY_FILE} missing)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"unreadable ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") not in READABLE_FORMATS:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise InputError(
            path,
            f"format {found!r} is not {' or '.join(READABLE_FORMATS)}: export the checkpoint again",
        )
    return meta


def _check_observation(folder: Path, meta: dict[str, Any], plant: Plant, network: Any) -> None:
    """The rebuilt plant must build the observation the policy was trained on."""
    recorded = meta.get(OBSERVATION_KEY)
    expected = observation_layout(plant)
    if recorded is not None and recorded != expected:
        raise InputError(
            folder / POLICY_FILE,
            f"the export's observation ({recorded}) differs from what its plant builds "
            f"({expected}): export the checkpoint again",
        )
    first = next((layer for layer in network.layers if layer[0] == "linear"), None)
    if first is not None and int(first[1].shape[1]) != plant.observation_size:
        raise InputError(
            folder / POLICY_FILE,
            f"the network takes {int(first[1].shape[1])} observation entries but the plant "
            f"builds {plant.observation_size}: export the checkpoint again",
        )


def load_policy(folder: str | Path) -> ExportedPolicy:
    """Load an export folder after verifying its checksums (see module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "exported policy folder not found")
    _read_policy_json(folder)  # first: an old format is named as such, not as a missing file
    verify_checksums(folder)
    meta = _read_policy_json(folder)
    with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as archive:
        weights = {name: archive[name] for name in archive.files}
    model = ProcessModel.load(folder / PROCESS_MODEL_FILE)
    plant_meta = meta["plant"]
    spec = build_dataclass(DatasetSpec, plant_meta["spec"], folder / POLICY_FILE, "plant.spec")
    settings = build_dataclass(EnvSettings, plant_meta["settings"], folder / POLICY_FILE)
    plant = Plant(
        spec=spec,
        model=model,
        settings=settings,
        lower=np.array(plant_meta["lower"], dtype=np.float64),
        upper=np.array(plant_meta["upper"], dtype=np.float64),
        temperature_scale=float(plant_meta["temperature_scale"]),
    )
    codec = plant.codec(meta["action_mode"])
    network = PolicyNetwork(meta["network"]["layers"], weights, meta["network"]["output"])
    _check_observation(folder, meta, plant, network)
    with np.load(folder / SUPPORT_FILE, allow_pickle=False) as archive:
        support_arrays = {name: archive[name] for name in archive.files}
    support = DataSupport.from_arrays(support_arrays, spec.control_names, folder / SUPPORT_FILE)
    return ExportedPolicy(
        name=f"{meta['algorithm']} (exported)",
        algorithm=meta["algorithm"],
        action_mode=meta["action_mode"],
        plant=plant,
        codec=codec,
        network=network,
        support=support,
        metadata=meta,
    )
