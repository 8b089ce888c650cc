"""The learning side: RLlib registration, algorithm configs, the Tune runner,
checkpoints, evaluation, recommendations, policy export, reports and the CLI.

Ray is imported lazily by the modules that need it, so ``rllib-project fit`` and the
exported policy (:mod:`rllib_project.policy`) work without starting or importing Ray.
"""

__version__ = "0.1.0"
