"""Make each dataset ready for its trials: model, yardstick and shape, once, before any trial.

Every trial of one dataset trains on the same plant and is scored against the same
fewest-moves yardstick. Fitting the model and planning every start row take seconds
(more on deep or wide plants), so :func:`prepare_dataset` does both once per dataset,
before Tune starts a trial, and saves them in the dataset's folder of the experiment
(``<experiment>/datasets/<name>/``, :func:`dataset_dir`) as plain data:

* the fitted process model (``process_model.json``), unless the experiment names one;
* the yardstick of every planning mode the algorithms need (``yardstick.json`` for
  whole steps, ``yardstick_continuous.json`` for fractions of a step), keyed by the
  CSV's sha256 and everything that changes a plan (:mod:`env.yardstick`);
* the plant's shape (:class:`rllib_project.shape_defaults.PlantShape`), which the
  algorithms' defaults follow.

What it returns, a :class:`~rllib_project.trial_config.PlantSource`, is what every trial
receives: trials, ``evaluate``, ``report`` and ``tune --resume`` load these files and
plan nothing. Each step prints a line when it starts and one when it is done, so a
long fit or a deep plant never means silent minutes. A second call on the same folder
loads what is there (a resumed run), planning again only what is missing or stale.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from env.model import PROCESS_MODEL_FILE
from env.plant import Plant, load_plant
from env.yardstick import PLANNING_MODES, Yardstick, ensure_yardstick, yardstick_filename
from rllib_project.shape_defaults import PlantShape
from rllib_project.trial_config import PlantSource

DATASETS_DIR = "datasets"
"""Inside the experiment folder: one folder per dataset with what its trials share."""


def dataset_dir(experiment_dir: Path, name: str) -> Path:
    """The folder of dataset ``name``'s model and yardsticks in an experiment folder."""
    return experiment_dir / DATASETS_DIR / name


def say(message: str) -> None:
    """One progress line, flushed at once (the driver's output may be a pipe or a log)."""
    print(message, flush=True)


def describe_yardstick(yardstick: Yardstick) -> str:
    summary = yardstick.summary()
    share = summary.exact / summary.rows if summary.rows else 0.0
    moves = (
        "no row reaches the band"
        if summary.mean_moves is None
        else f"mean {summary.mean_moves:.2f} moves, max {summary.max_moves}"
    )
    return (
        f"{summary.solvable} of {summary.rows} rows reach the band ({moves}); "
        f"{share:.1%} proven minimal"
    )


def fit_or_load_model(
    dataset: Path,
    model: Path | None,
    settings: Mapping[str, Any],
    folder: Path,
    progress: Callable[[str], None] = say,
) -> tuple[Plant, Path]:
    """The plant, with its model fitted and saved in ``folder`` unless ``model`` is given.

    The plant is then read back from the saved file, exactly as every trial reads it,
    so the yardstick planned on it carries the key the trials compute.
    """
    began = time.perf_counter()
    if model is None:
        progress(f"fitting the process model to {dataset.name} (cross-validated) ...")
        fitted = load_plant(dataset, None, dict(settings) or None)  # validates everything
        model = fitted.model.save(folder / PROCESS_MODEL_FILE)
        progress(
            f"model: {fitted.model.family}, fitted to {fitted.rows.n_rows} rows in "
            f"{time.perf_counter() - began:.1f} s"
        )
    else:
        progress(f"loading {dataset.name} and the model {model.name} ...")
    plant = load_plant(dataset, model, dict(settings) or None)
    return plant, model


def plan_or_load_yardstick(
    plant: Plant, mode: str, folder: Path, progress: Callable[[str], None] = say
) -> tuple[Yardstick, Path]:
    """The yardstick of ``mode`` for every start row, saved in ``folder`` (or loaded)."""
    path = folder / yardstick_filename(mode)
    rows = len(plant.start_indices)
    if path.is_file():
        progress(f"loading the saved yardstick {path.name} ...")
    else:
        progress(f"planning {rows} rows ({mode} moves) ...")
    began = time.perf_counter()
    yardstick, computed = ensure_yardstick(path, plant, mode)
    seconds = time.perf_counter() - began
    verb = "planned" if computed else "loaded"
    progress(
        f"{verb} {rows} rows ({mode} moves) in {seconds:.1f} s: {describe_yardstick(yardstick)}"
    )
    return yardstick, path


