"""The world: plant data, fitted process model, Gymnasium environment, planner, baselines.

Pure Gymnasium + numpy (no Ray import), so the environment, the planner and exported
policies run wherever Python runs. Importing the package registers
``TemperatureControl-v0`` with Gymnasium::

    import gymnasium as gym
    import env

    e = gym.make("TemperatureControl-v0", action_mode="discrete_flat")
"""

from __future__ import annotations

import gymnasium as gym

from env.actions import ACTION_MODES, ActionCodec, ActionMode
from env.data import PlantData, load_plant_data
from env.errors import InputError
from env.model import ProcessModel, fit_process_model
from env.plant import DEFAULT_SPEC_PATH, Plant, load_plant
from env.spec import DatasetSpec, load_spec
from env.temperature_env import EnvConfig, TemperatureControlEnv

ENV_ID = "TemperatureControl-v0"

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="env.temperature_env:TemperatureControlEnv")

__all__ = [
    "ACTION_MODES",
    "DEFAULT_SPEC_PATH",
    "ENV_ID",
    "ActionCodec",
    "ActionMode",
    "DatasetSpec",
    "EnvConfig",
    "InputError",
    "Plant",
    "PlantData",
    "ProcessModel",
    "TemperatureControlEnv",
    "fit_process_model",
    "load_plant",
    "load_plant_data",
    "load_spec",
]
