"""Register the environment with RLlib/Tune under its Gymnasium id.

RLlib builds environments by name on every env runner, possibly on other nodes.
``register_env`` stores the creator in Tune's registry (kept in the cluster's GCS), so
every worker that imports this project can build it. The creator receives RLlib's
``EnvContext`` (a dict of :class:`env.EnvConfig` keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from env import ENV_ID, TemperatureControlEnv


def make_env(config: Mapping[str, Any]) -> TemperatureControlEnv:
    """Env creator for RLlib: the EnvContext's keys are the env config."""
    return TemperatureControlEnv(dict(config))


_registered_in_this_process = False


def register() -> str:
    """Register the env creator once per process and return its name."""
    global _registered_in_this_process
    if not _registered_in_this_process:
        from ray.tune.registry import register_env

        register_env(ENV_ID, make_env)
        _registered_in_this_process = True
    return ENV_ID
