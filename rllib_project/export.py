"""``rllib-project export``: turn a checkpoint into a Ray-free, pickle-free policy.

The policy path of the RLModule (encoder + policy head; for DQN encoder + advantage
head, one block per control for the branching Q-network) is read layer by layer into
plain arrays, described in ``policy.json`` and saved as ``weights.npz`` (see
:mod:`rllib_project.policy` for the folder layout); the
training rows' data support (:mod:`env.support`) goes into ``support.npz``. Before the
folder is moved into place, the exported network is loaded back the way a user would
load it and its greedy actions are compared with the checkpoint's on a batch of
observations (random ones within the observation space and the CSV's rows); an export
that would act differently is refused. The folder appears whole or not at all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from env.errors import InputError
from env.files import check_output_folder, staged_folder, write_json_atomic
from env.model import PROCESS_MODEL_FILE
from env.plant import Plant
from env.spec import spec_to_dict
from env.support import fit_data_support
from rllib_project.checkpoints import LoadedPolicy, load_checkpoint_policy
from rllib_project.policy import (
    CHECKSUM_FILE,
    HASHED_FILES,
    OBSERVATION_KEY,
    POLICY_FILE,
    SUPPORT_FILE,
    WEIGHTS_FILE,
    export_format,
    load_policy,
    observation_layout,
    sha256_file,
)

# Which submodules form the greedy policy path, per RLlib default module (2.60).
_POLICY_PATHS = {
    "PPO": (("encoder.actor_encoder", "encoder.encoder"), "pi"),
    "SAC": (("pi_encoder",), "pi"),
    "DQN": (("encoder",), "af"),
}


def exported_settings(plant: Plant) -> dict[str, Any]:
    """The plant's env settings as an export records them: defaults that resolve from
    the CSV rows (which an export does not carry: the hold margin and centre weight of
    a drifting log and the observer's ratio, :mod:`env.observer`) written as the
    numbers they resolved to, so the export advises as the checkpoint does. Only a
    lagging plant's export (``LAGGING_EXPORT_FORMAT``) records the observer's ratio:
    a static plant has no observer, and its format stays the one it always was."""
    settings = {
        **dataclasses.asdict(plant.settings),
        "hold_margin": plant.hold_margin,
        "centre_weight": plant.centre_weight,
    }
    del settings["observer_ratio"]
    if plant.lagging:
        settings["observer_ratio"] = None if plant.observer is None else plant.observer.ratio
    return settings


def _layers(module: Any, prefixes: tuple[str, ...]) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Leaf layers under the first prefix that exists, in forward order."""
    import torch

    named = dict(module.named_modules())
    prefix = next((p for p in prefixes if p in named), None)
    if prefix is None:
        raise InputError("checkpoint", f"unexpected RLModule layout (none of {prefixes})")
    layers: list[dict] = []
    weights: dict[str, np.ndarray] = {}
    for name, sub in named[prefix].named_modules():
        if list(sub.children()):
            continue
        key = f"{prefix}.{name}".replace(".", "_")
        if isinstance(sub, torch.nn.Linear):
            weights[f"{key}.weight"] = sub.weight.detach().cpu().numpy().astype(np.float32)
            weights[f"{key}.bias"] = sub.bias.detach().cpu().numpy().astype(np.float32)
            layers.append({"type": "linear", "weight": f"{key}.weight", "bias": f"{key}.bias"})
        elif isinstance(sub, torch.nn.LayerNorm):
            weights[f"{key}.weight"] = sub.weight.detach().cpu().numpy().astype(np.float32)
            weights[f"{key}.bias"] = sub.bias.detach().cpu().numpy().astype(np.float32)
            layers.append(
                {
                    "type": "layernorm",
                    "weight": f"{key}.weight",
                    "bias": f"{key}.bias",
                    "eps": sub.eps,
                }
            )
        elif isinstance(sub, torch.nn.Identity):
            continue
        else:
            kind = {
                torch.nn.Tanh: "tanh",
                torch.nn.ReLU: "relu",
                torch.nn.SiLU: "silu",
                torch.nn.ELU: "elu",
                torch.nn.Sigmoid: "sigmoid",
            }.get(type(sub))
            if kind is None:
                raise InputError("checkpoint", f"cannot export layer {type(sub).__name__}")
            layers.append({"type": kind})
    return layers, weights


def _output(policy: LoadedPolicy, module: Any) -> dict[str, Any]:
    mode = policy.action_mode
    if policy.algorithm == "DQN":
        if getattr(module, "num_atoms", 1) != 1 or getattr(module, "uses_noisy", False):
            raise InputError("checkpoint", "only non-distributional, non-noisy DQN is exported")
        if mode == "discrete":  # one dueling head per control (rllib_project.branching_q)
            return {"kind": "q_branching", "sizes": [3] * policy.codec.n_controls}
        return {"kind": "q_dueling"}
    if mode == "discrete":
        return {"kind": "multi_categorical", "sizes": [3] * policy.codec.n_controls}
    if mode == "discrete_flat":
        return {"kind": "categorical"}
    if policy.algorithm == "SAC":
        return {
            "kind": "squashed_gaussian",
            "n_actions": policy.codec.n_controls,
            "low": -1.0,
            "high": 1.0,
        }
    return {"kind": "gaussian", "n_actions": policy.codec.n_controls}


def _check_observations(policy: LoadedPolicy, count: int = 512) -> np.ndarray:
    """Observations to compare on: the CSV's start rows (with their settings in
    flight) plus random points of the space."""
    plant = policy.plant
    rng = np.random.default_rng(0)
    space_low = np.maximum(plant.observation_bounds()[0], -3.0)
    if plant.data is not None:
        index = plant.start_indices
        rows = plant.observe(
            plant.rows.state[index], plant.start_controls(index), plant.start_pending(index)
        )
    else:
        rows = np.zeros((0, len(space_low)))
    random_obs = rng.uniform(space_low, -space_low, size=(count, len(space_low)))
    return np.concatenate(
        [
            np.asarray(rows, dtype=np.float32).reshape(-1, len(space_low)),
            random_obs.astype(np.float32),
        ]
    )


def export_checkpoint(checkpoint: Path, target: Path, force: bool = False) -> Path:
    """Write the export folder for ``checkpoint`` at ``target`` (see module docstring)."""
    check_output_folder(target)  # before the checkpoint is loaded
    if target.exists() and any(target.iterdir()) and not force:
        raise InputError(target, "folder exists and is not empty (use --force to replace it)")
    policy = load_checkpoint_policy(checkpoint)
    from rllib_project.inference import module_from_checkpoint

    module = module_from_checkpoint(checkpoint)
    encoders, head = _POLICY_PATHS[policy.algorithm]
    layers, weights = _layers(module, encoders)
    head_layers, head_weights = _layers(module, (head,))
    plant = policy.plant
    metadata = {
        "format": export_format(plant),
        "algorithm": policy.algorithm,
        "action_mode": policy.action_mode,
        "network": {"layers": layers + head_layers, "output": _output(policy, module)},
        "plant": {
            "spec": {**spec_to_dict(plant.spec), "csv": Path(plant.spec.csv).name},
            "settings": exported_settings(plant),
            "lower": plant.lower.tolist(),
            "upper": plant.upper.tolist(),
            "temperature_scale": plant.temperature_scale,
        },
        OBSERVATION_KEY: observation_layout(plant),
        "control_names": list(plant.spec.control_names),
        "state": plant.spec.state,
        "band": list(plant.band),
        "dataset_sha256": plant.model.csv_sha256,
        "source_checkpoint": str(checkpoint.resolve()),
        "exported_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    with staged_folder(target) as staging:
        arrays: dict[str, Any] = {**weights, **head_weights}
        np.savez(staging / WEIGHTS_FILE, **arrays)
        write_json_atomic(staging / POLICY_FILE, metadata)
        plant.model.save(staging / PROCESS_MODEL_FILE)
        support_arrays: dict[str, Any] = fit_data_support(plant.rows).to_arrays()
        np.savez(staging / SUPPORT_FILE, **support_arrays)
        write_json_atomic(
            staging / CHECKSUM_FILE, {name: sha256_file(staging / name) for name in HASHED_FILES}
        )
        _verify_same_actions(policy, staging)
    return target


def _verify_same_actions(policy: LoadedPolicy, folder: Path) -> None:
    exported = load_policy(folder)
    obs = _check_observations(policy)
    expected, actual = policy.act(obs), exported.act(obs)
    if policy.action_mode == "continuous":
        same = np.allclose(expected, actual, atol=1e-5)
    else:
        same = np.array_equal(expected, actual)
    if not same:
        raise RuntimeError(
            "exported network acts differently from the checkpoint; nothing was written"
        )


def export_summary(target: Path) -> str:
    meta = json.loads((target / POLICY_FILE).read_text())
    return (
        f"exported {meta['algorithm']} ({meta['action_mode']}) to {target}: "
        f"{', '.join(HASHED_FILES)} + {CHECKSUM_FILE}; actions verified against the checkpoint"
    )
