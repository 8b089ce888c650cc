"""Plant exports as they really come: encodings, separators, decimal commas, Excel.

Every export of the sample data (tests/plant_exports.py) must read to the very same
numbers and fit the same model as the plain sample CSV, with its spec keys given or
detected; bad keys end in one line and write nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import env
from env.csv_dialect import choose_encoding, number_format
from env.data import load_plant_data
from env.errors import InputError
from env.model import fit_process_model
from env.table_format import TableFormat
from rllib_project.cli import main
from tests.conftest import SAMPLE_SPEC
from tests.datasets import write_dataset
from tests.plant_exports import EXPORTS, NAMES, expected_read_as, sample_cells, write_export
from tests.test_fit_cli import run_cli

SAMPLE_CSV = SAMPLE_SPEC.parent / "sample_plant.csv"


def _sample_numbers(kelvin_and_kg: bool) -> tuple[np.ndarray, np.ndarray]:
    """The exact values each export must read: the sample's, converted by Decimal."""
    frame = sample_cells(kelvin_and_kg).map(float)
    return frame.iloc[:, 0].to_numpy(), frame.iloc[:, 1:].to_numpy()


@pytest.mark.parametrize("explicit", [False, True], ids=["detected", "spec-keys"])
@pytest.mark.parametrize("name", list(EXPORTS))
def test_every_export_reads_the_same_numbers_and_fits_the_same_model(
    name: str, explicit: bool, tmp_path: Path, sample_plant: env.Plant
) -> None:
    export = EXPORTS[name]
    data = load_plant_data(env.load_spec(write_export(tmp_path, export, explicit)))

    assert data.table_format.to_dict() == expected_read_as(export)
    if explicit:
        assert not set(data.table_format.detected) & set(export.keys)
    else:
        assert {"decimal", "thousands"} <= set(data.table_format.detected)
    state, controls = _sample_numbers(export.kelvin_and_kg)
    np.testing.assert_array_equal(data.state, state)
    np.testing.assert_array_equal(data.controls, controls)

    model = fit_process_model(data)
    expected = sample_plant.model.cv_scores
    assert [(s.family, s.alpha, s.n_features) for s in model.cv_scores] == [
        (s.family, s.alpha, s.n_features) for s in expected
    ]
    np.testing.assert_allclose([s.rmse for s in model.cv_scores], [s.rmse for s in expected])
    np.testing.assert_allclose([s.r2 for s in model.cv_scores], [s.r2 for s in expected])
    assert model.family == sample_plant.model.family


def test_plain_comma_csv_is_read_exactly_as_pandas_reads_it(sample_plant: env.Plant) -> None:
    frame = pd.read_csv(SAMPLE_CSV)
    np.testing.assert_array_equal(sample_plant.data.state, frame["temperature"].to_numpy())
    np.testing.assert_array_equal(
        sample_plant.data.controls, frame[list(sample_plant.spec.control_names)].to_numpy()
    )
    assert sample_plant.data.table_format == TableFormat("text", "utf-8", ",", ".", None, None)


@pytest.mark.parametrize("n_controls", [1, 3, 6])
def test_generated_ascii_datasets_are_read_as_plain_csv(n_controls: int, tmp_path: Path) -> None:
    spec = env.load_spec(write_dataset(tmp_path, n_controls, seed=n_controls))
    data = load_plant_data(spec)
    assert data.table_format == TableFormat("text", "utf-8", ",", ".", None, None)
    frame = pd.read_csv(spec.csv_path)
    np.testing.assert_array_equal(data.controls, frame[list(spec.control_names)].to_numpy())


def test_cp1252_semicolon_export_with_accented_names(tmp_path: Path) -> None:
    """A Western-European Excel 'CSV': cp1252, ';', decimal commas, names with accents."""
    names = ["Température", "Débit combustible", "Rapport air/combustible", "Débit", "Eau"]
    frame = sample_cells()
    frame.columns = names
    text = frame.apply(lambda col: col.str.replace(".", ",", regex=False)).to_csv(
        sep=";", index=False, lineterminator="\r\n"
    )
    (tmp_path / "usine.csv").write_bytes(text.encode("cp1252"))
    spec = yaml.safe_load(SAMPLE_SPEC.read_text())
    spec.update(csv="usine.csv", state=names[0])
    for control, name in zip(spec["controls"], names[1:], strict=True):
        control["name"] = name
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), "utf-8")
    data = load_plant_data(env.load_spec(tmp_path / "spec.yaml"))
    fmt = data.table_format
    assert (fmt.sep, fmt.decimal, fmt.thousands) == (";", ",", None)
    assert "é".encode(fmt.encoding) == "é".encode("cp1252")  # type: ignore[arg-type]
    state, controls = _sample_numbers(False)
    np.testing.assert_array_equal(data.state, state)
    np.testing.assert_array_equal(data.controls, controls)


