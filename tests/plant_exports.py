"""The sample data written the ways plants export it, with Chinese names and units.

Each :class:`Export` is one real-world convention (GBK from a Chinese Excel, UTF-16
"Unicode text", ';' with decimal commas, thousands separators, .xlsx workbooks). The
cells are rewritten from the sample CSV's text, so every export holds exactly the same
numbers; the "k/kg" ones give the temperature in kelvin and the feed in kg/h, so that
numbers pass 1,000 and thousands separators appear (the process model is fitted on
standardised controls, so its cross-validation is the same up to rounding).
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from tests.conftest import SAMPLE_SPEC

NAMES = {
    "temperature": "温度",
    "fuel_rate": "燃料流量",
    "air_fuel_ratio": "空燃比",
    "feed_rate": "进料量",
    "coolant_flow": "冷却水流量",
}
UNITS = {"temperature": "℃", "fuel_rate": "吨/时", "feed_rate": "吨/时", "coolant_flow": "米³/时"}
KELVIN = Decimal("273.15")


@dataclass(frozen=True)
class Export:
    """One way of writing the sample data, and the spec keys that describe it."""

    file: str
    encoding: str | None = "utf-8"
    """Codec the text is written in (None: an Excel workbook)."""
    bom: bytes = b""
    sep: str = ","
    decimal: str = "."
    thousands: str | None = None
    line_end: str = "\n"
    kelvin_and_kg: bool = False
    """Temperature in K and feed in kg/h: numbers past 1,000."""
    text_cells: bool = False
    """Excel only: numbers stored as text cells (as pasted from a locale's export)."""
    keys: dict[str, Any] = field(default_factory=dict)
    """The spec keys that say all this explicitly."""
    read_as: dict[str, Any] = field(default_factory=dict)
    """The TableFormat fields the file must be read with."""


EXPORTS = {
    "utf-8": Export("plant.csv", keys={"encoding": "utf-8", "sep": ","}),
    "utf-8 with BOM": Export(
        "plant.csv", bom=codecs.BOM_UTF8, keys={"encoding": "utf-8"},
        read_as={"encoding": "utf-8-sig"},
    ),
    "gbk": Export("plant.csv", "gbk", line_end="\r\n", keys={"encoding": "gbk"}),
    "utf-16 tab (Excel unicode text)": Export(
        "plant.txt",
        "utf-16-le",
        bom=codecs.BOM_UTF16_LE,
        sep="\t",
        line_end="\r\n",
        keys={"encoding": "utf-16", "sep": "\t"},
        read_as={"encoding": "utf-16"},
    ),
    "gbk ; decimal comma": Export(
        "plant.csv", "gbk", sep=";", decimal=",", line_end="\r\n",
        keys={"encoding": "gbk", "sep": ";", "decimal": ","},
    ),
    "thousands , (k/kg)": Export(
        "plant.csv", thousands=",", kelvin_and_kg=True, keys={"thousands": ","}
    ),
    "; decimal comma thousands . (k/kg)": Export(
        "plant.csv", sep=";", decimal=",", thousands=".", kelvin_and_kg=True,
        keys={"sep": ";", "decimal": ",", "thousands": "."},
    ),
    "tsv decimal comma thousands no-break space (k/kg)": Export(
        "plant.tsv", sep="\t", decimal=",", thousands="\u00a0", kelvin_and_kg=True,
        keys={"sep": "\t", "decimal": ",", "thousands": "\u00a0"},
    ),
    "cp936 is gbk": Export("plant.csv", "cp936", keys={"encoding": "cp936"}),
    "xlsx": Export("plant.xlsx", None, keys={"sheet": "数据"}, read_as={"sheet": "数据"}),
    "xlsx text cells decimal comma": Export(
        "plant.xlsx", None, decimal=",", text_cells=True,
        keys={"sheet": 2, "decimal": ","}, read_as={"sheet": "数据"},
    ),
}  # fmt: skip


def expected_read_as(export: Export) -> dict[str, Any]:
    """The ``read_as`` record a model of this export must carry."""
    excel = export.encoding is None
    record = {
        "kind": "excel" if excel else "text",
        "encoding": None if excel else codecs.lookup(export.encoding).name,  # type: ignore[arg-type]
        "sep": None if excel else export.sep,
        "decimal": export.decimal,
        "thousands": export.thousands,
        "sheet": None,
    }
    return {**record, **export.read_as}


def _cell(text: str, decimal: str, thousands: str | None) -> str:
    sign = "-" if text.startswith("-") else ""
    whole, _, fraction = text.lstrip("+-").partition(".")
    if thousands is not None:
        whole = f"{int(whole):,}".replace(",", thousands)
    return sign + whole + (decimal + fraction if fraction else "")


def sample_cells(kelvin_and_kg: bool = False) -> pd.DataFrame:
    """The sample CSV as text cells (exact decimals), in kelvin and kg/h if asked."""
    frame = pd.read_csv(SAMPLE_SPEC.parent / "sample_plant.csv", dtype=str)
    if kelvin_and_kg:
        frame["temperature"] = [str(Decimal(t) + KELVIN) for t in frame["temperature"]]
        frame["feed_rate"] = [
            format((Decimal(f) * 1000).normalize(), "f") for f in frame["feed_rate"]
        ]
    return frame


def _write_text(export: Export, frame: pd.DataFrame, path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=export.sep, lineterminator=export.line_end)
    writer.writerow([NAMES[name] for name in frame.columns])
    for row in frame.itertuples(index=False):
        writer.writerow([_cell(text, export.decimal, export.thousands) for text in row])
    path.write_bytes(export.bom + buffer.getvalue().encode(export.encoding))  # type: ignore[arg-type]


def _write_workbook(export: Export, frame: pd.DataFrame, path: Path) -> None:
    if export.text_cells:
        cells = frame.map(lambda text: _cell(text, export.decimal, export.thousands))
    else:
        cells = frame.astype(float)
    notes = pd.DataFrame({"说明": ["炉温数据 (合成)", "单位见规格文件"]})
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        notes.to_excel(writer, sheet_name="说明", index=False)
        cells.rename(columns=NAMES).to_excel(writer, sheet_name="数据", index=False)


def write_export(folder: Path, export: Export, explicit: bool) -> Path:
    """Write the data file and a spec for it into ``folder``; return the spec path.

    ``explicit``: the spec states the export's keys; otherwise they are detected.
    """
    folder.mkdir(parents=True, exist_ok=True)
    frame = sample_cells(export.kelvin_and_kg)
    path = folder / export.file
    if export.encoding is None:
        _write_workbook(export, frame, path)
    else:
        _write_text(export, frame, path)
    spec = yaml.safe_load(SAMPLE_SPEC.read_text())
    spec["csv"] = export.file
    spec["state"] = NAMES["temperature"]
    spec["state_unit"] = UNITS["temperature"]
    for control in spec["controls"]:
        control["unit"] = UNITS.get(control["name"], control["unit"])
        control["name"] = NAMES[control["name"]]
    if export.kelvin_and_kg:
        spec["band"] = [float(Decimal(str(b)) + KELVIN) for b in spec["band"]]
        spec["state_unit"] = "K"
        feed = next(c for c in spec["controls"] if c["name"] == NAMES["feed_rate"])
        feed.update(step=feed["step"] * 1000, unit="千克/时")
    if explicit:
        spec.update(export.keys)
    spec_path = folder / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), "utf-8")
    return spec_path
