"""``rllib-project``: the command line of the workbench.

Subcommands (``rllib-project <command> --help`` for each):

* ``fit SPEC``: validate a dataset, choose and fit the process model, save it;
* ``tune EXPERIMENT`` / ``tune --resume DIR``: train PPO, SAC and DQN in parallel;
* ``evaluate DIR|CHECKPOINT``: compare trained policies with the planner and baselines;
* ``recommend``: what to do with each control, from a state or a CSV row;
* ``export CHECKPOINT DIR``: write a Ray-free policy;
* ``report DIR``: Markdown report with plots;
* ``demo``: the README's main job (fit, tune, report) on the sample data.

Mistakes in user input end with one line on stderr and exit code 2, never a traceback.
Ray is imported only by the subcommands that need it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from env.errors import InputError

EXIT_INPUT_ERROR = 2


def _fit(args: argparse.Namespace) -> int:
    from rllib_project.fitting import fit_command

    return fit_command(Path(args.spec), None if args.out is None else Path(args.out))


def _tune(args: argparse.Namespace) -> int:
    from rllib_project.tuning import RunInterrupted, resume_tune, run_tune

    if (args.experiment is None) == (args.resume is None):
        raise InputError("tune", "give either an experiment YAML or --resume DIR")
    try:
        if args.resume is not None:
            resume_tune(Path(args.resume), args.address)
        else:
            storage = None if args.storage_path is None else Path(args.storage_path)
            run_tune(Path(args.experiment), args.address, storage)
    except RunInterrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return 130
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rllib-project",
        description="Data-driven process-control RL workbench on Ray RLlib.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    fit = commands.add_parser("fit", help="validate a dataset and fit its process model")
    fit.add_argument("spec", help="dataset spec YAML (e.g. data/sample_spec.yaml)")
    fit.add_argument("--out", help="model JSON to write (default: <spec>.model.json)")
    fit.set_defaults(handler=_fit)

    tune = commands.add_parser("tune", help="train PPO, SAC and DQN in parallel with Ray Tune")
    tune.add_argument("experiment", nargs="?", help="experiment YAML (tune_configs/compare.yaml)")
    tune.add_argument("--resume", metavar="DIR", help="continue an interrupted experiment folder")
    tune.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or local)")
    tune.add_argument(
        "--storage-path", help="override the experiment's storage_path (shared on a cluster)"
    )
    tune.set_defaults(handler=_tune)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
