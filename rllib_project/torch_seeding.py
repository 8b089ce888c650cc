"""Seed torch the way RLlib does, minus a switch that costs every trial seconds.

With a seed set (``config.debugging(seed=...)``; every trial has one), RLlib seeds
Python, numpy and torch through ``ray.rllib.utils.debug.update_global_seed_if_necessary``
in the algorithm, its learner and each env runner. Its torch part also calls
``torch.use_deterministic_algorithms(True)``, which in torch 2.13 imports
``torch._inductor`` and with it ``torch._dynamo``: 1.2-1.5 s of CPU in a fresh process
(measured on this machine, twice that when three trials start together on two cores),
about a third of a trial's set-up, for nothing on a CPU: the switch makes CUDA (and
cuDNN) kernels deterministic and raises errors for CUDA operations that have no
deterministic version. CPU kernels give the same results either way.

:func:`use_light_torch_seeding` swaps RLlib's torch seeding, in the one module that
calls it, for one that seeds torch's generator (and sets cuDNN's flags as RLlib does)
without that switch. Same seeds, same generators, same numbers on CPU. A GPU learner
gets the switch back as RLlib sets it. Ray is pinned (2.60.0), so the swapped name is
the one read here; a future RLlib without it is left alone.
"""

from __future__ import annotations


def _set_torch_seed(seed: int | None = None) -> None:
    """``ray.rllib.utils.torch_utils.set_torch_seed`` minus the deterministic switch on CPU."""
    import torch

    if seed is None:
        return
    if torch.cuda.is_available():  # CUDA: RLlib's own version, switch included
        from ray.rllib.utils.torch_utils import set_torch_seed

        set_torch_seed(seed)
        return
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def use_light_torch_seeding() -> None:
    """Make RLlib's global seeding (algorithm, learner, env runners of this process)
    seed torch without importing torch's compiler (module docstring)."""
    from ray.rllib.utils.debug import deterministic

    if hasattr(deterministic, "set_torch_seed"):
        deterministic.set_torch_seed = _set_torch_seed
