"""``python -m rllib_project`` is the same as the ``rllib-project`` command."""

from rllib_project.cli import main

raise SystemExit(main())
