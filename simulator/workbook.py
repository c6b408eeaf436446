"""results.xlsx: a run's figures as a workbook for an investment committee.

Sheets: the headline figures with their standard errors and percentiles, the inputs,
the quarterly cash flows (mean and p05/p50/p95 of each line), the commissioner's
payments by financial year, the investors' distribution (multiple and IRR
percentiles) and a sample of paths. Money is formatted in pounds, shares as per cent;
headers are frozen and columns sized to their contents. Written with pandas and
openpyxl, into the run's temporary folder like every other file of a run.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from .citations import input_sources, source_of
from .yamlfiles import LoadedScenario

WORKBOOK_FILE = "results.xlsx"
SUMMARY_WORKBOOK = "batch_summary.xlsx"   # sibsim batch's: a row a variant
SAMPLE_PATHS = 200
STATS = ("mean", "se", "p05", "p50", "p95")
_SHARE = ("prob", "share", "proportion", "irr")
_MONEY = ("payment", "cost", "call", "distribution", "balance", "capital", "saving",
          "avoided", "commitment", "cap", "var95", "cvar95", "cash", "value")
_POUNDS = '"£"#,##0'
_PER_CENT = "0.0%"


def headline_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    """A row a figure of the summary: section, figure, and its mean, standard error and
    percentiles (those it has)."""
    rows = []
    for section, figures in summary.items():
        if not isinstance(figures, Mapping):
            continue
        for name, value in figures.items():
            if isinstance(value, Mapping) and any(s in value for s in STATS):
                rows.append({"section": section, "figure": name,
                             **{s: value.get(s, np.nan) for s in STATS}})
            elif isinstance(value, int | float) and not isinstance(value, bool):
                if name.endswith("_se"):
                    continue   # beside its figure, below
                rows.append({"section": section, "figure": name, "mean": float(value),
                             "se": figures.get(f"{name}_se", np.nan)})
    return pd.DataFrame(rows, columns=["section", "figure", *STATS])


def inputs_frame(loaded: LoadedScenario) -> pd.DataFrame:
    """Every input of a scenario: its key, value or distribution (and mean), the
    schema's description (which gives its unit in brackets), and its source: FITTED,
    ASSUMPTION, CITED (a key of docs/sources.md), SET (an override) or DEFAULT, with
    the scenario file's comment and line that say so."""
    frame = pd.DataFrame(list(_inputs(loaded.scenario, "")),
                         columns=["input", "value", "distribution", "mean", "description"])
    sources = input_sources(getattr(loaded, "origins", {}))
    found = [source_of(key, sources) for key in frame["input"]]
    frame["source"] = [s.kind for s in found]
    frame["source_note"] = [s.note for s in found]
    frame["set_at"] = [s.where for s in found]
    return frame


def _inputs(model: BaseModel, prefix: str):
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        key = f"{prefix}{name}"
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            here = f"{key}[{i}]" if isinstance(value, list) else key
            if hasattr(item, "dist"):
                fixed = item.is_fixed
                yield (here, item.value if fixed else None,
                       "fixed" if fixed else _law(item), float(item.mean()), field.description)
            elif isinstance(item, BaseModel):
                yield from _inputs(item, here + ".")
            elif item is not None:
                shown = item if isinstance(item, int | float | str) else str(item)
                yield here, shown, None, None, field.description


def _law(dist: BaseModel) -> str:
    """A distribution as text: its name and parameters."""
    args = ", ".join(f"{k}={v:g}" for k, v in dist.model_dump().items()
                     if k != "dist" and isinstance(v, int | float))
    return f"{dist.dist}({args})"


def investor_distribution(paths: pd.DataFrame) -> pd.DataFrame:
    """Percentiles over paths of the multiple on committed capital and the IRR."""
    qs = [1, 5, 10, 25, 50, 75, 90, 95, 99]
    frame = pd.DataFrame({"percentile": [q / 100 for q in qs]})
    for column in ("multiple", "irr"):
        if column in paths:
            values = paths[column].to_numpy()
            values = values[np.isfinite(values)]
            frame[column] = np.percentile(values, qs) if len(values) else np.nan
    return frame


def write_workbook(path: Path, summary: Mapping[str, Any], quarters: pd.DataFrame,
                   paths: pd.DataFrame, loaded: LoadedScenario) -> None:
    """Write the workbook to ``path`` (a new file: the caller's folder is temporary)."""
    sheets = {
        "Headline": headline_frame(summary),
        "Inputs": inputs_frame(loaded),
        "Quarterly cash flows": quarters,
        "Payments by year": pd.DataFrame(
            summary.get("commissioner", {}).get("payments_by_financial_year", [])),
        "Investor distribution": investor_distribution(paths),
        "Sample of paths": paths.head(SAMPLE_PATHS),
    }
    write_sheets(path, sheets, money_sheets=("Payments by year",))


def write_sheets(path: Path, sheets: Mapping[str, pd.DataFrame],
                 money_sheets: tuple[str, ...] = ()) -> None:
    """Frames as the sheets of a new workbook at ``path``, formatted (money in pounds,
    shares in per cent, frozen headers); every number is money in ``money_sheets``."""
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, frame in sheets.items():
            frame.to_excel(writer, sheet_name=name, index=False)
            _format(writer.sheets[name], frame, money=name in money_sheets)


def write_batch_workbook(path: Path, table: pd.DataFrame) -> None:
    """batch_summary.xlsx: the batch summary's table (a row a variant), formatted, through
    a temporary file and one rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.xlsx", dir=path.parent)
    os.close(fd)
    try:
        with pd.ExcelWriter(tmp, engine="openpyxl") as writer:
            table.to_excel(writer, sheet_name="Batch", index=False)
            _format(writer.sheets["Batch"], table)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _format(sheet, frame: pd.DataFrame, money: bool = False) -> None:
    """Frozen header, column widths, and pounds or per cent by what a column holds
    (``money``: every number is in pounds)."""
    sheet.freeze_panes = "A2"
    rows_money = _row_formats(frame)
    for j, column in enumerate(frame.columns, start=1):
        letter = sheet.cell(row=1, column=j).column_letter
        width = max([len(str(column))] + [len(str(v)) for v in frame[column]])
        sheet.column_dimensions[letter].width = min(max(width + 2, 10), 40)
        fmt = _POUNDS if money else _number_format(str(column))
        for i in range(2, len(frame) + 2):
            cell = sheet.cell(row=i, column=j)
            cell_fmt = rows_money[i - 2] if rows_money and column in STATS else fmt
            if cell_fmt and isinstance(cell.value, int | float):
                cell.number_format = cell_fmt


def _row_formats(frame: pd.DataFrame) -> list[str | None]:
    """For the headline sheet, each row's format by its figure; else nothing."""
    if "figure" not in frame:
        return []
    return [_number_format(str(name)) for name in frame["figure"]]


def _number_format(name: str) -> str | None:
    low = name.lower()
    if low.endswith("_rule") or low in ("path", "seed", "paths", "year", "financial_year"):
        return None
    if any(word in low for word in _SHARE):
        return _PER_CENT
    if any(word in low for word in _MONEY):
        return _POUNDS
    return None
