"""DQN with one Q-head per control: a branching dueling Q-network for ``MultiDiscrete``.

DQN's flat action space ``Discrete(3**k)`` has one output per *combination* of moves:
81 for the sample's 4 controls, 729 for 6, 6,561 for 8. Every combination is learnt
separately (each Q-value needs its own visits), which is why flat DQN reached only
83.6% success on a 6-control plant where PPO and SAC reached 100%. The Action
Branching Architecture (Tavakoli, Pardo and Kormushev, "Action Branching Architectures
for Deep Reinforcement Learning", AAAI 2018) shares one network and gives each
control its own small head: ``3 * k`` outputs (24 for 8 controls), one decision per
control, all taken at once from the same observation.

Network (BDQ, the paper's dueling variant)::

    h = encoder(obs)                       # RLlib's default MLP encoder
    Q_d(s, a_d) = V(h) + A_d(h, a_d) - mean_a A_d(h, a)      for every control d

The greedy action takes the arg-max of every head, ``argmax_a A_d``. The loss is the
paper's: one temporal-difference target per transition, shared by the heads, with the
next state's value the *mean* over heads of each head's (double-Q) value::

    y = r + gamma^n (1 - done) * mean_d Q_d^target(s', argmax_a Q_d(s', a))
    loss = mean over batch and heads of huber(Q_d(s, a_d) - y)

RLlib 2.60's DQN builds its Q-head from ``action_space.n``, so its catalog refuses
``MultiDiscrete`` (there is no ``n``); these three classes are RLlib's own DQN pieces
with only that changed: :class:`BranchingQCatalog` sizes the advantage head ``sum(nvec)``,
:class:`BranchingQTorchRLModule` splits it per control (epsilon-greedy exploration
over whole actions, as DQN's), :class:`BranchingQTorchLearner` computes the loss above.
Replay, target-network updates, n-step returns and the training loop are DQN's. The
module keeps DQN's layer names (``encoder``, ``af``, ``vf``), so the export reads it as
it reads DQN (:mod:`rllib_project.export`).
"""

from __future__ import annotations

from typing import Any, cast

import gymnasium as gym
import torch
from ray.rllib.algorithms.dqn.default_dqn_rl_module import QF_NEXT_PREDS, QF_PREDS
from ray.rllib.algorithms.dqn.dqn_catalog import DQNCatalog
from ray.rllib.algorithms.dqn.dqn_learner import (
    QF_LOSS_KEY,
    QF_MAX_KEY,
    QF_MEAN_KEY,
    QF_MIN_KEY,
    QF_TARGET_NEXT_PREDS,
    TD_ERROR_MEAN_KEY,
)
from ray.rllib.algorithms.dqn.torch.default_dqn_torch_rl_module import DefaultDQNTorchRLModule
from ray.rllib.algorithms.dqn.torch.dqn_torch_learner import DQNTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.models.base import ENCODER_OUT
from ray.rllib.core.models.catalog import Catalog
from ray.rllib.utils.metrics import TD_ERROR_KEY


class BranchingQCatalog(DQNCatalog):
    """DQN's catalog for ``MultiDiscrete`` actions: an advantage head of ``sum(nvec)``
    outputs (one block per control) and DQN's one-output value head."""

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        model_config_dict: dict,
        view_requirements: Any = None,
    ) -> None:
        if not isinstance(action_space, gym.spaces.MultiDiscrete):
            raise ValueError(f"branching Q needs a MultiDiscrete action space, got {action_space}")
        Catalog.__init__(self, observation_space, action_space, model_config_dict)
        self.num_atoms = self._model_config_dict["num_atoms"]
        if self.num_atoms != 1 or not self._model_config_dict["dueling"]:
            raise ValueError("branching Q is dueling and not distributional (num_atoms 1)")
        self.branch_sizes = [int(n) for n in action_space.nvec.reshape(-1)]
        self.af_head_config: Any = self._get_head_config(output_layer_dim=sum(self.branch_sizes))
        self.vf_head_config: Any = self._get_head_config(output_layer_dim=1)

    def get_action_dist_cls(self, framework: str) -> Any:
        # one categorical per control (only used by RLlib's generic code paths)
        return Catalog._get_dist_cls_from_action_space(self.action_space, framework=framework)


