"""Outputs never destroy what the user has: inputs, their folders, the working folder.

Results are written whole or not at all (``env.files``); these tests are about *where*:
an output path that names an input, a folder of someone else's files or the working
folder is refused with one line before anything is replaced, and what is written can be
read by others (not mkstemp's private mode).
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from env.errors import InputError
from env.files import staged_folder, write_json_atomic
from tests.datasets import write_dataset
from tests.test_fit_cli import run_cli


def _written(folder: Path, name: str) -> None:
    with staged_folder(folder) as staging:
        (staging / name).write_text("new")


def test_a_folder_of_the_same_result_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "report"
    _written(target, "report.md")
    (target / "report.md").write_text("old")
    _written(target, "report.md")
    assert (target / "report.md").read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_a_folder_holding_other_files_is_refused_and_kept(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match=r"notes\.txt"):
        _written(target, "report.md")
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no staging folder left


def test_a_folder_the_project_owns_is_replaced_whatever_it_holds(tmp_path: Path) -> None:
    target = tmp_path / "report"
    _written(target, "trajectories_old_dataset.png")
    with staged_folder(target, project_owned=True) as staging:
        (staging / "report.md").write_text("new")
    assert [p.name for p in target.iterdir()] == ["report.md"]


def test_the_working_folder_and_a_file_are_never_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="working folder"):
        _written(Path("."), "report.md")
    with pytest.raises(InputError, match="working folder"):
        _written(tmp_path.parent, "report.md")
    (tmp_path / "a_file").write_text("keep")
    with pytest.raises(InputError, match="not a folder"):
        _written(tmp_path / "a_file", "report.md")
    assert (tmp_path / "a_file").read_text() == "keep"


def test_written_files_are_readable_by_others_and_a_folder_is_not_a_file(tmp_path: Path) -> None:
    path = write_json_atomic(tmp_path / "best.json", {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    with pytest.raises(InputError, match="cannot write here"):
        write_json_atomic(tmp_path, {"a": 1})
    with pytest.raises(InputError, match="cannot write here"):
        write_json_atomic(path / "below_a_file.json", {"a": 1})


@pytest.mark.parametrize("command", ["fit", "plan"])
def test_an_output_naming_an_input_is_refused_and_the_input_kept(
    command: str, tmp_path: Path
) -> None:
    spec = write_dataset(tmp_path / "plant", 2)
    flag = "--out" if command == "fit" else "--save"
    for victim in (spec, spec.parent / "plant.csv"):
        before = victim.read_bytes()
        result = run_cli(command, spec, flag, victim)
        assert result.returncode == 2, result.stderr[-2000:]
        message = result.stderr.strip()
        assert message.startswith("error: ") and "is an input of this command" in message
        assert "\n" not in message and victim.read_bytes() == before


@pytest.mark.parametrize("command", ["fit", "plan"])
def test_an_output_that_cannot_be_written_is_one_line(command: str, tmp_path: Path) -> None:
    spec = write_dataset(tmp_path / "plant", 2)
    flag = "--out" if command == "fit" else "--save"
    for target in (tmp_path, spec.parent / "plant.csv" / "model.json"):
        result = run_cli(command, spec, flag, target, "--json")
        assert result.returncode == 2, result.stderr[-2000:]
        lines = result.stderr.strip().splitlines()
        assert "Traceback" not in result.stderr and lines[-1].startswith("error: "), lines
        assert "cannot write here" in lines[-1] or "input of this command" in lines[-1]


def test_a_token_file_saved_with_a_bom_holds_the_token_and_binary_is_refused(
    tmp_path: Path,
) -> None:
    from rllib_project.serving import read_token

    path = tmp_path / "token"
    path.write_text("secret\n", encoding="utf-8-sig")  # Notepad's "UTF-8 with BOM"
    assert read_token(path) == "secret"
    path.write_bytes(b"\xff\xfe\x00s")
    with pytest.raises(InputError, match="not UTF-8"):
        read_token(path)
