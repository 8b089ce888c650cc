"""The learning side: RLlib registration, algorithm configs, the Tune runner,
checkpoints, evaluation, recommendations, policy export, reports and the CLI.

Ray is imported lazily by the modules that need it, so ``rllib-project fit`` and the
exported policy (:mod:`rllib_project.policy`) work without starting or importing Ray.
"""

import time

__version__ = "0.1.0"

LOADED_AT = time.monotonic()
"""When this process began loading the package. Ray starts a trial by importing its
trainable in a worker process (this package first, then RLlib and torch: seconds on a
busy machine), so a trial's wall clock starts here (:mod:`rllib_project.trainable`)."""