def prepare_dataset(
    name: str,
    dataset: Path,
    model: Path | None,
    settings: Mapping[str, Any],
    modes: Iterable[str],
    folder: Path,
    progress: Callable[[str], None] = say,
) -> PlantSource:
    """Model, yardsticks and shape of dataset ``name``, saved in ``folder`` (module
    docstring).

    ``settings`` are the experiment's overrides of the spec's env section; ``modes``
    the planning modes the algorithms need (``env.yardstick.planning_mode``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    plant, model = fit_or_load_model(dataset, model, settings, folder, progress)
    yardsticks: dict[str, Yardstick] = {}
    paths: dict[str, str] = {}
    for mode in (m for m in PLANNING_MODES if m in set(modes)):
        yardsticks[mode], path = plan_or_load_yardstick(plant, mode, folder, progress)
        paths[mode] = str(path)
    # the shape's depths are those of whole steps when known (continuous plans are
    # never longer, so they would understate what discrete agents face)
    reference = yardsticks.get("discrete") or next(iter(yardsticks.values()), None)
    shape = None if reference is None else PlantShape.of(plant, reference)
    if shape is not None:
        progress(f"plant: {shape.describe()}")
    return PlantSource(
        dataset=name,
        spec_path=str(dataset),
        model_path=str(model),
        settings=dict(settings),
        yardsticks=paths,
        shape=shape,
    )


def prepare_datasets(
    datasets: Sequence[tuple[str, Path, Path | None]],
    settings: Mapping[str, Any],
    modes: Iterable[str],
    experiment_dir: Path,
) -> list[PlantSource]:
    """:func:`prepare_dataset` of every ``(name, spec, model)``, each in its own folder;
    with several datasets every line names the dataset it is about."""
    modes = list(modes)
    sources = []
    for name, spec, model in datasets:
        progress = say if len(datasets) == 1 else _prefixed(f"dataset {name}: ")
        folder = dataset_dir(experiment_dir, name)
        sources.append(prepare_dataset(name, spec, model, settings, modes, folder, progress))
    return sources


def _prefixed(prefix: str) -> Callable[[str], None]:
    return lambda message: say(prefix + message)


class PreparationFailed(Exception):
    """The preparation process ended without an answer (killed, out of memory): one line
    for the user, as nothing of the experiment was trained yet."""


class PreparationProcess:
    """:func:`prepare_datasets` in a fresh process, while the caller starts Ray.

    Fitting and planning need no Ray, and starting Ray mostly waits for its processes,
    so doing both at once takes the longer of the two instead of their sum. A process,
    not a thread: Ray's start forks its own processes, and a fork while another thread
    of the driver runs numpy can deadlock the child (seen: ``ray.init`` hung in
    ``Popen`` while a thread fitted the model). The new process is *spawned* (a fresh
    interpreter, no locks inherited) and inherits stdout, so its progress lines appear
    as they happen. Its result, or its exception (an :class:`~env.errors.InputError`
    stays one), comes back through a pipe.
    """

    def __init__(self, *args: Any) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_prepare_and_send, args=(send, args), name="prepare-dataset", daemon=True
        )
        self._process.start()
        send.close()  # the child holds the sending end; EOF once it exits

    @property
    def pid(self) -> int | None:
        """The preparation process's id (to watch it, or to stop it)."""
        return self._process.pid

    def result(self) -> list[PlantSource]:
        """Wait for the process; its PlantSources, or its exception raised here.

        Raises:
            PreparationFailed: the process ended without sending anything back.
        """
        try:
            status, value = self._receive.recv()
        except EOFError:
            self._process.join()
            raise PreparationFailed(describe_end(self._process.exitcode)) from None
        self._process.join()
        if status != "ok":
            raise value
        return value

    def stop(self) -> None:
        """End the process if it still runs (the caller gave up on it) and wait for it."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


def describe_end(exitcode: int | None) -> str:
    """Why the preparation process gave no answer, in words (a signal is named)."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        cause = f"was killed by {name}"
        if -exitcode == signal.SIGKILL:
            cause += " (out of memory?)"
    else:
        cause = f"ended with exit code {exitcode} without a result"
    return f"preparing the datasets (fitting, planning) failed: its process {cause}"


def _prepare_and_send(send: Any, args: tuple[Any, ...]) -> None:
    try:
        send.send(("ok", prepare_datasets(*args)))
    except BaseException as exc:  # every failure goes back to the caller, to be raised there
        try:
            send.send(("error", exc))
        except Exception:  # an exception that cannot be pickled: its text
            send.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
    finally:
        send.close()