class BranchingQTorchRLModule(DefaultDQNTorchRLModule):
    """DQN's module with one dueling Q-head per control (``qf_preds``: (B, k, n))."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("catalog_class", BranchingQCatalog)
        super().__init__(*args, **kwargs)

    def setup(self) -> None:
        super().setup()
        catalog = self.catalog
        assert isinstance(catalog, BranchingQCatalog)  # set by __init__
        self.branch_sizes: list[int] = list(catalog.branch_sizes)
        if len(set(self.branch_sizes)) != 1:  # one tensor (B, k, n) needs equal branches
            raise ValueError(f"branches must be of equal size, got {self.branch_sizes}")

    def _qf_forward_helper(self, batch: dict, encoder: Any, head: Any) -> dict[str, Any]:
        encoded = encoder(batch)[ENCODER_OUT]
        advantages = head["af"](encoded)
        advantages = advantages.view(*advantages.shape[:-1], len(self.branch_sizes), -1)
        value = head["vf"](encoded).unsqueeze(-1)  # (B, 1, 1): shared by the heads
        q = value + advantages - advantages.mean(dim=-1, keepdim=True)
        return {QF_PREDS: q}

    def _forward_inference(self, batch: dict, **kwargs: Any) -> dict[str, Any]:
        q = cast(torch.Tensor, self.compute_q_values(batch)[QF_PREDS])
        return {Columns.ACTIONS: q.argmax(dim=-1)}

    def _forward_exploration(
        self, batch: dict[str, Any], t: int = 0, **kwargs: Any
    ) -> dict[str, Any]:
        """Epsilon-greedy over whole actions, as DQN's: with probability epsilon every
        control moves at random, else every head acts greedily. ``t`` is the env steps
        so far, which the schedule follows."""
        q = cast(torch.Tensor, self.compute_q_values(batch)[QF_PREDS])
        greedy = q.argmax(dim=-1)
        self.epsilon_schedule.update(t)
        epsilon = self.epsilon_schedule.get_current_value()
        random_actions = torch.randint_like(greedy, high=self.branch_sizes[0])
        explore = torch.rand(greedy.shape[0], device=greedy.device) < float(epsilon)
        return {Columns.ACTIONS: torch.where(explore[:, None], random_actions, greedy)}


class BranchingQTorchLearner(DQNTorchLearner):
    """DQN's learner with the branching loss (module docstring)."""

    def compute_loss_for_module(
        self, *, module_id: str, config: Any, batch: dict, fwd_out: dict[str, Any]
    ) -> Any:
        q = fwd_out[QF_PREDS]  # (B, k, n)
        actions = batch[Columns.ACTIONS].long()  # (B, k)
        q_selected = q.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # (B, k)
        target_next = fwd_out[QF_TARGET_NEXT_PREDS]
        if config.double_q:  # the online heads choose, the target heads evaluate
            best = fwd_out[QF_NEXT_PREDS].argmax(dim=-1, keepdim=True)
        else:
            best = target_next.argmax(dim=-1, keepdim=True)
        next_value = target_next.gather(-1, best).squeeze(-1).mean(dim=-1)  # (B,)
        not_done = 1.0 - batch[Columns.TERMINATEDS].float()
        target = (
            batch[Columns.REWARDS] + config.gamma ** batch["n_step"] * not_done * next_value
        ).detach()
        loss_fn = torch.nn.HuberLoss if config.td_error_loss_fn == "huber" else torch.nn.MSELoss
        per_head = loss_fn(reduction="none")(q_selected, target.unsqueeze(-1).expand_as(q_selected))
        total_loss = torch.mean(batch["weights"] * per_head.mean(dim=-1))
        td_error = (q_selected - target.unsqueeze(-1)).abs().mean(dim=-1)  # (B,)
        self.metrics.log_value(key=(module_id, TD_ERROR_KEY), value=td_error, reduce="item_series")
        self.metrics.log_dict(
            {
                QF_LOSS_KEY: total_loss,
                QF_MEAN_KEY: q_selected.mean(),
                QF_MAX_KEY: q_selected.max(),
                QF_MIN_KEY: q_selected.min(),
                TD_ERROR_MEAN_KEY: td_error.mean(),
            },
            key=module_id,
            window=1,
        )
        return total_loss
