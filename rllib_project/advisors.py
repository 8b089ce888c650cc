"""One :class:`Advisor` from any policy source the command line accepts.

An export folder carries its own data support (``support.npz``); a checkpoint or an
experiment has its plant's CSV rows, from which the same support is fitted (the fit is
seeded, so a checkpoint and its export advise alike). Ray is imported only when a
checkpoint's network is first used.
"""

from __future__ import annotations

from pathlib import Path

from env.errors import InputError
from env.support import fit_data_support
from rllib_project.checkpoints import load_best_policy
from rllib_project.policy import POLICY_FILE, load_policy
from rllib_project.recommendation import Advisor


def is_export(source: str | Path) -> bool:
    return (Path(source) / POLICY_FILE).exists()


def load_advisor(source: str | Path, dataset: str | None = None) -> Advisor:
    """``best``, an experiment (``dataset``: which of its datasets, needed when it has
    several), a checkpoint or an export folder -> an advisor."""
    if is_export(source):
        if dataset is not None:
            raise InputError("--dataset", f"goes with an experiment folder; {source} is one policy")
        return load_policy(source).advisor
    policy = load_best_policy(source, dataset)
    plant = policy.plant
    return Advisor(policy.name, plant, policy.codec, policy.act, fit_data_support(plant.rows))