def test_gbk_header_is_not_taken_for_korean(tmp_path: Path) -> None:
    """A short GBK header is statistically close to cp949; the spec's names decide."""
    header = ",".join(NAMES.values())
    sample = (header + "\r\n" + "1.5,2,3,4,5\r\n").encode("gbk")
    encoding, sep, text = choose_encoding(sample, True, list(NAMES.values()), None)
    assert (encoding, sep) == ("gbk", ",")
    assert text.startswith(header)


@pytest.mark.parametrize(
    ("cells", "sep", "decimal", "expected"),
    [
        (["947.42", "11.351", "1.1697"], ",", None, (".", None)),
        (["947,42", "11,351", "1,1697"], ";", None, (",", None)),
        (["1.220,57", "82.330", "11,351"], ";", None, (",", ".")),
        (["1,220.57", "82,330", "11.351"], ",", None, (".", ",")),
        (["82,330", "11,351"], ";", None, (",", None)),  # ';': the European convention
        (["82,330", "11,351"], "\t", None, (".", ",")),
        (["1 220,57", "82 330"], "\t", None, (",", " ")),
        (["1\u00a0220,57", "-3,5"], "\t", None, (",", "\u00a0")),
        (["1'220.57", "82'330"], ",", None, (".", "'")),
        (["1,234,567", "2.5"], "\t", None, (".", ",")),
        (["947,42", "11,351"], ";", ".", (".", None)),  # ',' never groups 2 digits
        (["1.5e-3", "2E+4", "n/a", "", "abc", "12"], ",", None, (".", None)),
    ],
)
def test_number_format_votes(
    cells: list[str], sep: str, decimal: str | None, expected: tuple[str, str | None]
) -> None:
    assert number_format(cells, sep, decimal) == expected


# --------------------------------------------------------------------------- fit CLI


