"""``rllib-project``: the command line of the workbench.

Subcommands (``rllib-project <command> --help`` for each):

* ``fit SPEC``: validate a dataset, choose and fit the process model, save it;
* ``plan SPEC``: the fewest-moves yardstick over every row (how deep, how exact, how fast);
* ``tune EXPERIMENT`` / ``tune --resume DIR`` / ``tune --finish DIR``: train PPO, SAC and
  DQN in parallel, continue an interrupted run, end a run early;
* ``evaluate DIR|CHECKPOINT``: compare trained policies with the planner and baselines;
* ``recommend``: what to do with each control, from a state, a CSV row, or for every
  reading of a CSV file (``--csv``/``--out``);
* ``export CHECKPOINT DIR``: write a Ray-free policy;
* ``serve SOURCE``: advice over HTTP on Ray Serve, until Ctrl-C;
* ``report DIR``: Markdown report with plots;
* ``backtest SOURCE``: a policy's advice vs the operator and time in band vs the log;
* ``demo``: the README's main job (fit, tune, report) on the sample data.

Mistakes in user input end with one line on stderr and exit code 2, never a traceback.
Ray is imported only by the subcommands that need it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from env.errors import InputError
from rllib_project.ingress import INGRESS_KINDS

EXIT_INPUT_ERROR = 2
UTF_8_NAMES = ("utf-8", "utf8")
DEFAULT_EXPERIMENT = Path(__file__).resolve().parent.parent / "tune_configs" / "compare.yaml"


def _fit(args: argparse.Namespace) -> int:
    from rllib_project.fitting import fit_command

    return fit_command(Path(args.spec), None if args.out is None else Path(args.out), args.json)


def _plan(args: argparse.Namespace) -> int:
    from rllib_project.planning import plan_command

    return plan_command(
        Path(args.spec),
        None if args.model is None else Path(args.model),
        args.mode,
        args.json,
        None if args.save is None else Path(args.save),
    )


def _tune(args: argparse.Namespace) -> int:
    from rllib_project.preparation import PreparationFailed
    from rllib_project.tuning import RunInterrupted, request_finish_of, resume_tune, run_tune

    given = [x for x in (args.experiment, args.resume, args.finish) if x is not None]
    if len(given) != 1:
        raise InputError("tune", "give one of: an experiment YAML, --resume DIR, --finish DIR")
    if args.only and args.finish is None:
        raise InputError("--only", "goes with --finish DIR")
    try:
        if args.finish is not None:
            print(request_finish_of(Path(args.finish), args.only or ()))
        elif args.resume is not None:
            resume_tune(Path(args.resume), args.address)
        else:
            storage = None if args.storage_path is None else Path(args.storage_path)
            run_tune(Path(args.experiment), args.address, storage)
    except RunInterrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return 130
    except PreparationFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from rllib_project.evaluate import evaluate_source, format_evaluation, format_json

    evaluation = evaluate_source(args.source, args.dataset)
    print(format_json(evaluation) if args.json else format_evaluation(evaluation))
    return 0


def _recommend(args: argparse.Namespace) -> int:
    import json

    from env.files import json_safe
    from rllib_project.advisors import load_advisor
    from rllib_project.recommendation import format_recommendation, parse_state

    given = [name for name in ("state", "row", "csv") if getattr(args, name) is not None]
    if len(given) != 1:
        raise InputError("recommend", "give one of --state, --row or --csv")
    if (args.out is None) != (args.csv is None):
        raise InputError("recommend", "--csv and --out go together")
    if args.no_path and args.csv is None:
        raise InputError("--no-path", "only with --csv (single advice always has its path)")
    if args.time_ordered and args.csv is None:
        raise InputError("--time-ordered", "only with --csv (a file of readings in time order)")
    advisor = load_advisor(args.policy, args.dataset)
    if args.csv is not None:
        import torch

        from rllib_project.batch_advice import advise_csv

        # A small network on blocks of a few thousand rows: one thread is faster than
        # two competing ones (measured 5 ms vs 120 ms per 4096 rows on a busy machine).
        torch.set_num_threads(1)

        summary = advise_csv(
            advisor,
            Path(args.csv),
            Path(args.out),
            with_path=not args.no_path,
            time_ordered=args.time_ordered,
        )
        print(summary.describe())
        return 0
    plant = advisor.plant
    pending = None
    disturbance = 0.0
    if args.state is not None:
        temperature, controls = parse_state(args.state, plant)
    else:
        data = plant.rows
        position = int(np.searchsorted(data.row_numbers, args.row))
        if position >= len(data.row_numbers) or data.row_numbers[position] != args.row:
            raise InputError("--row", f"CSV data row {args.row} does not exist or was dropped")
        temperature, controls = float(data.state[position]), data.controls[position]
        if plant.identified is not None and np.isin(position, plant.start_indices):
            # a time-ordered log: the state before row N's decision, as logged (the
            # settings of the row before, those of the dead time before still in flight)
            index = np.array([position])
            controls, pending = plant.start_controls(index)[0], plant.start_pending(index)[0]
            # and what the log's readings up to it say the model misses (env.observer)
            disturbance = float(plant.start_observer(index).disturbance[0])
    advice = advisor.recommend(temperature, controls, pending, disturbance)
    if args.json:
        print(
            json.dumps(json_safe(advice.to_dict()), indent=1, allow_nan=False, ensure_ascii=False)
        )
    else:
        print(format_recommendation(advice))
    return 0


def _export(args: argparse.Namespace) -> int:
    from rllib_project.checkpoints import POLICY_METADATA, load_best_policy
    from rllib_project.export import export_checkpoint, export_summary

    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_dir():
        raise InputError(checkpoint, "checkpoint or experiment folder not found")
    if not (checkpoint / POLICY_METADATA).exists():  # an experiment: its best policy
        checkpoint = load_best_policy(checkpoint, args.dataset).source
    elif args.dataset is not None:
        raise InputError("--dataset", "goes with an experiment folder, not a checkpoint")
    print(export_summary(export_checkpoint(checkpoint, Path(args.target), args.force)))
    return 0


@contextlib.contextmanager
def _served_export(source: str, dataset: str | None) -> Iterator[Path]:
    """An export folder for ``serve``: the source itself, or a checkpoint (the best of an
    experiment) exported into a temporary folder that is removed afterwards."""
    from rllib_project.advisors import is_export
    from rllib_project.checkpoints import POLICY_METADATA, load_best_policy
    from rllib_project.export import export_checkpoint

    path = Path(source)
    single = is_export(source) or (path / POLICY_METADATA).exists()
    if single and dataset is not None:
        raise InputError("--dataset", f"goes with an experiment folder; {source} is one policy")
    if is_export(source):
        yield path
        return
    checkpoint = path if single else load_best_policy(source, dataset).source
    folder = Path(tempfile.mkdtemp(prefix="plant-policy-export-"))
    try:
        print(f"exporting {checkpoint} ...", flush=True)
        export_checkpoint(checkpoint, folder / "export")
        print(f"exported to {folder / 'export'} (temporary: removed at shutdown)", flush=True)
        yield folder / "export"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _serve(args: argparse.Namespace) -> int:
    from rllib_project.ingress import prepare_ingress
    from rllib_project.tuning import prepare_ray_environment

    # before anything imports Ray: loopback binding; --address or RAY_ADDRESS, as for tune
    address = prepare_ray_environment(args.address)
    # short: HAProxy limits socket paths to 97 characters and Ray adds a 56-character hash
    private = Path(tempfile.mkdtemp(prefix="rps", dir="/tmp"))
    try:
        prepare_ingress(args.ingress, address, private)
        from rllib_project.serving import ServeOptions, serve_policy

        options = ServeOptions(
            host=args.host,
            port=args.port,
            replicas=args.replicas,
            token_file=None if args.token_file is None else Path(args.token_file),
            address=address,
            ingress=args.ingress,
        )
        with _served_export(args.source, args.dataset) as export:
            serve_policy(export, options, say=lambda line: print(line, flush=True))
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return 0


def _report(args: argparse.Namespace) -> int:
    from rllib_project.report import build_report

    print(f"report: {build_report(Path(args.experiment))}")
    return 0


def _backtest(args: argparse.Namespace) -> int:
    from rllib_project.backtest import format_backtest, format_json, run_backtest

    folder = None if args.out is None else Path(args.out)
    result = run_backtest(args.source, folder, args.dataset)
    print(format_json(result) if args.json else format_backtest(result))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from rllib_project.evaluate import evaluate_source, format_evaluation
    from rllib_project.report import build_report
    from rllib_project.tuning import run_tune

    experiment_dir = run_tune(Path(args.experiment), args.address)
    print("\nevaluating the best checkpoint of each algorithm on every row ...", flush=True)
    print(format_evaluation(evaluate_source(experiment_dir)))
    print("\nwriting the report (plots) ...", flush=True)
    print(f"report: {build_report(experiment_dir)}")
    return 0


PICK_DATASET = "with an experiment of several datasets: the best policy of this one"


def _dataset_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--dataset", metavar="NAME", help=f"{help_text} (names: see best.json)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rllib-project",
        description="Data-driven process-control RL workbench on Ray RLlib.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    fit = commands.add_parser("fit", help="validate a dataset and fit its process model")
    fit.add_argument("spec", help="dataset spec YAML (e.g. data/sample_spec.yaml)")
    fit.add_argument("--out", help="model JSON to write (default: <spec>.model.json)")
    fit.add_argument(
        "--json", action="store_true", help="print the chosen model and dynamics as JSON"
    )
    fit.set_defaults(handler=_fit)

    plan = commands.add_parser("plan", help="fewest moves into the band for every row")
    plan.add_argument("spec", help="dataset spec YAML")
    plan.add_argument("--model", help="model JSON from 'fit' (default: fit one now)")
    plan.add_argument("--mode", choices=["discrete", "continuous"], default="discrete")
    plan.add_argument("--save", metavar="FILE", help="also write the per-row yardstick JSON")
    plan.add_argument("--json", action="store_true", help="print JSON instead of text")
    plan.set_defaults(handler=_plan)

    tune = commands.add_parser("tune", help="train PPO, SAC and DQN in parallel with Ray Tune")
    tune.add_argument("experiment", nargs="?", help="experiment YAML (tune_configs/compare.yaml)")
    tune.add_argument("--resume", metavar="DIR", help="continue an interrupted experiment folder")
    tune.add_argument(
        "--finish",
        metavar="DIR",
        help="end a run early, keeping what it learned: its trials stop after their current "
        "iteration and best.json is written from the checkpoints so far",
    )
    tune.add_argument(
        "--only",
        metavar="NAME",
        nargs="+",
        help="with --finish: only these trials (names as in the progress table), algorithms "
        "or datasets",
    )
    tune.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or local)")
    tune.add_argument(
        "--storage-path", help="override the experiment's storage_path (shared on a cluster)"
    )
    tune.set_defaults(handler=_tune)

    evaluate = commands.add_parser(
        "evaluate", help="compare trained policies with the planner and baselines on every row"
    )
    evaluate.add_argument("source", help="experiment folder, checkpoint or export folder")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _dataset_option(evaluate, "with an experiment of several datasets: only this one")
    evaluate.set_defaults(handler=_evaluate)

    rec = commands.add_parser("recommend", help="what to do with each control, from a state")
    rec.add_argument(
        "--policy",
        default="best",
        help="'best' (newest experiment), an experiment, checkpoint or export folder",
    )
    rec.add_argument("--state", help='e.g. "temperature=947.1,fuel_rate=11.6,..."')
    rec.add_argument("--row", type=int, help="use data row N of the CSV (0-based) as the state")
    rec.add_argument("--json", action="store_true", help="print JSON instead of text")
    rec.add_argument(
        "--csv", metavar="READINGS", help="advise every row of a CSV of readings (with --out)"
    )
    rec.add_argument("--out", metavar="ADVICE", help="CSV to write: one advice row per reading")
    rec.add_argument(
        "--no-path",
        action="store_true",
        help="with --csv: skip the predicted paths (first move only; much faster)",
    )
    rec.add_argument(
        "--time-ordered",
        action="store_true",
        help="with --csv on a plant with lag: the file is one log, a reading per sample, "
        "oldest first; each reading is advised with what the readings before it say "
        "(settings in flight, disturbance estimate)",
    )
    _dataset_option(rec, PICK_DATASET)
    rec.set_defaults(handler=_recommend)

    export = commands.add_parser("export", help="write a Ray-free policy from a checkpoint")
    export.add_argument(
        "checkpoint", help="checkpoint folder (see best.json), or an experiment (its best)"
    )
    export.add_argument("target", help="folder to write")
    export.add_argument(
        "--force", action="store_true", help="replace an older export in TARGET (nothing else)"
    )
    _dataset_option(export, PICK_DATASET)
    export.set_defaults(handler=_export)

    serve = commands.add_parser(
        "serve", help="serve advice over HTTP (Ray Serve): POST /recommend, GET /health, ..."
    )
    serve.add_argument(
        "source",
        help="export folder, or checkpoint / experiment / 'best' (exported to a temporary folder)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port (8000)")
    serve.add_argument("--replicas", type=int, default=1, help="replicas of the service (1)")
    serve.add_argument(
        "--token-file", help="file holding a bearer token that requests (all but /health) must send"
    )
    serve.add_argument("--address", help="Ray cluster to deploy on (default: a local instance)")
    serve.add_argument(
        "--ingress",
        choices=INGRESS_KINDS,
        default="proxy",
        help="proxy: Serve's HTTP proxy, all on 127.0.0.1 (default); haproxy: Ray's "
        "high-throughput ingress, whose stats pages listen on all interfaces",
    )
    _dataset_option(serve, PICK_DATASET)
    serve.set_defaults(handler=_serve)

    report = commands.add_parser("report", help="Markdown report with plots for an experiment")
    report.add_argument("experiment", help="experiment folder (holding best.json)")
    report.set_defaults(handler=_report)

    backtest = commands.add_parser(
        "backtest",
        help="replay the time-ordered log: advice vs the operator, time in band vs the policy",
    )
    backtest.add_argument("source", help="experiment, checkpoint or export folder ('best')")
    backtest.add_argument("--json", action="store_true", help="print JSON instead of text")
    backtest.add_argument(
        "--out",
        metavar="DIR",
        help="folder for backtest.md and backtest.png "
        "(default: <experiment>/backtest, or ./backtest_<name> for a checkpoint or export)",
    )
    _dataset_option(backtest, PICK_DATASET)
    backtest.set_defaults(handler=_backtest)

    demo = commands.add_parser(
        "demo", help="the main job: tune PPO/SAC/DQN on the sample data, evaluate, report"
    )
    demo.add_argument(
        "experiment", nargs="?", default=str(DEFAULT_EXPERIMENT), help="experiment YAML"
    )
    demo.add_argument("--address", help="Ray cluster address (default: local)")
    demo.set_defaults(handler=_demo)
    return parser


def _printable_anywhere() -> None:
    """Column names may be Chinese or accented: on a console that cannot show them,
    print escapes (``\\u6e29``, valid inside JSON strings too) instead of failing."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.encoding.lower() not in UTF_8_NAMES:
            stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    _printable_anywhere()
    from rllib_project.ray_notices import hide_harmless_notices

    hide_harmless_notices()
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except OSError as exc:
        # a file the user named that the system refuses (no permission, a folder where
        # a file was expected, ...): the path and the reason, not a traceback
        where = f"{exc.filename}: " if exc.filename is not None else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
