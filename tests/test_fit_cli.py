"""``rllib-project fit``: a good dataset writes a model, each bad one gives one line + exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO
from tests.datasets import write_dataset


def run_cli(
    *args: str | Path, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``rllib-project ARGS``; a run that outlives ``timeout`` fails the test showing
    the end of what it printed (where it hung)."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "rllib_project", *map(str, args)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired as timed_out:
        printed = [_text(timed_out.stdout), _text(timed_out.stderr)]
        raise AssertionError(
            f"rllib-project {' '.join(map(str, args))} ran over {timeout} s; its output "
            f"ends:\n{printed[0][-3000:]}\n--- stderr:\n{printed[1][-3000:]}"
        ) from None


def _text(output: bytes | str | None) -> str:
    """Output a timed-out subprocess left (bytes even with ``text=True``)."""
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def test_fit_writes_model_with_cv_table(tmp_path: Path) -> None:
    spec = write_dataset(tmp_path, 2)
    out = tmp_path / "model.json"
    result = run_cli("fit", spec, "--out", out)
    assert result.returncode == 0, result.stderr
    for family in ("linear", "quadratic", "cubic", "rbf"):
        assert family in result.stdout
    assert "CV RMSE" in result.stdout and "<- chosen" in result.stdout
    assert json.loads(out.read_text())["format"] == "process-model/1"


def test_rows_with_missing_values_are_dropped_and_counted(tmp_path: Path) -> None:
    spec = write_dataset(tmp_path, 2, rows=200)
    frame = pd.read_csv(tmp_path / "plant.csv")
    frame.loc[[3, 7, 11], "c1"] = None
    frame.to_csv(tmp_path / "plant.csv", index=False)
    result = run_cli("fit", spec, "--out", tmp_path / "m.json")
    assert result.returncode == 0, result.stderr
    assert "dropped 3 of 200 rows with missing values" in result.stdout


def _edit_csv(edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / "plant.csv"
        edit(pd.read_csv(path)).to_csv(path, index=False)

    return apply


def _edit_spec(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / "spec.yaml"
        spec = yaml.safe_load(path.read_text())
        edit(spec)
        path.write_text(yaml.safe_dump(spec))

    return apply


def _write_text(name: str, text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(text)


def _non_numeric(frame: pd.DataFrame) -> pd.DataFrame:
    frame["c0"] = frame["c0"].astype(object)
    frame.loc[5, "c0"] = "n/a?"
    return frame


BAD_FIT_INPUTS = {
    "missing csv": (lambda f: (f / "plant.csv").unlink(), "plant.csv: CSV file not found"),
    "empty csv": (_write_text("plant.csv", ""), "plant.csv: file is empty"),
    "header only": (_write_text("plant.csv", "temp,c0,c1\n"), "no data rows"),
    "missing column": (_edit_csv(lambda d: d.drop(columns=["c1"])), "c1: column missing"),
    "duplicate column": (
        _write_text("plant.csv", "temp,c0,c1,c0\n1,2,3,4\n"),
        "c0: duplicate column",
    ),
    "non-numeric cell": (_edit_csv(_non_numeric), "c0: non-numeric value 'n/a?' in data row 6"),
    "too few rows": (_edit_csv(lambda d: d.head(12)), "too few complete rows"),
    "constant control": (_edit_csv(lambda d: d.assign(c1=3.0)), "c1: control is constant"),
    "inverted band": (_edit_spec(lambda s: s.update(band=[510, 490])), "band is inverted"),
    "zero step": (
        _edit_spec(lambda s: s["controls"][0].update(step=0)),
        "step must be a positive number",
    ),
    "negative step": (
        _edit_spec(lambda s: s["controls"][1].update(step=-0.5)),
        "step must be a positive number",
    ),
    "missing spec": (lambda f: (f / "spec.yaml").unlink(), "spec.yaml: dataset spec not found"),
}


@pytest.mark.parametrize("case", list(BAD_FIT_INPUTS))
def test_bad_input_gives_one_line_and_exit_2_and_writes_nothing(case: str, tmp_path: Path) -> None:
    spec = write_dataset(tmp_path / "data", 2)
    break_it, expected = BAD_FIT_INPUTS[case]
    break_it(tmp_path / "data")
    out = tmp_path / "out" / "model.json"
    before = sorted(p.name for p in (tmp_path / "data").iterdir())
    result = run_cli("fit", spec, "--out", out)
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    assert expected in message
    assert not out.exists() and not out.parent.exists()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == before
