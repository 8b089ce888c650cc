"""Greedy actions from an RLlib RLModule, during training and from checkpoints.

The new API stack's env runners turn a module's output into env actions through a
connector pipeline. For evaluation and recommendations we need the *greedy* action on
a batch of observations without an env runner, so this module does that last step
itself, the way the pipeline does:

* DQN's ``forward_inference`` returns ``actions`` (the arg-max of Q) directly;
* PPO and SAC return ``action_dist_inputs``: build the inference distribution, take
  its deterministic sample (mode), and for Box actions undo RLlib's action
  normalisation (``normalize_actions=True`` by default), which also clips to bounds.
  Skipping that step makes a restored policy act differently from training.
* SAC's squashed Gaussian: RLlib 2.60's ``TorchSquashedGaussian.to_deterministic()``
  returns the *pre-tanh* mean, which the clip then cuts to [-1, 1]; but the policy
  SAC trained is ``tanh(N(mean, std))``, whose deterministic action is ``tanh(mean)``
  (what SB3 and CleanRL evaluate). We squash the mean, as training's samples are.

RLlib checkpoints are pickles: load only checkpoints from a trusted source.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np

if TYPE_CHECKING:
    from ray.rllib.algorithms.algorithm import Algorithm
    from ray.rllib.core.rl_module.rl_module import RLModule

MODULE_SUBPATH = Path("learner_group") / "learner" / "rl_module" / "default_policy"


def greedy_action_function(
    module: RLModule, action_space: gym.Space, normalize_actions: bool = True
) -> Callable[[np.ndarray], np.ndarray]:
    """``obs batch -> greedy env actions`` for an RLModule."""
    import torch
    from ray.rllib.core.columns import Columns
    from ray.rllib.core.distribution.torch.torch_distribution import TorchSquashedGaussian
    from ray.rllib.utils.spaces.space_utils import unsquash_action

    dist_class = None

    def act(obs: np.ndarray) -> np.ndarray:
        nonlocal dist_class
        with torch.no_grad():
            out = module.forward_inference({Columns.OBS: torch.as_tensor(obs, dtype=torch.float32)})
            if Columns.ACTIONS in out:
                actions = out[Columns.ACTIONS]
            else:
                if dist_class is None:
                    dist_class = module.get_inference_action_dist_cls()
                dist = dist_class.from_logits(out[Columns.ACTION_DIST_INPUTS])
                if isinstance(dist, TorchSquashedGaussian):
                    loc = torch.as_tensor(dist.loc)
                    actions = dist.low + (torch.tanh(loc) + 1.0) * (dist.high - dist.low) / 2
                else:
                    actions = dist.to_deterministic().sample()
        actions = actions.cpu().numpy()
        if isinstance(action_space, gym.spaces.Box):
            if normalize_actions:
                actions = unsquash_action(actions, action_space)
            return np.clip(actions, action_space.low, action_space.high).astype(np.float32)
        return actions.astype(np.int64)

    return act


def module_from_checkpoint(checkpoint: str | Path) -> RLModule:
    """The policy's RLModule from an Algorithm checkpoint (a pickle: trusted files only)."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    from rllib_project.ray_notices import hide_harmless_notices

    hide_harmless_notices()  # RLlib's loader warns about its own deprecated constructor
    return RLModule.from_checkpoint(str(Path(checkpoint).resolve() / MODULE_SUBPATH))


class LearnerModuleMirror:
    """An inference-only copy of the learner's module, refreshed on demand.

    Evaluating on the learner's own module would interfere with training state; the
    env runners' modules lag one sync behind. This copy is built once from the
    algorithm's module spec and loaded with the learner's current weights.
    """

    def __init__(self, algorithm: Algorithm, observation_space: gym.Space, action_space: gym.Space):
        import torch
        from ray.rllib.core import DEFAULT_MODULE_ID

        self.algorithm = algorithm
        assert algorithm.config is not None  # a built algorithm has its config
        spec = algorithm.config.get_rl_module_spec(
            spaces={DEFAULT_MODULE_ID: (observation_space, action_space)}, inference_only=True
        )
        self.module = spec.build()
        assert isinstance(self.module, torch.nn.Module)  # a torch RLModule
        self.module.eval()

    def refresh(self) -> RLModule:
        from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_RL_MODULE, DEFAULT_MODULE_ID

        component = f"{COMPONENT_LEARNER}/{COMPONENT_RL_MODULE}/{DEFAULT_MODULE_ID}"
        learners = self.algorithm.learner_group
        assert learners is not None  # a built algorithm has its learner group
        state = learners.get_state(components=component, inference_only=True)
        self.module.set_state(state[COMPONENT_LEARNER][COMPONENT_RL_MODULE][DEFAULT_MODULE_ID])
        return self.module