def test_fit_prints_what_it_detected_and_later_reads_follow_the_record(tmp_path: Path) -> None:
    spec = write_export(tmp_path, EXPORTS["gbk ; decimal comma"], explicit=False)
    out = tmp_path / "model.json"
    result = run_cli("fit", spec, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "read as GBK, ';' separated, decimal ','" in result.stdout
    assert "(detected; spec keys: encoding, sep, decimal, thousands)" in result.stdout
    record = json.loads(out.read_text(encoding="utf-8"))["read_as"]
    assert record == expected_read_as(EXPORTS["gbk ; decimal comma"])

    plant = env.load_plant(spec, out)  # reads the file the recorded way: nothing detected
    assert plant.rows.table_format.to_dict() == record
    assert plant.rows.table_format.detected == ()
    assert plant.spec.control_names[0] == "燃料流量"

    with_keys = yaml.safe_load(spec.read_text(encoding="utf-8"))
    with_keys.update(encoding="GBK", sep=";", decimal=",")  # agrees with the record
    spec.write_text(yaml.safe_dump(with_keys, allow_unicode=True), "utf-8")
    assert env.load_plant(spec, out).rows.table_format.to_dict() == record
    with_keys.update(decimal=".")
    spec.write_text(yaml.safe_dump(with_keys, allow_unicode=True), "utf-8")
    with pytest.raises(InputError, match=r"now sets decimal: '\.': refit"):
        env.load_plant(spec, out)


def test_workbook_sheet_is_recorded_and_a_different_sheet_refused(tmp_path: Path) -> None:
    spec = write_export(tmp_path, EXPORTS["xlsx"], explicit=False)
    out = tmp_path / "model.json"
    assert main(["fit", str(spec), "--out", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["read_as"]["sheet"] == "数据"
    keys = yaml.safe_load(spec.read_text(encoding="utf-8"))
    for sheet, agrees in ((2, True), ("数据", True), (1, False), ("说明", False)):
        keys["sheet"] = sheet
        spec.write_text(yaml.safe_dump(keys, allow_unicode=True), "utf-8")
        if agrees:
            assert env.load_plant(spec, out).rows.table_format.sheet == "数据"
        else:
            with pytest.raises(InputError, match="refit"):
                env.load_plant(spec, out)


def test_a_changed_file_is_reported_as_changed_not_misread(tmp_path: Path) -> None:
    spec = write_export(tmp_path, EXPORTS["gbk ; decimal comma"], explicit=False)
    out = tmp_path / "model.json"
    assert main(["fit", str(spec), "--out", str(out)]) == 0
    csv_path = tmp_path / "plant.csv"
    csv_path.write_bytes(csv_path.read_bytes().decode("gbk").encode("utf-8"))  # re-saved
    with pytest.raises(InputError, match="model was fitted to a different CSV"):
        env.load_plant(spec, out)


def _set(**keys: object):
    def apply(spec: dict, folder: Path) -> None:
        spec.update(keys)

    return apply


BAD_KEYS = {
    "wrong encoding": (
        "gbk ; decimal comma",
        _set(encoding="utf-8"),
        ["cannot decode the file as UTF-8 (the spec's `encoding`)", "looks like GBK"],
    ),
    "unknown encoding": (
        "gbk",
        _set(encoding="klingon"),
        ["spec.yaml: encoding: unknown encoding 'klingon'"],
    ),
    "encoding that garbles": (
        "gbk",
        _set(encoding="latin-1"),
        ["温度: column missing from CSV (read as ISO8859-1", "set `encoding`"],
    ),
    "wrong separator": (
        "gbk ; decimal comma",
        _set(sep=","),
        ["read as GBK, ',' separated", "header fields: 温度;燃料流量;", "set `sep`", "';'"],
    ),
    "wrong decimal": (
        "gbk ; decimal comma",
        _set(decimal="."),
        ["温度: non-numeric value '947,42' in data row 1", "set `decimal: ','`"],
    ),
    "separator equals decimal": (
        "utf-8",
        _set(sep=",", decimal=","),
        ["sep and decimal are the same character ','"],
    ),
    "decimal neither point nor comma": ("utf-8", _set(decimal=";"), ["decimal: must be"]),
    "two-character separator": ("utf-8", _set(sep=";;"), ["sep: must be one character"]),
    "sheet on a text file": ("utf-8", _set(sheet="数据"), ["sheet: applies to Excel"]),
    "encoding on a workbook": ("xlsx", _set(encoding="gbk"), ["encoding: applies to text"]),
    "missing sheet": ("xlsx", _set(sheet="Sheet9"), ["no sheet 'Sheet9' (sheets: '说明', '数据')"]),
    "sheet position too far": ("xlsx", _set(sheet=3), ["no sheet number 3"]),
    "sheet without the columns": (
        "xlsx",
        _set(sheet=1),
        ["column missing from Excel sheet (read as Excel sheet '说明'", "set `sheet`"],
    ),
    "misspelt column": (
        "gbk ; decimal comma",
        _set(state="温度X"),
        ["温度X: column missing", "header fields: 温度 | 燃料流量", "check the column names"],
    ),
    "unsupported file type": ("utf-8", _set(csv="plant.xls"), ["unsupported file type '.xls'"]),
    "not a workbook": (
        "xlsx",
        lambda spec, folder: (folder / "plant.xlsx").write_bytes(b"PK not really"),
        ["cannot read Excel workbook"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_KEYS))
def test_bad_read_keys_give_one_line_and_write_nothing(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export, break_it, expected = BAD_KEYS[case]
    folder = tmp_path / "data"
    spec_path = write_export(folder, EXPORTS[export], explicit=False)
    spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    break_it(spec, folder)
    spec_path.write_text(yaml.safe_dump(spec, allow_unicode=True), "utf-8")
    before = sorted(p.name for p in folder.iterdir())
    out = tmp_path / "out" / "model.json"

    assert main(["fit", str(spec_path), "--out", str(out)]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    for part in expected:
        assert part in message, message
    assert not out.parent.exists()
    assert sorted(p.name for p in folder.iterdir()) == before
